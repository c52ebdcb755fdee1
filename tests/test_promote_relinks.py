"""Promote relinks with the new model; rollback puts the links back: over the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import linkage
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer, serving
from tests._signals import identifiers_of
from tests.test_train_while_serving import _to_proto
from training import SimulationConfig, simulate

BUNDLED = linkage.BUNDLED_MODEL
BUNDLED_VERSION = linkage.VisitorModel.load(BUNDLED).version


def _eager_model() -> pb.PromoteModelRequest:
    """The bundled model with a prior 8 times higher, linking at 0.6: it links more."""
    model = json.loads(BUNDLED.read_text())
    model["probability_two_random_records_match"] *= 8
    metrics = json.loads(BUNDLED.with_name("visitor-model.metrics.json").read_text())
    metrics["threshold"] = 0.6
    return pb.PromoteModelRequest(model_json=json.dumps(model).encode(), metrics_json=json.dumps(metrics).encode())


@pytest.fixture(scope="module")
def history() -> list[pb.IngestRequest]:
    return _to_proto(simulate(SimulationConfig(persons=500, days=14, seed=21)))


Answers = tuple[tuple[str, str, int, float, str], ...]  # value, person, decision, probability, household
Links = tuple[tuple[str, str, float, str], ...]  # person, component, probability, model version


def _graph(server: ThreadServer, identifiers: list[pb.Identifier]) -> tuple[Answers, Links]:
    """What a client can see of the links: every identifier's answer, and every person's soft
    links with their probability and the model version that made them."""
    answers: list[tuple[str, str, int, float, str]] = []
    for start in range(0, len(identifiers), 1000):
        request = pb.ResolveRequest(identifiers=identifiers[start : start + 1000])
        answers += [
            (r.identifier.value, r.person_id, r.decision, round(r.probability, 12), r.household_id)
            for r in server.stub.Resolve(request).resolutions
        ]
    persons = sorted({person for _, person, *_ in answers})
    links: list[tuple[str, str, float, str]] = []
    for person in persons:
        found = server.stub.GetPerson(pb.GetPersonRequest(person_id=person)).person
        links += [(person, s.component_id, round(s.probability, 12), s.model_version) for s in found.soft_links]
    return tuple(answers), tuple(sorted(links))


def test_promote_relinks_with_the_new_model_and_rollback_restores_the_links_exactly(
    tmp_path: Path, history: list[pb.IngestRequest]
) -> None:
    server = serving(tmp_path / "data", history)
    try:
        identifiers = identifiers_of(history)
        before = _graph(server, identifiers)
        cursor = max(c.sequence for c in server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))

        promoted = server.stub.PromoteModel(_eager_model(), timeout=300)

        relinked = promoted.relinked
        assert relinked.done and relinked.scored == relinked.total > 0
        assert relinked.made + relinked.moved > 0, "the eager model links visitors the bundled one did not"
        after_promote = _graph(server, identifiers)
        assert after_promote != before
        versions = {version for *_, version in after_promote[1]}
        assert promoted.version in versions, "the new links carry the new model's version"
        changes = list(server.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=cursor, stop_at_end=True)))
        soft = [c for c in changes if c.kind in (pb.CHANGE_KIND_SOFT_LINKED, pb.CHANGE_KIND_SOFT_UNLINKED)]
        assert soft and all(
            (c.model_version, c.previous_model_version) == (promoted.version, BUNDLED_VERSION)
            for c in soft
            if c.kind == pb.CHANGE_KIND_SOFT_UNLINKED or c.model_version == promoted.version
        ), "every link the promote changed names both versions"
        linked = [c for c in soft if c.kind == pb.CHANGE_KIND_SOFT_LINKED]
        assert len(linked) == relinked.made + relinked.moved

        cursor = changes[-1].sequence
        rolled = server.stub.RollbackModel(pb.RollbackModelRequest(), timeout=300)
        assert (rolled.version, rolled.previous_version) == (BUNDLED_VERSION, promoted.version)
        assert _graph(server, identifiers) == before, "promote then rollback leaves the links as they were"
        undone = list(server.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=cursor, stop_at_end=True)))
        assert undone and all(
            c.previous_model_version == promoted.version
            for c in undone
            if c.kind in (pb.CHANGE_KIND_SOFT_LINKED, pb.CHANGE_KIND_SOFT_UNLINKED)
        )
        audit = [(e.action, e.detail) for e in server.stub.ListAudit(pb.ListAuditRequest()).entries]
        assert any(a == "relink" and d.startswith(f"{BUNDLED_VERSION} -> {promoted.version}: ") for a, d in audit)
    finally:
        server.stop()

    # The journal is in the store: a rollback after a restart is exact too.
    again = ThreadServer(tmp_path / "data")
    try:
        assert _graph(again, identifiers) == before
        again.stub.RollbackModel(pb.RollbackModelRequest(), timeout=300)  # the eager model again
        assert _graph(again, identifiers) == after_promote, "rolling back the rollback is exact too"
    finally:
        again.stop()

"""Batch relink over the real server: anonymous visitors scored again with the whole history."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer, serving
from tests._signals import identifiers_of
from tests.test_train_while_serving import _to_proto
from training import SimulationConfig, simulate


def _clusters(server: ThreadServer, identifiers: list[pb.Identifier]) -> dict[frozenset[tuple[str, str]], str]:
    """Each person's identifiers (as namespace, value) -> its person id, at default confidence."""
    members: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for start in range(0, len(identifiers), 1000):
        chunk = identifiers[start : start + 1000]
        answered = server.stub.Resolve(pb.ResolveRequest(identifiers=chunk)).resolutions
        for identifier, resolution in zip(chunk, answered, strict=True):
            if resolution.person_id:
                members[resolution.person_id].add((identifier.namespace, identifier.value))
    return {frozenset(ids): person for person, ids in members.items()}


@pytest.fixture(scope="module")
def history() -> list[pb.IngestRequest]:
    return _to_proto(simulate(SimulationConfig(persons=600, days=14, seed=12)))


def test_relink_scores_every_anonymous_visitor_and_keeps_the_id_of_every_unchanged_person(
    tmp_path: Path, history: list[pb.IngestRequest]
) -> None:
    server = serving(tmp_path / "data", history)
    try:
        identifiers = identifiers_of(history)
        before = _clusters(server, identifiers)
        sequence = max(c.sequence for c in server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))

        updates = list(server.stub.Relink(pb.RelinkRequest()))

        final = updates[-1]
        assert final.done and not any(u.done for u in updates[:-1])
        assert final.scored == final.total > 0 and len(updates) >= 2
        assert final.made + final.dropped + final.moved + final.kept <= final.scored
        after = _clusters(server, identifiers)
        unchanged = set(before) & set(after)
        assert unchanged and all(before[c] == after[c] for c in unchanged), "an unchanged person keeps its id"
        changes = list(server.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=sequence, stop_at_end=True)))
        linked = [c for c in changes if c.kind == pb.CHANGE_KIND_SOFT_LINKED]
        unlinked = [c for c in changes if c.kind == pb.CHANGE_KIND_SOFT_UNLINKED]
        assert len(linked) == final.made + final.moved and len(unlinked) >= final.dropped + final.moved
        assert all(c.detail.startswith("model ") for c in linked), "each link names the model that made it"
        audit = [(e.action, e.detail) for e in server.stub.ListAudit(pb.ListAuditRequest()).entries]
        assert (
            "relink",
            f"{final.made} made, {final.dropped} dropped, {final.moved} moved, {final.kept} kept",
        ) in audit
    finally:
        server.stop()


def test_the_relink_command_shows_progress_and_the_counts(tmp_path: Path, history: list[pb.IngestRequest]) -> None:
    server = ThreadServer(tmp_path / "data")
    try:
        for request in history[:4]:
            server.stub.Ingest(request, timeout=60)
        result = subprocess.run(
            [sys.executable, "-m", "cli", "relink", "--target", server.target, "--data-dir", str(server.data_dir)],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "relinking: " in result.stderr and result.stdout.startswith("relinked ")
    finally:
        server.stop()


def test_relink_without_a_visitor_model_scores_nothing(tmp_path: Path) -> None:
    server = ThreadServer(tmp_path / "data", model_path=None)
    try:
        (final,) = list(server.stub.Relink(pb.RelinkRequest()))
        assert final.done and final.total == final.scored == 0
    finally:
        server.stop()

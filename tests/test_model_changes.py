"""Promote and roll back the visitor model of a running server, through the real API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

import linkage
from server._models import ModelChanges, PromotedModels
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer
from tests._signals import batch, ident, signal
from tests.test_visitor_stitching import _background, _resolve, _safari_cookies

BUNDLED = linkage.BUNDLED_MODEL
BUNDLED_VERSION = linkage.VisitorModel.load(BUNDLED).version


def _candidate() -> tuple[bytes, bytes]:
    """The bundled model with another prior: another version, linking at 0.85."""
    model = json.loads(BUNDLED.read_text())
    model["probability_two_random_records_match"] *= 2
    metrics = json.loads(BUNDLED.with_name("visitor-model.metrics.json").read_text())
    metrics["threshold"] = 0.85
    return json.dumps(model).encode(), json.dumps(metrics).encode()


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    return raised.value.code(), raised.value.details() or ""  # type: ignore[attr-defined]


def test_promote_serves_the_new_model_live_survives_a_restart_and_rolls_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    model_json, metrics_json = _candidate()
    running = ThreadServer(data, model_threshold=0.85)
    try:
        _background(running)
        before = _resolve(running, ("cookie", "bg1"), ("cookie", "bg2"))
        assert _code(lambda: running.stub.RollbackModel(pb.RollbackModelRequest()))[0] == grpc.StatusCode.NOT_FOUND

        failures: list[str] = []
        calls = 0
        stop = threading.Event()

        def keep_calling() -> None:
            nonlocal calls
            while not stop.is_set():
                try:
                    running.stub.Ingest(batch(signal(("cookie", f"during-{calls}"))), timeout=30)
                    running.stub.Resolve(pb.ResolveRequest(identifiers=[ident("cookie", "bg1")]), timeout=30)
                except grpc.RpcError as exc:
                    failures.append(exc.code().name)  # type: ignore[attr-defined]
                calls += 1

        caller = threading.Thread(target=keep_calling)
        caller.start()
        try:
            promoted = running.stub.PromoteModel(
                pb.PromoteModelRequest(model_json=model_json, metrics_json=metrics_json)
            )
        finally:
            stop.set()
            caller.join(30)
        assert failures == [] and calls > 0, "no call failed during the promote"
        assert promoted.previous_version == "config" and promoted.version != BUNDLED_VERSION
        assert _resolve(running, ("cookie", "bg1"), ("cookie", "bg2")) == before, "nothing of the graph changed"

        # Links made from now on are the new model's.
        _safari_cookies(running, "safari-1", "sister-1")
        household = running.stub.GetHousehold(pb.GetHouseholdRequest(identifier=ident("cookie", "safari-2")))
        assert [v.model_version for v in household.household.visitors] == [promoted.version]
        actions = [(e.action, e.subject) for e in running.stub.ListAudit(pb.ListAuditRequest()).entries]
        assert ("promote_model", f"config -> {promoted.version}") in actions
    finally:
        running.stop()

    again = ThreadServer(data, model_threshold=0.85)
    try:
        code, details = _code(
            lambda: again.stub.PromoteModel(pb.PromoteModelRequest(model_json=model_json, metrics_json=metrics_json))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "in force already" in details, "a restart serves it"
        kept = _resolve(again, ("cookie", "safari-1"), ("cookie", "safari-2"))

        rolled = again.stub.RollbackModel(pb.RollbackModelRequest())
        assert (rolled.version, rolled.previous_version) == (BUNDLED_VERSION, promoted.version)
        # What the rolled-back model linked after its promote is scored again by the one put back.
        assert rolled.relinked.done and rolled.relinked.scored >= 1
        after = _resolve(again, ("cookie", "safari-1"), ("cookie", "safari-2"))
        assert [(r.person_id, r.household_id) for r in after] == [(r.person_id, r.household_id) for r in kept]
        household = again.stub.GetHousehold(pb.GetHouseholdRequest(identifier=ident("cookie", "safari-2")))
        assert [v.model_version for v in household.household.visitors] == [BUNDLED_VERSION]
        code, details = _code(lambda: again.stub.PromoteModel(pb.PromoteModelRequest(model_json=BUNDLED.read_bytes())))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and BUNDLED_VERSION in details, "the bundled one is back"
    finally:
        again.stop()


@pytest.mark.parametrize(
    ("model_json", "field"),
    [(b"", "model_json"), (b"{not json", "model_json"), (b'{"comparisons": 3}', "model_json")],
)
def test_a_model_that_is_not_one_is_refused_naming_the_field(tmp_path: Path, model_json: bytes, field: str) -> None:
    running = ThreadServer(tmp_path / "data")
    try:
        code, details = _code(lambda: running.stub.PromoteModel(pb.PromoteModelRequest(model_json=model_json)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field)
        assert running.stub.Resolve(pb.ResolveRequest(identifiers=[ident("cookie", "x")])).resolutions
    finally:
        running.stop()


def test_the_model_command_promotes_a_trained_model_and_rolls_it_back(tmp_path: Path) -> None:
    model_json, metrics_json = _candidate()
    trained = tmp_path / "model"
    trained.mkdir()
    (trained / "visitor-model.json").write_bytes(model_json)
    (trained / "visitor-model.metrics.json").write_bytes(metrics_json)
    running = ThreadServer(tmp_path / "data")
    try:
        connect = ["--target", running.target, "--data-dir", str(running.data_dir)]
        base = [sys.executable, "-m", "cli", "model"]
        promoted = subprocess.run(
            [*base, "promote", str(trained / "visitor-model.json"), *connect],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert promoted.returncode == 0, promoted.stderr
        assert promoted.stdout.startswith("model ") and "(was config)" in promoted.stdout
        assert "\nrelinked " in promoted.stdout and " links made, " in promoted.stdout
        rolled = subprocess.run([*base, "rollback", *connect], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert rolled.returncode == 0 and f"model {BUNDLED_VERSION} in force" in rolled.stdout
        missing = subprocess.run(
            [*base, "promote", str(tmp_path / "none.json"), *connect], cwd=REPO, capture_output=True, text=True
        )
        assert missing.returncode == 2 and "none.json" in missing.stderr

        added = subprocess.run(
            [*base, "add", str(trained / "visitor-model.json"), *connect],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0 and "retired" in added.stdout  # in force once already
        version = promoted.stdout.split()[1]
        by_version = subprocess.run(
            [*base, "promote", "--version", version, *connect], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert by_version.returncode == 0, by_version.stderr
        listed = subprocess.run([*base, "list", *connect], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
        assert (
            "in force" in rows[version]
            and "retired" in rows[BUNDLED_VERSION]
            and "configuration" in rows[BUNDLED_VERSION]
        )
    finally:
        running.stop()


def test_the_registry_lists_every_model_with_its_state_and_figures_and_promotes_by_version(tmp_path: Path) -> None:
    model_json, metrics_json = _candidate()
    data = tmp_path / "data"
    running = ThreadServer(data, model_threshold=0.85)
    try:
        (configured,) = running.stub.ListModels(pb.ListModelsRequest()).models
        assert (configured.version, configured.state, configured.added_by) == (
            BUNDLED_VERSION, pb.MODEL_STATE_IN_FORCE, "configuration",
        )  # fmt: skip
        bundled_metrics = json.loads(BUNDLED.with_name("visitor-model.metrics.json").read_text())
        assert configured.held_out_precision == pytest.approx(bundled_metrics["evaluation"]["chosen"]["precision"])

        added = running.stub.AddModel(pb.AddModelRequest(model_json=model_json, metrics_json=metrics_json))
        assert added.state == pb.MODEL_STATE_PROPOSED and added.added_by == "token:admin" and added.threshold == 0.85
        assert running.stub.AddModel(pb.AddModelRequest(model_json=model_json)).added_at == added.added_at
        assert _code(lambda: running.stub.PromoteModel(pb.PromoteModelRequest(version="nope")))[0] == (
            grpc.StatusCode.NOT_FOUND
        )
        both = pb.PromoteModelRequest(model_json=model_json, version=added.version)
        code, details = _code(lambda: running.stub.PromoteModel(both))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("version")

        promoted = running.stub.PromoteModel(pb.PromoteModelRequest(version=added.version))
        assert promoted.version == added.version
        states = {m.version: m.state for m in running.stub.ListModels(pb.ListModelsRequest()).models}
        assert states == {BUNDLED_VERSION: pb.MODEL_STATE_RETIRED, added.version: pb.MODEL_STATE_IN_FORCE}
        actions = [e.action for e in running.stub.ListAudit(pb.ListAuditRequest()).entries]
        assert actions.count("add_model") == 1 and "promote_model" in actions
    finally:
        running.stop()

    # The registry is in the store: a restart (serving the promoted model) lists the same.
    again = ThreadServer(data, model_threshold=0.85)
    try:
        listed = [(m.version, m.state) for m in again.stub.ListModels(pb.ListModelsRequest()).models]
        assert listed == [(BUNDLED_VERSION, pb.MODEL_STATE_RETIRED), (added.version, pb.MODEL_STATE_IN_FORCE)]
        again.stub.RollbackModel(pb.RollbackModelRequest())
        states = {m.version: m.state for m in again.stub.ListModels(pb.ListModelsRequest()).models}
        assert states == {BUNDLED_VERSION: pb.MODEL_STATE_IN_FORCE, added.version: pb.MODEL_STATE_RETIRED}
        # Both are in the registry, the configuration's model too: each can be promoted by version.
        again.stub.PromoteModel(pb.PromoteModelRequest(version=added.version))
        back = again.stub.PromoteModel(pb.PromoteModelRequest(version=BUNDLED_VERSION))
        assert (back.version, back.previous_version) == (BUNDLED_VERSION, added.version)
    finally:
        again.stop()


def test_a_second_model_change_while_one_runs_is_refused_as_busy(tmp_path: Path) -> None:
    """`ModelChanges` over a stitcher whose model swap waits until told: a rollback (or another
    promote) meanwhile is `Busy` (ABORTED at the edge), and nothing of it happens."""
    model_json, metrics_json = _candidate()

    class SlowStitcher:
        def __init__(self) -> None:
            self.visitor_model = linkage.VisitorModel.load(BUNDLED)
            self.rows: dict[str, linkage.ModelRow] = {}
            self.release = asyncio.Event()
            self.swaps = 0

        async def models(self) -> list[linkage.ModelRow]:
            return list(self.rows.values())

        async def put_model(self, row: linkage.ModelRow) -> None:
            self.rows[row.version] = row

        async def record_read(self, *_: str) -> None:
            pass

        async def change_visitor_model(self, model: linkage.VisitorModel, *_: object, **__: object) -> None:
            self.swaps += 1
            await self.release.wait()
            self.visitor_model = model

        async def relink_after_model_change(self, *_: object, **__: object) -> linkage.Relinked:
            return linkage.Relinked(0, 0, 0, 0, 0)

    async def scenario() -> None:
        stitcher = SlowStitcher()
        changes = ModelChanges(stitcher, tmp_path, lambda: None)  # type: ignore[arg-type]
        await changes.start(BUNDLED)
        promoting = asyncio.create_task(changes.promote(model_json, metrics_json, "", "token:admin"))
        while stitcher.swaps == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(linkage.Busy):
            await changes.rollback("token:admin")
        with pytest.raises(linkage.Busy):
            await changes.promote(b"", b"", BUNDLED_VERSION, "token:admin")
        stitcher.release.set()
        version, before, _ = await promoting
        assert before == "config" and stitcher.swaps == 1 and stitcher.visitor_model.version == version
        assert (await changes.rollback("token:admin"))[0] == "none"  # the configured model (None here)

        # A promote whose caller goes away mid-swap still finishes its bookkeeping.
        stitcher.release.clear()
        swaps = stitcher.swaps
        abandoned = asyncio.create_task(changes.promote(model_json, metrics_json, "", "token:admin"))
        while stitcher.swaps == swaps:
            await asyncio.sleep(0.01)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        with pytest.raises(linkage.Busy):
            await changes.rollback("token:admin")
        stitcher.release.set()
        while changes._changing.locked():
            await asyncio.sleep(0.01)
        version = stitcher.visitor_model.version
        assert stitcher.rows[version].state == "in force"
        assert PromotedModels(tmp_path).in_force() == tmp_path / "models" / version / "visitor-model.json"

    asyncio.run(scenario())

"""Shadow a candidate visitor model beside the one in force: what it would change, changing nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import linkage
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer
from tests.test_train_while_serving import _to_proto
from training import SimulationConfig, run_shadow, simulate, write_jsonl
from training._visitor_settings import HOME_AND_PLACE_LABEL

BUNDLED = linkage.BUNDLED_MODEL


def _candidate(tmp_path: Path, prior_factor: float, home_and_place_m_factor: float) -> Path:
    """The bundled model with its prior and one level's m scaled: another version."""
    model = json.loads(BUNDLED.read_text())
    model["probability_two_random_records_match"] *= prior_factor
    for level in model["comparisons"][0]["comparison_levels"]:
        if level.get("label_for_charts") == HOME_AND_PLACE_LABEL:
            level["m_probability"] *= home_and_place_m_factor
    path = tmp_path / "candidate" / "visitor-model.json"
    path.parent.mkdir()
    path.write_text(json.dumps(model))
    (path.parent / "visitor-model.metrics.json").write_bytes(
        BUNDLED.with_name("visitor-model.metrics.json").read_bytes()
    )
    return path


@pytest.fixture(scope="module")
def signals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shadow") / "signals.jsonl.gz"
    write_jsonl(path, simulate(SimulationConfig(persons=800, days=14, seed=9)))
    return path


def test_shadowing_the_model_in_force_itself_changes_no_link(tmp_path: Path, signals: Path) -> None:
    lines: list[str] = []
    report = run_shadow(
        linkage.LinkageConfig(hash_secret=b"test"), BUNDLED, BUNDLED, tmp_path / "out", signals=signals,
        progress=lines.append,
    )  # fmt: skip

    assert report.links[0] == report.links[1] > 0
    assert (report.made, report.dropped, report.moved, report.persons_gaining) == (0, 0, 0, 0)
    assert report.held_out["current"] == report.held_out["candidate"]
    assert all(w["current"] == w["candidate"] for w in report.weights)
    assert any(line.startswith("links: ") for line in lines)


def test_a_bolder_candidate_makes_links_the_report_counts_and_charts(tmp_path: Path, signals: Path) -> None:
    candidate = _candidate(tmp_path, prior_factor=8.0, home_and_place_m_factor=4.0)
    out = tmp_path / "out"
    report = run_shadow(
        linkage.LinkageConfig(hash_secret=b"test"), candidate, BUNDLED, out, signals=signals, progress=lambda _: None
    )

    assert report.made > report.dropped and report.links[1] - report.links[0] == report.made - report.dropped
    assert sum(report.made_by_band.values()) == report.made
    assert report.persons_gaining > 0
    changed = [w for w in report.weights if w["level"] == HOME_AND_PLACE_LABEL]
    assert changed and changed[0]["candidate"] - changed[0]["current"] == pytest.approx(2.0)
    written = json.loads((out / "shadow.json").read_text())
    assert written["made"] == report.made and written["candidate"] == report.candidate != report.current
    page = (out / "shadow.html").read_text()
    assert page.count("<svg") == 2 and report.candidate in page and "Held-out precision" in page


def test_the_command_shadows_on_a_running_servers_snapshot_and_changes_nothing(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path, prior_factor=8.0, home_and_place_m_factor=1.0)
    data = tmp_path / "data"
    server = ThreadServer(data)
    try:
        for request in _to_proto(simulate(SimulationConfig(persons=400, days=10, seed=4))):
            server.stub.Ingest(request, timeout=60)
        changes_before = list(server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))
        out = tmp_path / "shadow"
        result = subprocess.run(
            [sys.executable, "-m", "cli", "model", "shadow", str(candidate), "--data-dir", str(data),
             "--target", server.target, "--out", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "asking it for a snapshot" in result.stderr and "links: " in result.stdout
        assert (out / "shadow.html").is_file()
        assert list(server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True))) == changes_before
        assert not list((data / "snapshots").iterdir()), "the snapshot asked for is deleted"
        models = server.stub.ListModels(pb.ListModelsRequest()).models
        assert [m.state for m in models] == [pb.MODEL_STATE_IN_FORCE], "shadowing adds and promotes nothing"
    finally:
        server.stop()

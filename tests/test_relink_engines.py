"""Batch relink scored by Splink's predict, on DuckDB and on Spark, over the real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer, serving
from tests._signals import identifiers_of
from tests.test_promote_relinks import Answers, Links, _graph
from tests.test_train_while_serving import _to_proto
from training import SimulationConfig, simulate


@pytest.fixture(scope="module")
def history() -> list[pb.IngestRequest]:
    return _to_proto(simulate(SimulationConfig(persons=400, days=14, seed=12)))


def _relink(server: ThreadServer, engine: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cli", "relink", "--engine", engine,
               "--target", server.target, "--data-dir", str(server.data_dir)]  # fmt: skip
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_spark_and_duckdb_relinks_make_the_same_links_as_the_online_relink(
    tmp_path: Path, history: list[pb.IngestRequest]
) -> None:
    identifiers = identifiers_of(history)
    graphs = {}
    for engine in ("online", "duckdb", "spark"):
        server = serving(tmp_path / engine, history)
        try:
            before = _graph(server, identifiers)
            done = _relink(server, engine)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("relinked ") and " links made, " in done.stdout
            graphs[engine] = _graph(server, identifiers)
            snapshots = server.data_dir / "snapshots"
            assert not snapshots.exists() or not any(snapshots.iterdir()), "the profiles snapshot is deleted"
        finally:
            server.stop()
    assert graphs["online"] != before, "the relink changed something to compare"
    assert graphs["spark"] == graphs["duckdb"], "Spark and DuckDB relink alike"
    # The same links as online; a person's share differs a little where the online index's
    # blocking (its buckets and caps) and Splink's rules find other low-weight candidates.
    assert _without_probabilities(graphs["duckdb"]) == _without_probabilities(graphs["online"])
    assert max(_probability_gaps(graphs["duckdb"], graphs["online"])) < 0.01


def _without_probabilities(graph: tuple[Answers, Links]) -> tuple[object, ...]:
    answers, links = graph
    return (
        tuple((value, person, decision, household) for value, person, decision, _, household in answers),
        tuple((person, component, version) for person, component, _, version in links),
    )


def _probability_gaps(a: tuple[Answers, Links], b: tuple[Answers, Links]) -> list[float]:
    gaps = [abs(x[3] - y[3]) for x, y in zip(a[0], b[0], strict=True)]
    return gaps + [abs(x[2] - y[2]) for x, y in zip(a[1], b[1], strict=True)]


def test_scored_pairs_of_another_model_or_of_unequal_length_are_refused(
    tmp_path: Path, history: list[pb.IngestRequest]
) -> None:
    server = serving(tmp_path / "data", history[:3])
    try:
        written = server.stub.WriteSnapshot(pb.WriteSnapshotRequest(visitor_profiles=True))
        assert written.visitor_profiles > 0 and written.visitor_model_json.startswith(b"{")
        assert (Path(written.directory) / "visitor-profiles.parquet").stat().st_mode & 0o077 == 0
        version = written.visitor_model_version
        for message, field in [
            (pb.ScoredPairs(left=[1], right=[2], match_weight=[1.0], model_version="0123456789ab"), "model_version"),
            (pb.ScoredPairs(left=[1, 2], right=[2], match_weight=[1.0], model_version=version), "left"),
            (pb.ScoredPairs(left=[1], right=[2], match_weight=[float("nan")], model_version=version), "match_weight"),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                server.stub.RelinkScored(iter([message]))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (refused.value.details() or "").startswith(field)
        fine = server.stub.RelinkScored(iter([pb.ScoredPairs(model_version=version)]))
        assert fine.done and fine.made == 0
    finally:
        server.stop()

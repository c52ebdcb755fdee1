"""The visitor evidence cache: a restart reads the evidence saved for its very history instead of
replaying every stored signal, and replays when the history is another."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import duckdb
import pytest

import linkage
from training import SimulationConfig, simulate

CONFIG = linkage.LinkageConfig(hash_secret=b"evidence-cache-test")
MODEL = linkage.VisitorModel.load(linkage.BUNDLED_MODEL)


@pytest.fixture(scope="module")
def signals() -> list[linkage.Signal]:
    return [s.signal for s in simulate(SimulationConfig(persons=300, days=10, seed=21))]


def _stitcher(path: Path, cache: Path | None) -> linkage.Stitcher:
    return linkage.Stitcher(CONFIG, linkage.DuckDBStore(path), model=MODEL, evidence_cache=cache)


async def _records(path: Path, cache: Path | None) -> tuple[str, dict[int, linkage.modelling.ProfileRecord]]:
    """How a start got its evidence, and every component's profile record afterwards."""
    stitcher = _stitcher(path, cache)
    await stitcher.start()
    try:
        index = stitcher._graph.visitor_index
        return stitcher.evidence_source, {c: r for c in list(index._evidence) if (r := index.record(c)) is not None}
    finally:
        await stitcher.close()


def test_a_restart_reads_the_evidence_saved_for_its_history_and_replays_another(
    tmp_path: Path, signals: list[linkage.Signal]
) -> None:
    store, cache = tmp_path / "idstitch.duckdb", tmp_path / "visitor-evidence.cache"

    async def ingest(batch: list[linkage.Signal]) -> dict[int, linkage.modelling.ProfileRecord]:
        stitcher = _stitcher(store, cache)
        await stitcher.start()
        for start in range(0, len(batch), 500):
            await stitcher.ingest(batch[start : start + 500])
        index = stitcher._graph.visitor_index
        live = {c: r for c in list(index._evidence) if (r := index.record(c)) is not None}
        await stitcher.close()
        return live

    live = asyncio.run(ingest(signals))
    assert cache.is_file() and cache.stat().st_mode & 0o077 == 0, "saved at shutdown, private"

    source, cached = asyncio.run(_records(store, cache))
    replay_source, replayed = asyncio.run(_records(store, None))
    assert (source, replay_source) == ("cache", "replay")
    # The evidence the server had when it stopped, exactly: a replay rebuilds it under the final
    # person ids, and so numbers the homes it joins in another order.
    assert cached == live and len(cached) > 100
    assert cached.keys() == replayed.keys()

    # The store changes behind the cache's back (an event gone): the cache no longer applies.
    con = duckdb.connect(str(store))
    con.execute("DELETE FROM events WHERE event_id = (SELECT min(event_id) FROM events)")
    con.close()
    assert asyncio.run(_records(store, cache))[0] == "replay"


def test_a_cache_others_could_have_written_is_not_read(tmp_path: Path, signals: list[linkage.Signal]) -> None:
    store, cache = tmp_path / "idstitch.duckdb", tmp_path / "visitor-evidence.cache"

    async def ingest() -> None:
        stitcher = _stitcher(store, cache)
        await stitcher.start()
        await stitcher.ingest(signals[:500])
        await stitcher.close()

    asyncio.run(ingest())
    os.chmod(cache, 0o644)
    assert asyncio.run(_records(store, cache))[0] == "replay"
    cache.write_bytes(b"not a pickle")
    os.chmod(cache, 0o600)
    assert asyncio.run(_records(store, cache))[0] == "replay", "a torn file is replayed over, never a crash"

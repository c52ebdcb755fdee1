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


def test_a_replay_keeps_the_evidence_of_a_moved_identifiers_signals_where_they_were_stitched(tmp_path: Path) -> None:
    # Alice's browser cookie is claimed by Bob's login: the cookie moves to Bob, and Alice's
    # visits before stay Alice's evidence. A replay must not hand them to the cookie's new owner.
    store = tmp_path / "idstitch.duckdb"
    day = 1_760_000_000.0
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

    def visit(n: int, ip: str, *identifiers: tuple[str, str]) -> linkage.Signal:
        ids = tuple(linkage.Identifier(ns, value) for ns, value in identifiers)
        context = linkage.Context(ip=ip, geo=linkage.Geo("DE", "Berlin"), user_agent=agent)
        return linkage.Signal(f"e{n}", ids, day + n * 3_600, "web", context)

    signals = [visit(n, "81.2.69.10", ("cookie", "shared-1"), ("login", "alice")) for n in range(3)]
    signals += [visit(10 + n, "92.40.7.3", ("cookie", "shared-1"), ("login", "bob")) for n in range(2)]

    async def ingest() -> dict[int, linkage.modelling.ProfileRecord]:
        stitcher = _stitcher(store, None)
        await stitcher.start()
        results = await stitcher.ingest(signals)
        assert results[0].person_id != results[-1].person_id, "two persons"
        index = stitcher._graph.visitor_index
        live = {c: r for c in list(index._evidence) if (r := index.record(c)) is not None}
        await stitcher.close()
        return live

    live = asyncio.run(ingest())
    source, replayed = asyncio.run(_records(store, None))
    assert source == "replay"
    assert {c: r.ips for c, r in replayed.items()} == {c: r.ips for c, r in live.items()}
    assert sorted(r.ips for r in live.values() if r.ips) == [("81.2.69.10",), ("92.40.7.3",)], "one address each"

"""A store of an older schema (5) opens, is brought up to date, and keeps what it held."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import duckdb

import linkage
from linkage import Identifier, Signal


def _signal(event_id: str) -> Signal:
    return Signal(event_id, (Identifier("cookie", "c-1"), Identifier("login", "anna")), timestamp=time.time() - 60)


async def _ingest(path: Path, event_id: str) -> linkage.SignalResult:
    stitcher = linkage.Stitcher(linkage.LinkageConfig(hash_secret=b"upgrade-test"), linkage.DuckDBStore(path))
    await stitcher.start()
    try:
        (result,) = await stitcher.ingest([_signal(event_id)])
        return result
    finally:
        await stitcher.close()


def test_a_schema_5_store_is_upgraded_and_its_event_ids_still_count(tmp_path: Path) -> None:
    path = tmp_path / "idstitch.duckdb"
    first = asyncio.run(_ingest(path, "e-1"))
    # Make it a store as schema 5 wrote it: no models table, no digest of the event ids.
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE models")
    con.execute("DROP TABLE replaced_links")
    con.execute("ALTER TABLE events DROP COLUMN digest")
    con.execute("ALTER TABLE changes DROP COLUMN model_version")
    con.execute("ALTER TABLE changes DROP COLUMN previous_model_version")
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    con.close()

    again = asyncio.run(_ingest(path, "e-1"))

    assert again.duplicate and again.person_id == first.person_id, "the old event id is known after the upgrade"
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(linkage.store.SCHEMA_VERSION),
        )
        assert con.execute("SELECT count(*) FROM models").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM replaced_links").fetchone() == (0,)
    finally:
        con.close()
    store = linkage.DuckDBStore(path)
    try:
        changes = store.changes_after(0, 100)
        assert changes and all(c.model_version == "" for c in changes), "old entries read with the new columns"
    finally:
        store.close()

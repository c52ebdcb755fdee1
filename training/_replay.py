"""Replay signals through the deterministic core into a store: history to train on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import linkage


def replay_into_store(
    signals: Iterable[linkage.Signal],
    store_path: Path,
    config: linkage.LinkageConfig,
    batch_size: int = 1000,
    progress: Callable[[str], None] = print,
) -> int:
    """Stitch `signals` (time-ordered) into a DuckDB store at `store_path`; returns how many."""

    async def run() -> int:
        stitcher = linkage.Stitcher(config, linkage.DuckDBStore(store_path))
        await stitcher.start()
        count = 0
        started = time.monotonic()
        batch: list[linkage.Signal] = []
        try:
            for signal in signals:
                batch.append(signal)
                if len(batch) == batch_size:
                    await stitcher.ingest(batch)
                    count += len(batch)
                    batch = []
                    if count % 50_000 == 0:
                        rate = count / (time.monotonic() - started)
                        progress(f"  replayed {count:,} signals ({rate:,.0f}/s)")
            if batch:
                await stitcher.ingest(batch)
                count += len(batch)
        finally:
            await stitcher.close()
        return count

    return asyncio.run(run())

"""The idempotency window's event index against the dict it replaced: memory and time per event.

    python benchmarks/bench_event_index.py               # 1,000,000 events
    python benchmarks/bench_event_index.py --events 200000

Both hold the same event ids (the form clients send: a prefix and a counter) and the component
each resolved to; the index also keeps the arrival second. Memory is traced with tracemalloc
(Python and numpy allocations) in one build, time is the wall clock, in another, of adding every event after looking it
up, as ingest does, and of looking every one up again. The index's time includes the keyed
digest (HMAC-SHA256) ingest computes anyway when the erasure list is not empty.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import machine, machine_line

from linkage.identity._event_index import EventIndex

SECRET = b"bench-secret-32-bytes-long......."


def _digest(event_id: str) -> str:
    return hmac.new(SECRET, f"erased\x1fevent\x1f{event_id}".encode(), hashlib.sha256).hexdigest()


def _measure(build: Callable[[int], Any], n: int) -> tuple[float, float, Any]:
    """Bytes held (traced in one build) and seconds (of another, untraced: tracing slows it)."""
    gc.collect()
    tracemalloc.start()
    held = build(n)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held
    gc.collect()
    started = time.perf_counter()
    held = build(n)
    return current, time.perf_counter() - started, held


def _event_id(k: int) -> str:
    # A fresh string per event, as each request brings its own.
    return f"shop-7-{k:012d}"


def _dict(n: int) -> dict[str, int]:
    events: dict[str, int] = {}
    for k in range(n):
        event_id = _event_id(k)
        if events.get(event_id) is None:
            events[event_id] = k
    return events


def _index(n: int) -> EventIndex:
    index = EventIndex(30 * 86_400.0, _digest)
    now = time.time()
    for k in range(n):
        d = index.digest(_event_id(k))
        if index.get(d, now) is None:
            index.add(d, k, now)
    index.merge(now)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    n = parser.parse_args().events
    dict_bytes, dict_seconds, events = _measure(_dict, n)
    index_bytes, index_seconds, index = _measure(_index, n)
    started = time.perf_counter()
    now = time.time()
    found = sum(1 for k in range(n) if index.get(index.digest(_event_id(k)), now) is not None)
    lookup = time.perf_counter() - started
    assert found == n == len(events)
    print(f"| measure ({n:,} events) | dict (before) | event index | index / dict |")
    print("|---|---|---|---|")
    print(f"| memory per event | {dict_bytes / n:.0f} B | {index_bytes / n:.0f} B | {index_bytes / dict_bytes:.2f} |")
    print(
        f"| add after a lookup, per event | {dict_seconds / n * 1e6:.2f} µs | {index_seconds / n * 1e6:.2f} µs "
        f"| {index_seconds / dict_seconds:.1f} |"
    )
    print(f"| lookup again, per event | | {lookup / n * 1e6:.2f} µs | |")
    print()
    print(machine_line(machine(Path(tempfile.gettempdir()))))


if __name__ == "__main__":
    main()

"""Compaction: rewrite a store file so that erased rows leave no bytes behind.

DuckDB frees the blocks of deleted rows without overwriting them, so after `Forget` a
person's identifiers, addresses and customer attributes can still be read from the raw file
(and from its backups) by anyone who scans its bytes. Copying the live rows into a fresh file
and putting that in the original's place is what erases them for good.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._duckdb_store import DuckDBStore


@dataclass(frozen=True, slots=True)
class Compaction:
    """What `compact_store` did: the file, its size before and after, rows kept per table."""

    path: Path
    bytes_before: int
    bytes_after: int
    rows: dict[str, int]


def compact_store(path: str | os.PathLike[str]) -> Compaction:
    """Rewrite the store file at `path` into a fresh file and replace the original with it.

    The store must not be open elsewhere: a running server holds it, and this raises
    `StoreLocked` (stop the server first). The original is replaced only once the copy is
    complete, its row counts checked and flushed, and only while this process still holds the
    original's lock; a crash before that leaves the original as it was and a stray
    `<name>.compacting` file, which the next run removes.
    """
    original = Path(path)
    if not original.is_file():
        raise FileNotFoundError(f"no store at {original}")
    fresh = original.with_name(original.name + ".compacting")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    status = original.stat()
    store = DuckDBStore(original)
    try:
        rows = store.copy_to(fresh)
        os.chmod(fresh, status.st_mode & 0o7777)  # an operator's 0600 stays 0600
        _fsync(fresh)
        os.replace(fresh, original)
        _fsync(original.parent)
    finally:
        # Closing checkpoints the old, now unlinked, file: nothing reaches the new one.
        store.close()
    return Compaction(original, status.st_size, original.stat().st_size, rows)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

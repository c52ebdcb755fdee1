"""Compaction: rewrite a store file so that erased rows leave no bytes behind.

DuckDB frees the blocks of deleted rows without overwriting them, so after `Forget` a
person's identifiers, addresses and customer attributes can still be read from the raw file
(and from its backups) by anyone who scans its bytes. Copying the live rows into a fresh file
and putting that in the original's place is what erases them for good.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ._duckdb import DuckDBStore


@dataclass(frozen=True, slots=True)
class Compaction:
    """What `compact_store` did: the file, its size before and after, rows kept per table."""

    path: Path
    bytes_before: int
    bytes_after: int
    rows: dict[str, int]


def compact_store(path: str | os.PathLike[str], principal: str = "local") -> Compaction:
    """Rewrite the store file at `path` into a fresh file and replace the original with it.

    The store must not be open elsewhere: a running server holds it, and this raises
    `StoreLocked` (stop the server first). The copy is written in a private directory beside
    the original and replaces it only once complete, its row counts checked and flushed, and
    only while this process still holds the original's lock, with the original's mode (and
    owner, when run as root). Interrupted, it leaves the original as it was and a stray
    `.<name>.compacting-*` directory, which the next run removes. Any other failure raises
    `RuntimeError` and leaves the original as it was. The audit log, which the copy keeps,
    gains a "compaction" entry by `principal`, written before the copy: it records the attempt,
    and stays in the original if the compaction fails.
    """
    original = Path(path)
    if not original.is_file():
        raise FileNotFoundError(f"no store at {original}")
    status = original.stat()
    prefix = f".{original.name}.compacting-"
    store = DuckDBStore(original)  # takes the lock first: a second run stops here
    try:
        for leftover in original.parent.glob(prefix + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=original.parent))  # mode 0700
        try:
            fresh = workdir / original.name
            store.append_audit(principal, "compaction", original.name, f"{status.st_size} bytes before", time.time())
            rows = store.copy_to(fresh)
            os.chmod(fresh, status.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(fresh, status.st_uid, status.st_gid)
            _fsync(fresh)
            wal = original.with_name(original.name + ".wal")
            if wal.exists():
                raise RuntimeError(f"{wal} exists after a checkpoint; {original} left as it was")
            os.replace(fresh, original)
            _fsync(original.parent)
        except duckdb.Error as exc:
            raise RuntimeError(f"compaction failed, {original} left as it was: {exc}") from exc
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
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

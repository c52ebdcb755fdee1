"""`idstitch import --watch DIR`: import the files integrators drop into a folder.

A file is imported once its size and modification time are the same on two polls in a row
(it is still being copied otherwise), then moved to DIR/imported/ or, if it could not be
read or was refused, to DIR/failed/ with NAME.errors.txt beside it. Rows the server rejected
do not fail a file: it is imported, and NAME.errors.txt in imported/ lists them.

When the server is unreachable a file stays where it is and is tried again on a later poll,
rather than piling up in failed/ during an outage. Writers that can should copy to a
hidden name (".name.csv") or another suffix and rename when done: renames are atomic, and
this watcher ignores such names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from ._import_files import is_import_file
from ._import_report import FileReport

Importer = Callable[[Path], Awaitable[FileReport]]
_Signature = tuple[int, int]  # size, mtime in ns


class Stability:
    """Which files have stopped changing: same size and mtime as on the previous poll."""

    def __init__(self) -> None:
        self._previous: dict[str, _Signature] = {}

    def ready(self, now: dict[str, _Signature]) -> list[str]:
        stable = [name for name, sig in now.items() if self._previous.get(name) == sig]
        self._previous = dict(now)
        # Oldest first: integrators' files are often deltas that must apply in order.
        return sorted(stable, key=lambda name: (now[name][1], name))


class Watcher:
    def __init__(self, inbox: Path, importer: Importer, *, interval: float, say: Callable[[str], None]) -> None:
        self.inbox = inbox
        self.imported = inbox / "imported"
        self.failed = inbox / "failed"
        self._importer = importer
        self._interval = interval
        self._say = say
        self._stability = Stability()
        # Files handled but still in the inbox (a move failed): not imported again unless changed.
        self._handled: set[tuple[str, _Signature]] = set()
        self._server_down = False

    async def run(self) -> None:
        """Poll until cancelled (Ctrl-C, SIGTERM); a cancelled import applies nothing and stays in the inbox."""
        self._prepare()
        self._say(f"watching {self.inbox} every {self._interval:g} s for .csv, .csv.gz and .parquet files")
        while True:
            await self.poll_once()
            await asyncio.sleep(self._interval)

    async def poll_once(self) -> list[FileReport]:
        self._prepare()
        reports = []
        now = self._snapshot()
        for name in self._stability.ready(now):
            if (name, now[name]) in self._handled:
                continue
            report = await self._handle(self.inbox / name)
            if report is None:
                self._handled.add((name, now[name]))
                continue
            if report.transient:
                # Leave it, and the files after it, for a later poll; say so once per outage.
                if not self._server_down:
                    self._say(f"{report.summary()}; will retry")
                self._server_down = True
                break
            self._server_down = False
            self._file_away(report)
            self._handled.add((name, now[name]))
            reports.append(report)
        return reports

    def _prepare(self) -> None:
        if not self.inbox.is_dir():
            raise FileNotFoundError(f"no folder {self.inbox}")
        self.imported.mkdir(exist_ok=True)
        self.failed.mkdir(exist_ok=True)

    def _snapshot(self) -> dict[str, _Signature]:
        out: dict[str, _Signature] = {}
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if not entry.is_file() or not is_import_file(Path(entry.name)):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # moved away between listing and stat
                out[entry.name] = (st.st_size, st.st_mtime_ns)
        return out

    async def _handle(self, path: Path) -> FileReport | None:
        previous = self.imported / path.name
        if previous.exists() and _digest(previous) == _digest(path):
            # Same name, same bytes: already applied, and sending it again would change nothing.
            os.replace(path, previous)
            self._say(f"{path}: already imported (same content); not sent again")
            return None
        if not self._server_down:  # during an outage every poll retries; say it once
            self._say(f"{path}: importing")
        return await self._importer(path)

    def _file_away(self, report: FileReport) -> None:
        folder = self.imported if report.imported else self.failed
        target = _free_name(folder / report.path.name)
        try:
            os.replace(report.path, target)
            if report.issues or report.error or report.unlisted:
                target.with_name(target.name + ".errors.txt").write_text(report.text(), encoding="utf-8")
        except OSError as exc:
            self._say(f"{report.path}: could not move it to {folder}: {exc.strerror}")
            return
        self._say(f"{report.summary()} -> {target}")


def _free_name(target: Path) -> Path:
    """`target`, or beside it with a UTC time stamp when a different file already has that name."""
    if not target.exists():
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = target.name
    stem, dot, suffix = name.partition(".")
    return target.with_name(f"{stem}.{stamp}{dot}{suffix}")


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()

"""The visitor evidence saved beside the store at shutdown, so that a restart need not replay
every stored signal to rebuild it.

The cache is valid only for the history it was saved from: it carries the store's history mark
(last change sequence, event count, latest arrival), and a start whose store shows another mark
replays the events as before. It is a pickle, so it is read only from a file the service's own
user owns and nobody else can read or write (the data directory's rules); anything else is
ignored and replaced at the next shutdown.
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
import tempfile
from pathlib import Path

from ..visitor._index import VisitorIndex

log = logging.getLogger("idstitch.linkage")

_FORMAT = 2  # 2: the index counts weekend signals per address (workplaces)
HistoryMark = tuple[int, int, int]


class EvidenceCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, mark: HistoryMark, index: VisitorIndex) -> None:
        """Write the index for `mark`, atomically, private to this user."""
        fd, temporary = tempfile.mkstemp(prefix=".evidence-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:  # mkstemp makes it 0600
                pickle.dump((_FORMAT, mark, index.settings, index), out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self, mark: HistoryMark, settings: tuple[object, ...]) -> VisitorIndex | None:
        """The saved index if it was saved for exactly this history and these index settings."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            log.warning("ignoring %s: it must belong to this user and be private (mode 0600)", self.path)
            return None
        try:
            with self.path.open("rb") as cached:
                found = pickle.load(cached)
        except Exception as exc:  # a torn or foreign file: replay instead
            log.warning("ignoring %s: unreadable (%s)", self.path, type(exc).__name__)
            return None
        if not (isinstance(found, tuple) and len(found) == 4 and found[0] == _FORMAT):
            log.info("ignoring %s: another format", self.path)
            return None
        _, saved_mark, saved_settings, index = found
        if tuple(saved_mark) != mark or tuple(saved_settings) != settings or not isinstance(index, VisitorIndex):
            log.info("visitor evidence cache is stale (the store changed since it was saved): replaying")
            return None
        return index

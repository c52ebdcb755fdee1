"""The change feed's messages, encoded once for all subscribers."""

from __future__ import annotations

import operator
from collections import OrderedDict
from typing import TypeVar

import linkage

from . import _convert as convert

_CHANGES_KEPT = 20_000
_PAGES_KEPT = 32
_COMMITS_KEPT = 64
_K = TypeVar("_K")
_V = TypeVar("_V")


class EncodedChanges:
    """Serialized `Change` messages and `ChangeBatch` pages, kept for the followers that ask
    next. Followers read the same change objects from the core's window, and those that keep
    up get the same pages (they wake on the same commit and linger as long), so a page is built and
    serialized once for all of them: with ten followers, work per change and follower in
    Python would cost more than the ingest they follow. An entry is reused only for the very
    change objects it was made of; a change read again from the store (after an erasure
    rewrote it) is another object and is encoded anew.

    While followers are at the head, each commit's changes are encoded ahead, while the store
    writes them (`encode_ahead`, called by the core): a page of whole commits is then their
    encodings joined (serialized messages of one repeated field concatenate), and the
    encoding no longer runs in series with the next ingest call. A commit larger than a page
    (a bulk import) is never a page whole, and is left to be encoded page by page when read."""

    def __init__(self, page_size: int) -> None:
        self._page_size = page_size
        self._changes: OrderedDict[int, tuple[linkage.Change, bytes]] = OrderedDict()
        self._pages: OrderedDict[tuple[int, int], tuple[list[linkage.Change], bytes]] = OrderedDict()
        # By the sequence of a commit's first change: its changes and their `ChangeBatch`.
        self._commits: OrderedDict[int, tuple[list[linkage.Change], bytes]] = OrderedDict()
        self.followers = 0  # batch followers being served; nobody following, nothing ahead

    def encode_ahead(self, changes: list[linkage.Change]) -> None:
        """Encode a commit's changes as one `ChangeBatch`, for the pages that hold them."""
        if self.followers and 0 < len(changes) <= self._page_size:
            encoded = convert.change_batch(changes).SerializeToString()
            _keep(self._commits, changes[0].sequence, (changes, encoded), _COMMITS_KEPT)

    def encode(self, change: linkage.Change) -> bytes:
        """A serialized `Change`."""
        held = self._changes.get(change.sequence)
        if held is not None and held[0] is change:
            return held[1]
        encoded: bytes = convert.change(change).SerializeToString()
        _keep(self._changes, change.sequence, (change, encoded), _CHANGES_KEPT)
        return encoded

    def encode_batch(self, changes: list[linkage.Change]) -> bytes:
        """A serialized `ChangeBatch` of these changes."""
        if not changes:
            return b""
        key = (changes[0].sequence, changes[-1].sequence)
        held = self._pages.get(key)
        if held is not None and _same(held[0], changes):
            return held[1]
        encoded = self._joined(changes)
        if encoded is None:
            encoded = convert.change_batch(changes).SerializeToString()
        _keep(self._pages, key, (changes, encoded), _PAGES_KEPT)
        return encoded

    def _joined(self, page: list[linkage.Change]) -> bytes | None:
        """The page from the commits encoded ahead, if it is made of whole ones."""
        parts: list[bytes] = []
        at = 0
        while at < len(page):
            held = self._commits.get(page[at].sequence)
            if held is None:
                return None
            changes, encoded = held
            if not _same(changes, page[at : at + len(changes)]):
                return None
            parts.append(encoded)
            at += len(changes)
        return b"".join(parts)


def _same(held: list[linkage.Change], changes: list[linkage.Change]) -> bool:
    return len(held) == len(changes) and all(map(operator.is_, held, changes))


def _keep(entries: OrderedDict[_K, _V], key: _K, value: _V, most: int) -> None:
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > most:
        entries.popitem(last=False)

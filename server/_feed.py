"""The change feed's messages, encoded once for all subscribers."""

from __future__ import annotations

import operator
from collections import OrderedDict
from typing import TypeVar

import linkage

from . import _convert as convert

_CHANGES_KEPT = 20_000
_PAGES_KEPT = 32
_K = TypeVar("_K")
_V = TypeVar("_V")


class EncodedChanges:
    """Serialized `Change` messages and `ChangeBatch` pages, kept for the followers that ask
    next. Followers read the same change objects from the core's window, and those that keep
    up get the same pages (they wake on the same commit and linger as long), so a page is built and
    serialized once for all of them: with ten followers, work per change and follower in
    Python would cost more than the ingest they follow. An entry is reused only for the very
    change objects it was made of; a change read again from the store (after an erasure
    rewrote it) is another object and is encoded anew."""

    def __init__(self) -> None:
        self._changes: OrderedDict[int, tuple[linkage.Change, bytes]] = OrderedDict()
        self._pages: OrderedDict[tuple[int, int], tuple[list[linkage.Change], bytes]] = OrderedDict()

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
        if held is not None and len(held[0]) == len(changes) and all(map(operator.is_, held[0], changes)):
            return held[1]
        encoded: bytes = convert.change_batch(changes).SerializeToString()
        _keep(self._pages, key, (changes, encoded), _PAGES_KEPT)
        return encoded


def _keep(entries: OrderedDict[_K, _V], key: _K, value: _V, most: int) -> None:
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > most:
        entries.popitem(last=False)

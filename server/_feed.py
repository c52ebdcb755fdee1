"""The change feed's messages, encoded once for all subscribers."""

from __future__ import annotations

import operator
from collections import deque

import linkage

from . import _convert as convert

_KEPT = 20_000
_SEQUENCE = operator.attrgetter("sequence")


class EncodedChanges:
    """Serialized `Change` messages by sequence. Followers of the feed read the same change
    objects from the core's window, so each is converted and serialized once; a change read
    again from the store (after an erasure rewrote it) is another object and encoded anew.

    Each change is also kept framed as one entry of a `ChangeBatch` (tag, length, message),
    so that a follower's page is a join of shared bytes: with ten followers, work per change
    and follower in Python would cost more than the ingest it follows."""

    def __init__(self) -> None:
        self._changes: dict[int, linkage.Change] = {}
        self._encoded: dict[int, bytes] = {}
        self._framed: dict[int, bytes] = {}
        self._order: deque[int] = deque()

    def encode(self, change: linkage.Change) -> bytes:
        if self._changes.get(change.sequence) is not change:
            self._add(change)
        return self._encoded[change.sequence]

    def encode_batch(self, changes: list[linkage.Change]) -> bytes:
        """A serialized `ChangeBatch` of these changes: field 1, length-delimited, once per
        change (what protobuf would write), joined from their shared framings."""
        sequences = list(map(_SEQUENCE, changes))
        held = self._changes
        if not all(map(operator.is_, map(held.get, sequences), changes)):
            for change in changes:
                if held.get(change.sequence) is not change:
                    self._add(change)
        return b"".join(map(self._framed.__getitem__, sequences))

    def _add(self, change: linkage.Change) -> None:
        encoded: bytes = convert.change(change).SerializeToString()
        sequence = change.sequence
        if sequence not in self._changes:
            self._order.append(sequence)
        self._changes[sequence] = change
        self._encoded[sequence] = encoded
        size = len(encoded)
        self._framed[sequence] = (_FRAMES[size] if size < len(_FRAMES) else _frame(size)) + encoded
        while len(self._order) > _KEPT:
            dropped = self._order.popleft()
            del self._changes[dropped], self._encoded[dropped], self._framed[dropped]


def _frame(size: int) -> bytes:
    """`ChangeBatch.changes` (field 1, wire type 2) and a message's length, as a varint."""
    out = bytearray(_CHANGES_TAG)
    while size > 0x7F:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


_CHANGES_TAG = bytes([1 << 3 | 2])
_FRAMES = tuple(_frame(size) for size in range(1 << 14))  # every change but a huge one

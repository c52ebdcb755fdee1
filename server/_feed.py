"""The change feed's messages, encoded once for all subscribers."""

from __future__ import annotations

from collections import OrderedDict

import linkage

from . import _convert as convert

_KEPT = 20_000


class EncodedChanges:
    """Serialized `Change` messages by sequence. Followers of the feed read the same change
    objects from the core's window, so each is converted and serialized once; a change read
    again from the store (after an erasure rewrote it) is another object and encoded anew."""

    def __init__(self) -> None:
        self._by_sequence: OrderedDict[int, tuple[linkage.Change, bytes]] = OrderedDict()

    def encode(self, change: linkage.Change) -> bytes:
        held = self._by_sequence.get(change.sequence)
        if held is not None and held[0] is change:
            return held[1]
        encoded: bytes = convert.change(change).SerializeToString()
        self._by_sequence[change.sequence] = (change, encoded)
        if len(self._by_sequence) > _KEPT:
            self._by_sequence.popitem(last=False)
        return encoded

    def encode_batch(self, changes: list[linkage.Change]) -> bytes:
        """A serialized `ChangeBatch` of these changes, from their shared encodings: field 1,
        length-delimited, once per change (what protobuf would write)."""
        parts: list[bytes] = []
        for change in changes:
            encoded = self.encode(change)
            parts += (_CHANGES_TAG, _varint(len(encoded)), encoded)
        return b"".join(parts)


_CHANGES_TAG = bytes([1 << 3 | 2])  # ChangeBatch.changes: field 1, wire type 2


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

"""The event ids of the idempotency window: a replayed event id within it changes nothing.

An event costs 44 bytes here, in numpy arrays rather than a Python object per event: the
keyed digest the erasure list would remember it by (32 bytes, so an erasure can suppress the
person's events without their ids), the component it resolved to, and the second it arrived.
New events wait in a small dict until it is merged into the sorted arrays; a merge also drops
what fell out of the window. An event older than the window is unknown again: replayed, it is
applied as new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from numpy.typing import NDArray

_WORDS = 4  # 64-bit words of a 32-byte digest
# The dict of new events is merged into the arrays once it holds this many, or an eighth of
# the arrays, whichever is more: a merge is a sort, so each event is sorted O(log n) times.
_MIN_PENDING = 65_536
_DISCARDED = -1


class EventIndex:
    """Event-id digests seen within `window_seconds` of the latest arrival, and the component
    each resolved to. `digest` is the keyed hash of an event id (hex of 32 bytes)."""

    __slots__ = ("_arrived", "_components", "_digest", "_heads", "_pending", "_rests", "_window")

    def __init__(self, window_seconds: float, digest: Callable[[str], str]) -> None:
        if not window_seconds > 0:
            raise ValueError("the idempotency window must be positive")
        self._window = window_seconds
        self._digest = digest
        # Little-endian words whatever the machine, so that a row's bytes are the digest's.
        self._heads: NDArray[np.uint64] = np.empty(0, dtype="<u8")  # first word, sorted
        self._rests: NDArray[np.uint64] = np.empty((0, _WORDS - 1), dtype="<u8")
        self._components: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._arrived: NDArray[np.uint32] = np.empty(0, dtype=np.uint32)  # whole epoch seconds
        self._pending: dict[bytes, tuple[int, int]] = {}  # digest -> (component, arrived)

    def __len__(self) -> int:
        return int(np.count_nonzero(self._components != _DISCARDED)) + len(self._pending)

    @property
    def nbytes(self) -> int:
        """Bytes held by the merged arrays (the pending dict not counted)."""
        return sum(a.nbytes for a in (self._heads, self._rests, self._components, self._arrived))

    def digest(self, event_id: str) -> str:
        return self._digest(event_id)

    def get(self, digest: str, now: float) -> int | None:
        """The component the event of this digest resolved to, if it arrived within the window
        before `now`."""
        key = bytes.fromhex(digest)
        oldest = now - self._window
        pending = self._pending.get(key)
        if pending is not None:
            return pending[0] if pending[1] >= oldest else None
        at = self._find(key)
        if at is None or self._arrived[at] < oldest:
            return None
        return int(self._components[at])

    def add(self, digest: str, component: int, arrived: float) -> None:
        self._pending[bytes.fromhex(digest)] = (component, int(arrived))
        if len(self._pending) >= max(_MIN_PENDING, len(self._heads) // 8):
            self.merge(arrived)

    def load(self, rows: Iterable[tuple[str, str, int, float]], now: float) -> None:
        """Add stored events (digest or "", event id, component, arrival) at start, those within
        the window; an event stored without its digest (by an older version) is hashed here."""
        oldest = now - self._window
        for digest, event_id, component, arrived in rows:
            if arrived >= oldest:
                self._pending[bytes.fromhex(digest or self._digest(event_id))] = (component, int(arrived))
        self.merge(now)

    def discard(self, event_ids: Iterable[str]) -> None:
        """Forget these events (the store deleted them with an erased person)."""
        for event_id in event_ids:
            key = bytes.fromhex(self._digest(event_id))
            if self._pending.pop(key, None) is None and (at := self._find(key)) is not None:
                self._components[at] = _DISCARDED

    def digests_of(self, components: set[int]) -> list[str]:
        """The digests of the events that resolved to any of `components`."""
        found = [key.hex() for key, (component, _) in self._pending.items() if component in components]
        rows = np.flatnonzero(np.isin(self._components, np.fromiter(components, dtype=np.int64)))
        if len(rows):
            words = np.column_stack((self._heads[rows], self._rests[rows])).astype("<u8", copy=False)
            blob = words.tobytes()
            found += [blob[i : i + 8 * _WORDS].hex() for i in range(0, len(blob), 8 * _WORDS)]
        return found

    def merge(self, now: float) -> None:
        """Merge the pending events into the arrays, dropping those out of the window."""
        keys = np.frombuffer(b"".join(self._pending), dtype="<u8").reshape(-1, _WORDS)
        values = self._pending.values()
        components = np.fromiter((c for c, _ in values), np.int64, len(values))
        arrived = np.fromiter((a for _, a in values), np.uint32, len(values))
        self._pending = {}
        # Sort the few new ones and insert them where they go: no sort of the whole.
        order = np.argsort(keys[:, 0], kind="stable")
        keys, components, arrived = keys[order], components[order], arrived[order]
        # After any equal heads already there: the latest entry of a digest is the last one.
        at = np.searchsorted(self._heads, keys[:, 0], side="right")
        heads = np.insert(self._heads, at, keys[:, 0])
        rests = np.insert(self._rests, at, keys[:, 1:], axis=0)
        components = np.insert(self._components, at, components)
        arrived = np.insert(self._arrived, at, arrived)
        keep = (components != _DISCARDED) & (arrived >= now - self._window)
        if not keep.all():
            heads, rests, components, arrived = heads[keep], rests[keep], components[keep], arrived[keep]
        self._heads, self._rests, self._components, self._arrived = heads, rests, components, arrived

    def _find(self, key: bytes) -> int | None:
        head = np.uint64(int.from_bytes(key[:8], "little"))
        heads = self._heads
        at = int(heads.searchsorted(head))
        found = None
        # The last match is the latest: an event replayed after the window sits after its old
        # entry until a merge drops that one.
        while at < len(heads) and heads[at] == head:
            if self._rests[at].tobytes() == key[8:] and self._components[at] != _DISCARDED:
                found = at
            at += 1
        return found

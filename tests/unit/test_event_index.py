"""The idempotency window's event index (`linkage.identity._event_index`)."""

from __future__ import annotations

import hashlib

import pytest

from linkage.identity._event_index import EventIndex

DAY = 86_400.0
T0 = 1_750_000_000.0


def _digest(event_id: str) -> str:
    return hashlib.sha256(f"test/{event_id}".encode()).hexdigest()


def _index(window: float = 30 * DAY) -> EventIndex:
    return EventIndex(window, _digest)


@pytest.mark.parametrize("merged", [False, True])
def test_an_event_is_known_within_the_window_and_unknown_after_it(merged: bool) -> None:
    index = _index()
    index.add(_digest("e-1"), 7, T0)
    if merged:
        index.merge(T0)

    assert index.get(_digest("e-1"), T0 + 29 * DAY) == 7
    assert index.get(_digest("e-2"), T0) is None
    assert index.get(_digest("e-1"), T0 + 31 * DAY) is None


def test_a_replay_after_the_window_is_kept_as_new_and_the_old_entry_goes_at_the_next_merge() -> None:
    index = _index(window=10.0)
    index.add(_digest("e-1"), 7, T0)
    index.merge(T0)
    later = T0 + 11
    assert index.get(_digest("e-1"), later) is None

    index.add(_digest("e-1"), 9, later)
    assert index.get(_digest("e-1"), later) == 9
    index.merge(later)
    assert index.get(_digest("e-1"), later) == 9
    assert len(index) == 1


def test_discarded_events_are_unknown_whether_pending_or_merged() -> None:
    index = _index()
    index.add(_digest("old"), 1, T0)
    index.merge(T0)
    index.add(_digest("new"), 1, T0)

    index.discard(["old", "new", "never-seen"])

    assert index.get(_digest("old"), T0) is None and index.get(_digest("new"), T0) is None
    assert len(index) == 0


def test_the_digests_of_a_persons_events_are_found_for_the_erasure_list() -> None:
    index = _index()
    for k in range(5):
        index.add(_digest(f"m-{k}"), k % 2, T0)
    index.merge(T0)
    index.add(_digest("p-1"), 1, T0)

    assert sorted(index.digests_of({1})) == sorted(_digest(e) for e in ("m-1", "m-3", "p-1"))
    assert index.digests_of({5}) == []


def test_many_events_cost_bytes_not_objects_and_stay_found() -> None:
    index = _index()
    n = 200_000
    for k in range(n):
        index.add(_digest(f"e-{k}"), k, T0 + k * 0.001)
    index.merge(T0 + n)

    assert len(index) == n
    assert index.nbytes <= 44 * n
    for k in (0, 1, 65_535, 65_536, n - 1):
        assert index.get(_digest(f"e-{k}"), T0 + n) == k


def test_loading_keeps_only_the_window() -> None:
    index = _index(window=DAY)
    index.load([("", "recent", 1, T0 - 100), (_digest("old"), "old", 2, T0 - 2 * DAY)], now=T0)

    assert index.get(_digest("recent"), T0) == 1
    assert index.get(_digest("old"), T0) is None and len(index) == 1


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        EventIndex(0, _digest)


def test_loading_reads_stored_digests_and_hashes_only_events_stored_without_one() -> None:
    hashed: list[str] = []

    def counting(event_id: str) -> str:
        hashed.append(event_id)
        return _digest(event_id)

    index = EventIndex(DAY, counting)
    index.load([(_digest("new"), "new", 1, T0), ("", "from-an-older-version", 2, T0)], now=T0)

    assert hashed == ["from-an-older-version"]
    assert index.get(_digest("new"), T0) == 1 and index.get(_digest("from-an-older-version"), T0) == 2

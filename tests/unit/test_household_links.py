"""Household links kept right as their persons change: merged, soft-linked or erased.

The links are seeded straight into the in-memory store (making them takes the visitor model),
then the graph is rebuilt from it: cookies c1..c5 are persons 1..5.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from linkage import ChangeKind, Identifier, LinkageConfig, MemoryStore, NotFound, Signal, Stitcher
from linkage.softlinks import HouseholdLink, SoftLink
from linkage.store._rows import CommitBatch, HouseholdLinkRow, SoftLinkRow
from linkage.visitor._linker import SoftLinks


def _run(test: Callable[[Stitcher], Awaitable[None]], store: MemoryStore) -> None:
    async def main() -> None:
        stitcher = Stitcher(LinkageConfig(hash_secret=b"k"), store)
        await stitcher.start()
        try:
            await test(stitcher)
        finally:
            await stitcher.close()

    asyncio.run(main())


def _cookie(n: int) -> Identifier:
    return Identifier("cookie", f"c{n}")


def _signal(event: str, *cookies: int) -> Signal:
    return Signal(event, tuple(_cookie(n) for n in cookies), timestamp=1_750_000_000.0)


def _seeded(households: dict[int, tuple[int, ...]], soft: dict[int, int] | None = None) -> MemoryStore:
    store = MemoryStore()

    async def persons(s: Stitcher) -> None:
        for n in range(1, 6):
            [result] = await s.ingest([_signal(f"e{n}", n)])
            assert result.person_id == n

    _run(persons, store)
    store.commit(
        CommitBatch(
            household_links=[HouseholdLinkRow(c, p, 0.9, "m", 1.0) for c, p in households.items()],
            soft_links=[SoftLinkRow(c, t, 0.97, 5.0, "m", (), (), 1.0) for c, t in (soft or {}).items()],
        )
    )
    return store


async def _household_changes(s: Stitcher) -> list[tuple[ChangeKind, int | None, int | None, tuple[int, ...]]]:
    kinds = (ChangeKind.HOUSEHOLD_LINKED, ChangeKind.HOUSEHOLD_UNLINKED)
    return [
        (c.kind, c.other_person_id, c.household_id, c.household_persons)
        async for c in s.changes(0, follow=False)
        if c.kind in kinds
    ]


def test_an_erased_person_is_not_in_what_is_left_of_its_household() -> None:
    # Visitor 5 is one of persons 1, 2 and 3; visitor 4 one of persons 1 and 2.
    store = _seeded({4: (1, 2), 5: (1, 2, 3)})

    async def erase(s: Stitcher) -> None:
        assert s.household(1).household_id == 1
        await s.forget(person_id=1)
        [unlinked] = await _household_changes(s)
        assert unlinked[:2] == (ChangeKind.HOUSEHOLD_UNLINKED, 4)
        assert unlinked[3] == (2, 3), "what is left of the household: persons 2 and 3, not the erased 1"
        assert [p.person_id for p in s.household(2).persons] == [2, 3]

    async def after(s: Stitcher) -> None:
        assert [p.person_id for p in s.household(3).persons] == [2, 3]
        assert [v[0].person_id for v in s.household(3).visitors] == [5]
        with pytest.raises(NotFound):
            s.household(1)

    _run(erase, store)
    _run(after, store)


def test_a_hard_merge_into_a_soft_linked_part_of_a_household_person_leaves_no_household_of_one() -> None:
    # Visitor 5 is one of persons 1 and 3; component 2 is soft-linked to person 1.
    store = _seeded({5: (1, 3)}, soft={2: 1})

    async def merge(s: Stitcher) -> None:
        assert [p.person_id for p in s.household(1).persons] == [1, 3]
        await s.ingest([_signal("join", 2, 3)])  # 3 merges into 2: both are person 1 now
        assert s.resolve([_cookie(3)])[0].person_id == 1
        with pytest.raises(NotFound):
            s.household(1)
        assert s.resolve([_cookie(5)])[0].household_id is None
        assert (await _household_changes(s))[-1][:2] == (ChangeKind.HOUSEHOLD_UNLINKED, 5)

    async def after(s: Stitcher) -> None:
        assert s.resolve([_cookie(5)])[0].household_id is None

    _run(merge, store)
    _run(after, store)


def _recorded() -> tuple[list[tuple[int, int, SoftLink | None, str]], Callable[..., None]]:
    seen: list[tuple[int, int, SoftLink | None, str]] = []
    return seen, lambda *change: seen.append(change)


@pytest.mark.parametrize("target", [1, 3], ids=["the other person", "the visitor itself"])
def test_a_household_person_soft_linked_into_the_household_drops_the_household_link(target: int) -> None:
    links = SoftLinks(None)
    links.households.add(HouseholdLink(3, (1, 2), 0.9, "m", 1.0))
    links.households.events.clear()
    _, record = _recorded()

    links.attach(SoftLink(2, target, 0.97, 5.0, "m", (), 2.0), record)

    assert links.households.link_of(3) is None, "no household of one person (or of its own visitor)"
    assert links.households.household((1,)) is None
    [event] = links.households.events
    assert not event.linked and event.component == 3
    rows, removed = links.households.drain()
    assert rows == [] and removed == [3]


def test_a_visitor_moved_to_another_household_is_unlinked_from_the_first_in_the_change_log() -> None:
    links = SoftLinks(None)
    links.households.add(HouseholdLink(5, (1, 2), 0.9, "m", 1.0))
    links.households.add(HouseholdLink(5, (3, 4), 0.92, "m", 2.0))

    first, dropped, second = links.households.events
    assert (first.linked, first.household_id, first.persons) == (True, 1, (1, 2))
    assert (dropped.linked, dropped.household_id, dropped.persons) == (False, 1, ()), "household 1 is gone"
    assert (second.linked, second.household_id, second.persons) == (True, 3, (3, 4))
    assert links.households.household((1,)) is None


def test_a_household_visitor_that_logs_in_is_a_known_person_and_leaves_the_household() -> None:
    store = _seeded({5: (1, 2)})

    async def log_in(s: Stitcher) -> None:
        assert s.resolve([_cookie(5)])[0].household_id == 1
        await s.ingest([Signal("login", (_cookie(5), Identifier("login", "teen")), timestamp=1_750_000_100.0)])
        assert s.resolve([_cookie(5)])[0].household_id is None
        kind, visitor, household, left = (await _household_changes(s))[-1]
        assert (kind, visitor, household, left) == (ChangeKind.HOUSEHOLD_UNLINKED, 5, 1, ())
        with pytest.raises(NotFound):
            s.household(1)

    _run(log_in, store)

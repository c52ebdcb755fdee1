"""The stitching rules on the in-memory fake store: pure unit tests of the core."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from linkage import (
    ChangeKind,
    CustomerRecord,
    Identifier,
    LinkageConfig,
    MemoryStore,
    NotFound,
    Signal,
    SignalResult,
    Stitcher,
    Unavailable,
)
from linkage.store._rows import CommitBatch

Run = Callable[..., Awaitable[SignalResult]]


def _signal(event: str, *ids: tuple[str, str]) -> Signal:
    return Signal(event, tuple(Identifier(n, v) for n, v in ids), timestamp=1_750_000_000.0)


def _run(test: Callable[[Stitcher], Awaitable[None]], store: MemoryStore | None = None, **config: object) -> None:
    async def main() -> None:
        stitcher = Stitcher(LinkageConfig(hash_secret=b"k", **config), store or MemoryStore())  # type: ignore[arg-type]
        await stitcher.start()
        try:
            await test(stitcher)
        finally:
            await stitcher.close()

    asyncio.run(main())


async def _one(stitcher: Stitcher, event: str, *ids: tuple[str, str]) -> SignalResult:
    [result] = await stitcher.ingest([_signal(event, *ids)])
    return result


def test_a_second_value_of_a_unique_namespace_stays_apart_and_is_recorded() -> None:
    async def check(s: Stitcher) -> None:
        anna = await _one(s, "e1", ("crm:hotel", "H1"), ("login", "anna"))
        result = await _one(s, "e2", ("crm:hotel", "H1"), ("login", "ben"), ("cookie", "c"))
        assert result.person_id == anna.person_id
        [conflict] = result.conflicts
        assert conflict.identifier == Identifier("login", "ben") and "login" in conflict.reason
        ben = s.resolve([Identifier("login", "ben")])[0].person_id
        assert ben not in (None, anna.person_id)
        kinds = [c.kind async for c in s.changes(0, follow=False)]
        assert ChangeKind.CONFLICT in kinds

    _run(check)


def test_size_guard_refuses_a_merge_that_would_grow_a_person_too_big() -> None:
    async def check(s: Stitcher) -> None:
        a = await _one(s, "e1", ("cookie", "a1"), ("cookie", "a2"))
        b = await _one(s, "e2", ("cookie", "b1"), ("cookie", "b2"))
        result = await _one(s, "e3", ("cookie", "a1"), ("cookie", "b1"))
        assert result.person_id == a.person_id and not result.merged_person_ids
        assert [c.reason for c in result.conflicts] == ["person size limit"]
        assert s.resolve([Identifier("cookie", "b2")])[0].person_id == b.person_id

    _run(check, max_identifiers_per_person=3)


def test_anonymous_signal_between_two_logged_in_persons_merges_nothing() -> None:
    async def check(s: Stitcher) -> None:
        anna = await _one(s, "e1", ("login", "anna"), ("cookie", "ca"))
        ben = await _one(s, "e2", ("login", "ben"), ("cookie", "cb"))
        result = await _one(s, "e3", ("cookie", "ca"), ("cookie", "cb"))
        assert result.person_id == anna.person_id and len(result.conflicts) == 1
        assert s.resolve([Identifier("cookie", "cb")])[0].person_id == ben.person_id

    _run(check)


def test_merges_chain_and_every_alias_resolves_to_the_oldest() -> None:
    async def check(s: Stitcher) -> None:
        ids = [(await _one(s, f"e{n}", ("cookie", f"c{n}"))).person_id for n in range(4)]
        await _one(s, "m1", ("cookie", "c2"), ("cookie", "c3"))
        await _one(s, "m2", ("cookie", "c1"), ("cookie", "c2"))
        await _one(s, "m3", ("cookie", "c0"), ("cookie", "c3"))
        for person_id in ids:
            view = s.person(person_id)
            assert view.person_id == ids[0]
            assert view.aliases == tuple(ids[1:])

    _run(check)


def test_a_rebuilt_graph_answers_like_the_one_that_wrote_the_store() -> None:
    store = MemoryStore()
    identifiers = [Identifier("cookie", f"c{n}") for n in range(6)] + [
        Identifier("login", "u0"),
        Identifier("login", "u1"),
    ]
    answers: list[object] = []

    async def write(s: Stitcher) -> None:
        for n in range(6):
            await _one(s, f"e{n}", ("cookie", f"c{n}"), ("login", f"u{n % 2}"))
        await _one(s, "tablet", ("cookie", "c0"), ("login", "u1"))
        answers.extend(s.resolve(identifiers))
        answers.append(s.person(2))

    async def read(s: Stitcher) -> None:
        assert [*s.resolve(identifiers), s.person(2)] == answers
        again = await _one(s, "e0", ("cookie", "c0"), ("login", "u0"))
        assert again.duplicate

    _run(write, store)
    _run(read, store)


class _FailingStore(MemoryStore):
    fail = False

    def commit(self, batch: CommitBatch) -> None:
        if self.fail:
            raise OSError("disk full")
        super().commit(batch)


def test_a_failed_commit_answers_unavailable_and_leaves_no_trace() -> None:
    store = _FailingStore()

    async def check(s: Stitcher) -> None:
        kept = await _one(s, "e1", ("cookie", "kept"))
        store.fail = True
        with pytest.raises(Unavailable):
            await _one(s, "e2", ("cookie", "lost"), ("cookie", "kept"))
        store.fail = False
        assert s.resolve([Identifier("cookie", "lost")])[0].person_id is None
        assert s.person(kept.person_id).identifiers[0].value == "kept"
        retried = await _one(s, "e2", ("cookie", "lost"), ("cookie", "kept"))
        assert not retried.duplicate and retried.person_id == kept.person_id

    _run(check, store)


def test_forget_in_the_same_group_as_its_signals_and_after_a_rebuild() -> None:
    store = MemoryStore()
    gone: list[int] = []

    async def erase(s: Stitcher) -> None:
        await _one(s, "f0", ("cookie", "other"))
        # Queued together: the signals and the erasure share one commit.
        first, erased = await asyncio.gather(
            s.ingest([_signal("f1", ("cookie", "c1"), ("login", "eve")), _signal("f2", ("cookie", "c2"))]),
            s.forget(identifier=Identifier("login", "eve")),
        )
        assert erased.person_id == first[0].person_id
        gone.append(erased.person_id)
        assert erased.identifiers == 2 and erased.events == 1
        assert [r.person_id for r in s.resolve([Identifier("cookie", "c1"), Identifier("login", "eve")])] == [
            None,
            None,
        ]
        with pytest.raises(NotFound):
            await s.forget(person_id=erased.person_id)
        kinds = [c.kind async for c in s.changes(0, follow=False)]
        assert kinds[-1] is ChangeKind.PERSON_ERASED
        assert not [c for c in store.changes_after(0, 100) if c.value in ("c1", "eve")]
        # The erased event, sent again, is suppressed: nothing of it is stored or linked.
        again = await _one(s, "f1", ("cookie", "c9"))
        assert again.suppressed and not again.duplicate
        assert s.resolve([Identifier("cookie", "c9")])[0].person_id is None

    async def after(s: Stitcher) -> None:
        assert s.resolve([Identifier("login", "eve")])[0].person_id is None
        with pytest.raises(NotFound):
            s.person(gone[0])
        assert (await _one(s, "f1", ("cookie", "c9"))).suppressed, "suppressed after a rebuild too"
        assert (await _one(s, "f3", ("cookie", "new"))).person_id > 3, "ids are never reused"

    _run(erase, store)
    _run(after, store)


def test_a_signal_queued_right_after_a_forget_is_suppressed_not_stored() -> None:
    store = MemoryStore()
    kept: list[int] = []

    async def erase_then_see_again(s: Stitcher) -> None:
        old = await _one(s, "g1", ("cookie", "g"))
        erased, [again], [other] = await asyncio.gather(
            s.forget(identifier=Identifier("cookie", "g")),
            s.ingest([_signal("g2", ("cookie", "g"))]),
            s.ingest([_signal("g3", ("cookie", "h"))]),
        )
        assert erased.person_id == old.person_id and again.suppressed
        assert other.person_created
        kept.append(other.person_id)

    async def after(s: Stitcher) -> None:
        assert s.resolve([Identifier("cookie", "g")])[0].person_id is None
        assert s.resolve([Identifier("cookie", "h")])[0].person_id == kept[0]

    _run(erase_then_see_again, store)
    _run(after, store)


def test_an_identifier_lifted_and_erased_again_in_one_commit_stays_suppressed_after_a_rebuild() -> None:
    store = MemoryStore()

    async def erase_lift_erase(s: Stitcher) -> None:
        await _one(s, "k1", ("cookie", "k"))
        await s.forget(identifier=Identifier("cookie", "k"))
        # Queued together: the lift, the person's return and its second erasure share a commit.
        lifted, [back], erased = await asyncio.gather(
            s.lift_suppression([Identifier("cookie", "k")]),
            s.ingest([_signal("k2", ("cookie", "k"))]),
            s.forget(identifier=Identifier("cookie", "k")),
        )
        assert lifted == 1 and back.person_created and erased.person_id == back.person_id
        assert (await _one(s, "k3", ("cookie", "k"))).suppressed

    async def after(s: Stitcher) -> None:
        assert (await _one(s, "k4", ("cookie", "k"))).suppressed, "erased again, so suppressed again"

    _run(erase_lift_erase, store)
    _run(after, store)


def test_a_customer_record_of_an_erased_person_synced_again_stores_nothing_and_fails_nothing() -> None:
    store = MemoryStore()
    record = CustomerRecord("crm", "K1", given_name="Anna", family_name="Berg", email="anna@example.org")

    async def check(s: Stitcher) -> None:
        await s.sync_customer_records([record])
        [anna] = s.resolve([Identifier("email", "anna@example.org")])
        assert anna.person_id is not None
        await s.forget(person_id=anna.person_id)
        # The same record again (a full re-export of the CRM), and a changed one, with another
        # customer in the same stream: the erased one is left out, the other is stored.
        changed = replace(record, family_name="Berg-Lund")
        other = CustomerRecord("crm", "K2", given_name="Ben", family_name="Kahl", email="ben@example.org")
        summary = await s.sync_customer_records([record, changed, other])
        assert summary.received == 3 and summary.created == 1 and summary.rejected == 2
        assert [e.index for e in summary.errors] == [0, 1]
        assert s.resolve([Identifier("email", "anna@example.org")])[0].person_id is None
        assert s.resolve([Identifier("email", "ben@example.org")])[0].person_id is not None
        assert [r.key for r in store.load().customer_records] == [
            next(iter(i.key for i in store.load().identifiers if i.value == "K2"))
        ]

    _run(check, store)

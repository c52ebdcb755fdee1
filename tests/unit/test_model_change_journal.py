"""The model-change journal under traffic: what a rollback puts back when things happened
between the promote and it (new signals, an erasure). In-process, on the memory store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import linkage
from linkage.softlinks import SoftLink
from linkage.store import MemoryStore
from training import SimulationConfig, simulate

BUNDLED = linkage.VisitorModel.load(linkage.BUNDLED_MODEL)


def _strict(tmp_path: Path) -> linkage.VisitorModel:
    """The bundled model with a prior 64 times lower: most of its links no longer pass."""
    model = json.loads(linkage.BUNDLED_MODEL.read_text())
    model["probability_two_random_records_match"] /= 64
    path = tmp_path / "strict.json"
    path.write_text(json.dumps(model))
    return linkage.VisitorModel.load(path, threshold=BUNDLED.threshold)


def _links(stitcher: linkage.Stitcher) -> dict[int, SoftLink]:
    return dict(stitcher._graph._soft.links())


def test_rollback_after_new_signals_and_an_erasure_puts_back_what_it_can_and_rescores_the_rest(
    tmp_path: Path,
) -> None:
    signals = [s.signal for s in simulate(SimulationConfig(persons=600, days=21, seed=21))]
    first, later = signals[: len(signals) * 2 // 3], signals[len(signals) * 2 // 3 :]
    strict = _strict(tmp_path)

    async def scenario() -> None:
        stitcher = linkage.Stitcher(linkage.LinkageConfig(hash_secret=b"journal-test"), MemoryStore(), model=BUNDLED)
        await stitcher.start()
        try:
            for start in range(0, len(first), 500):
                await stitcher.ingest(first[start : start + 500])
            before = _links(stitcher)

            replaced = await stitcher.change_visitor_model(strict, "test", "promote_model", "")
            promoted = await stitcher.relink_after_model_change(replaced, "test")
            assert promoted.dropped > 0, "the strict model drops links"
            journal = {row.component: row for row in stitcher._graph._journal.entries()}
            assert journal and all((row.soft_link is None) == (before.get(c) is None) for c, row in journal.items()), (
                "the journal holds each changed link as it was"
            )

            for start in range(0, len(later), 500):  # the strict model links on new evidence, if any
                await stitcher.ingest(later[start : start + 500])
            targets = {row.soft_link.target for row in journal.values() if row.soft_link is not None}
            erased = min(targets) if targets else None
            if erased is not None:
                await stitcher.forget(person_id=erased)

            again = await stitcher.change_visitor_model(BUNDLED, "test", "rollback_model", "", rollback=True)
            await stitcher.relink_after_model_change(again, "test", rollback=True)

            after = _links(stitcher)
            assert not [c for c, link in after.items() if link.model_version == strict.version], (
                "nothing the rolled-back model linked stays linked by it"
            )
            # What can come back here: a visitor still anonymous (not merged, not logged in since) whose
            # person is still there; the others were scored again by the model put back.
            persons = stitcher._graph._persons
            restorable = [
                (c, row.soft_link) for c, row in journal.items()
                if row.soft_link is not None and c in persons and not persons[c].uniques
                and row.soft_link.target in persons
            ]  # fmt: skip
            assert restorable, "the scenario has links to put back"
            for component, old in restorable:
                assert after.get(component) == SoftLink.from_row(old), "put back exactly"
            assert erased is not None and erased not in persons
            assert all(link.target != erased for link in after.values()), "no link to the erased person"

        finally:
            await stitcher.close()

    asyncio.run(scenario())


_SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.4 Safari/605.1.15"  # noqa: E501
_DAY = 86_400.0
_START = 1_748_736_000.0  # 2025-06-01T00:00:00Z


def _visit(n: int, identifiers: tuple[tuple[str, str], ...], at: float, ip: str) -> linkage.Signal:
    return linkage.Signal(
        event_id=f"j{n}",
        identifiers=tuple(linkage.Identifier(ns, v) for ns, v in identifiers),
        timestamp=at,
        channel="web",
        context=linkage.Context(ip, linkage.Geo("DE", "Berlin"), _SAFARI),
    )


def test_a_rollback_puts_back_the_link_of_a_visitor_that_logged_in_after_it_was_linked(tmp_path: Path) -> None:
    """A browser's next cookie is soft-linked to its old cookie, then sends a CRM key (unique,
    clashing with nothing there): the link stays, as online. A stricter model drops it on its
    promote; the rollback puts it back, though the cookie is no longer anonymous."""
    strict = _strict(tmp_path)
    background = [_visit(100 + i, (("cookie", f"bg{i}"),), _START + i * 3600, f"100.0.{i}.9") for i in range(200)]
    old = [_visit(day, (("cookie", "old"),), _START + day * _DAY + 20 * 3600, "81.20.30.47") for day in range(3)]
    new = _visit(10, (("cookie", "new"),), _START + 10 * _DAY + 19 * 3600, "81.20.30.47")
    crm = _visit(11, (("cookie", "new"), ("crm:shop", "c-1")), _START + 10 * _DAY + 19 * 3600 + 60, "81.20.30.47")

    async def scenario() -> None:
        stitcher = linkage.Stitcher(linkage.LinkageConfig(hash_secret=b"journal-test"), MemoryStore(), model=BUNDLED)
        await stitcher.start()
        try:
            await stitcher.ingest(background)
            await stitcher.ingest(old)
            [linked] = await stitcher.ingest([new])
            assert linked.decision == linkage.Decision.PROBABILISTIC
            await stitcher.ingest([crm])
            before = _links(stitcher)
            [cookie] = before  # the new cookie's component, linked to the old cookie's person
            assert before[cookie].target == linked.person_id and stitcher._graph._persons[cookie].uniques

            replaced = await stitcher.change_visitor_model(strict, "test", "promote_model", "")
            await stitcher.relink_after_model_change(replaced, "test")
            assert cookie not in _links(stitcher), "the strict model drops the link"

            again = await stitcher.change_visitor_model(BUNDLED, "test", "rollback_model", "", rollback=True)
            await stitcher.relink_after_model_change(again, "test", rollback=True)
            assert _links(stitcher) == before, "put back exactly"
        finally:
            await stitcher.close()

    asyncio.run(scenario())

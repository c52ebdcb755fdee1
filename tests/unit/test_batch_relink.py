"""A relink scores every pair in batches first and decides visitor by visitor after
(`SoftLinks.rescore_each`): it must end exactly where scoring and deciding each visitor in
turn ends. In-process, on the memory store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

import linkage
from linkage.softlinks import Record, UniquesOf
from linkage.store import MemoryStore
from linkage.visitor._linker import SoftLinks
from training import SimulationConfig, simulate

# Looser than the bundled threshold, so that the relink makes, drops and moves links.
LOOSE = linkage.VisitorModel.load(linkage.BUNDLED_MODEL, threshold=0.5)


def _one_by_one(soft: SoftLinks, components: Sequence[int], uniques_of: UniquesOf, record: Record, now: float) -> None:
    for component in components:
        soft.recheck(component, record)
        soft.rescore(component, uniques_of, record, now)


def _relinked(signals: list[linkage.Signal], now: float) -> tuple[object, ...]:
    async def run() -> tuple[object, ...]:
        stitcher = linkage.Stitcher(
            linkage.LinkageConfig(hash_secret=b"batch-relink"), MemoryStore(), clock=lambda: now, model=LOOSE
        )
        await stitcher.start()
        try:
            for start in range(0, len(signals), 500):
                await stitcher.ingest(signals[start : start + 500])
            graph = stitcher._graph
            graph.drain()
            counts = graph.relink(graph.relinkable(), now)
            changes = [
                (c.kind, c.person_id, c.other_person_id, c.probability, c.detail, c.model_version)
                for c in graph.drain().changes
            ]
            soft = graph._soft
            links = {c: (ln.target, ln.probability, ln.match_weight, ln.weights) for c, ln in soft.links().items()}
            households = {c: (h.persons, h.probability) for c, h in soft.households._links.items()}
            return counts, links, households, changes
        finally:
            await stitcher.close()

    return asyncio.run(run())


def test_the_batched_relink_ends_where_visitor_by_visitor_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    signals = [s.signal for s in simulate(SimulationConfig(persons=800, days=21, seed=33))]
    now = signals[-1].timestamp + 60
    batched = _relinked(signals, now)
    monkeypatch.setattr(SoftLinks, "rescore_each", _one_by_one)
    reference = _relinked(signals, now)

    counts = batched[0]
    assert isinstance(counts, linkage.Relinked)
    assert counts.made + counts.dropped + counts.moved > 0, "the relink changes links: the comparison means something"
    assert batched[1] and batched[2], "soft links and household links to compare"
    assert batched[3], "change entries to compare"
    for name, ours, theirs in zip(("counts", "links", "households", "changes"), batched, reference, strict=True):
        assert ours == theirs, name

"""The core hands each commit's changes to the feed while the store writes them."""

from __future__ import annotations

import asyncio

import pytest

from linkage import Change, Identifier, LinkageConfig, MemoryStore, Signal, Stitcher


def _signal(event: str, cookie: str) -> Signal:
    return Signal(event, (Identifier("cookie", cookie),), timestamp=1_750_000_000.0)


def test_each_commit_s_changes_are_handed_over_before_any_follower_reads_them() -> None:
    handed: list[list[Change]] = []
    seen_by_follower: list[int] = []

    async def main() -> None:
        stitcher = Stitcher(LinkageConfig(hash_secret=b"k"), MemoryStore())
        stitcher.while_committing(lambda changes: handed.append(list(changes)))
        await stitcher.start()
        try:

            async def follow() -> None:
                async for page in stitcher.change_pages(0, follow=True):
                    assert handed and handed[-1][-1].sequence >= page[-1].sequence
                    seen_by_follower.extend(c.sequence for c in page)

            follower = asyncio.create_task(follow())
            await asyncio.sleep(0)
            await stitcher.ingest([_signal("e1", "a")])
            await stitcher.ingest([_signal("e2", "b"), _signal("e3", "c")])
            await asyncio.sleep(0.05)
            stitcher.end_watches()
            await asyncio.wait_for(follower, 5)
        finally:
            await stitcher.close()

    asyncio.run(main())
    sequences = [c.sequence for commit in handed for c in commit]
    assert sequences == list(range(1, len(sequences) + 1)) and len(handed) == 2
    assert seen_by_follower == sequences


def test_a_failing_preparation_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    def prepare(changes: list[Change]) -> None:
        raise RuntimeError("broken encoder")

    async def main() -> list[int]:
        stitcher = Stitcher(LinkageConfig(hash_secret=b"k"), MemoryStore())
        stitcher.while_committing(prepare)
        await stitcher.start()
        try:
            await stitcher.ingest([_signal("e1", "a")])
            return [c.sequence async for c in stitcher.changes(0, follow=False)]
        finally:
            await stitcher.close()

    assert asyncio.run(main()) == [1, 2]
    assert "preparing changes for the followers failed" in caplog.text

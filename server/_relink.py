"""A batch relink as a stream of progress messages: one per committed chunk, the last `done`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import linkage

from . import _convert as convert
from ._proto.idstitch.v1 import idstitch_pb2 as pb


async def relink_updates(stitcher: linkage.Stitcher, principal: str) -> AsyncIterator[pb.RelinkProgress]:
    """Run the relink and yield its progress; a caller that goes away stops it after the chunk
    under way (what was committed stays: each chunk is whole)."""
    updates: asyncio.Queue[tuple[linkage.Relinked, int]] = asyncio.Queue()

    async def progress(so_far: linkage.Relinked, total: int) -> None:
        await updates.put((so_far, total))

    relinking = asyncio.ensure_future(stitcher.relink(principal, progress))
    waiting: asyncio.Future[tuple[linkage.Relinked, int]] | None = None
    total = 0
    try:
        while not relinking.done() or not updates.empty():
            waiting = asyncio.ensure_future(updates.get())
            await asyncio.wait({waiting, relinking}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                continue
            so_far, total = waiting.result()
            yield convert.relink_progress(so_far, total, done=False)
        final = relinking.result()
        yield convert.relink_progress(final, max(total, final.scored), done=True)
    finally:
        if waiting is not None:
            waiting.cancel()
        relinking.cancel()

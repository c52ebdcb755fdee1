"""Domain errors to gRPC status codes, in one place."""

from __future__ import annotations

import asyncio
import logging

import grpc

import linkage

log = logging.getLogger("idstitch.server")

_CODES: tuple[tuple[type[linkage.LinkageError], grpc.StatusCode], ...] = (
    (linkage.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (linkage.NotFound, grpc.StatusCode.NOT_FOUND),
    (linkage.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (linkage.FellBehind, grpc.StatusCode.ABORTED),
    (linkage.Busy, grpc.StatusCode.ABORTED),
)


def status_of(error: linkage.LinkageError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


class status_from_errors:  # noqa: N801 - used like a function: `async with status_from_errors(...)`
    """Turn domain errors into statuses; anything unexpected into INTERNAL without a trace.

    `__aexit__` never suppresses (it re-raises through `context.abort`), which lets type
    checkers see that code after the `async with` block is unreachable.
    """

    def __init__(self, context: grpc.aio.ServicerContext, method: str) -> None:
        self._context = context
        self._method = method

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, (grpc.aio.AbortError, asyncio.CancelledError)):
            return
        if isinstance(exc, linkage.LinkageError):
            await self._context.abort(status_of(exc), str(exc))
        if isinstance(exc, Exception):
            # The trace stays in the server log; the client learns only that it failed.
            log.error("%s failed", self._method, exc_info=exc)
            await self._context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

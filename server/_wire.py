"""The service's handlers, decoding requests themselves so that a payload that is not the
request message is the client's error (INVALID_ARGUMENT), not a traceback in the log.

gRPC's own deserialisation logs a full trace for every undecodable message and answers
UNKNOWN or INTERNAL naming the decoder; a client sending garbage fast would fill the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

import linkage

from ._auth import METHOD_SCOPES
from ._proto.idstitch.v1 import idstitch_pb2 as pb
from ._wire_count import EntryLimit, entries_exceed

log = logging.getLogger("idstitch.server")

SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
_LOG_EVERY_SECONDS = 10.0


class _UndecodableLog:
    """One warning line per interval, counting the requests it stands for."""

    def __init__(self) -> None:
        self._last = -float("inf")
        self._unlogged = 0

    def note(self, method: str) -> None:
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last >= _LOG_EVERY_SECONDS:
            log.warning("%d undecodable request(s), the latest to %s", self._unlogged, method)
            self._last, self._unlogged = now, 0


_undecodable = _UndecodableLog()


def _decode(raw: bytes, request_type: type[Message], method: str) -> Message:
    try:
        return request_type.FromString(raw)
    except DecodeError:
        _undecodable.note(method)
        raise linkage.InvalidArgument("request", f"not a valid {request_type.DESCRIPTOR.full_name} message") from None


async def _decoded(
    raw: AsyncIterator[bytes],
    request_type: type[Message],
    method: str,
    precheck: Precheck | None,
    too_many: WireCheck,
) -> AsyncGenerator[Message, None]:
    try:
        async for item in raw:
            over = too_many(item)
            if over is not None:
                del item
                raise over
            message = _decode(item, request_type, method)
            refused = _refusal(precheck, message)
            if refused is not None:
                del message, item  # nothing of a refused message outlives the refusal
                raise refused
            yield message
    finally:
        await _stop_reading(raw)


async def _stop_reading(raw: AsyncIterator[bytes]) -> None:
    """Close gRPC's reader of a stream the servicer stopped reading (refused, or failed). It
    is an async generator suspended where it handed over the last message, holding it; left
    so, that message (up to the message size limit) stays in memory until a cyclic
    collection, which the server's raised thresholds put off for a long time."""
    reader = raw.__aiter__()
    close = getattr(reader, "aclose", None)
    if close is not None:
        await close()


Precheck = Callable[[Any], None]  # raises linkage.InvalidArgument for a request refused by its size
WireCheck = Callable[[bytes], linkage.InvalidArgument | None]  # the refusal of an encoded request, if any
# Returns when the caller may call the method (its full path); aborts the call otherwise.
Admit = Callable[[str, grpc.aio.ServicerContext], Awaitable[None]]


def service_handler(
    servicer: object, prechecks: Mapping[str, Precheck], limits: Mapping[str, EntryLimit], admit: Admit
) -> grpc.GenericRpcHandler:
    """IdentityService's handlers over `servicer`, with requests decoded here (see module).

    Every call is first admitted (server/_auth.py), before anything of its request is decoded.
    `limits[method]` caps a repeated field's entries, counted on the encoded message before it
    is decoded (server/_wire_count.py). `prechecks[method]` then runs on the decoded request
    (of a stream, on each message) before the servicer: a request refused by its size alone is
    dropped right there, so that nothing (no traceback frame, no conversion) keeps it alive."""
    handlers = {}
    for method in SERVICE.methods:
        path = f"/{SERVICE.full_name}/{method.name}"
        if path not in METHOD_SCOPES:
            raise RuntimeError(f"{path} needs a scope in server/_auth.py METHOD_SCOPES")
        request_type = getattr(pb, method.input_type.name)
        behaviour = getattr(servicer, method.name)
        streams = (method.client_streaming, method.server_streaming)
        too_many = _wire_check(request_type, limits.get(method.name))
        kind, wrapped = _wrap(behaviour, request_type, path, *streams, prechecks.get(method.name), too_many, admit)
        handlers[method.name] = kind(wrapped, response_serializer=_serialize)
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


def _serialize(response: Message | bytes) -> bytes:
    # A servicer may hand over a message already serialized (the change feed encodes once).
    return response if isinstance(response, bytes) else response.SerializeToString()


def _wrap(
    behaviour: Callable[..., Any],
    request_type: type[Message],
    path: str,
    client_streaming: bool,
    server_streaming: bool,
    precheck: Precheck | None,
    too_many: WireCheck,
    admit: Admit,
) -> tuple[Callable[..., grpc.RpcMethodHandler], Callable[..., Any]]:
    # A stream's undecodable message surfaces inside the servicer's loop, where the error
    # mapping turns it into INVALID_ARGUMENT like any other bad input.
    name = path.rpartition("/")[2]
    if client_streaming and server_streaming:

        async def stream_stream(raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await admit(path, context)
            requests = _decoded(raw, request_type, name, precheck, too_many)
            try:
                async for response in behaviour(requests, context):
                    yield response
            finally:
                await requests.aclose()

        return grpc.stream_stream_rpc_method_handler, stream_stream
    if client_streaming:

        async def stream_unary(raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
            await admit(path, context)
            requests = _decoded(raw, request_type, name, precheck, too_many)
            try:
                return await behaviour(requests, context)
            finally:
                await requests.aclose()

        return grpc.stream_unary_rpc_method_handler, stream_unary
    if server_streaming:

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await admit(path, context)
            over = too_many(raw)
            if over is not None:
                del raw  # the traceback of the abort holds this frame
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(over))
            request = await _request(raw, request_type, name, context)
            async for response in behaviour(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler, unary_stream

    async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        await admit(path, context)
        over = too_many(raw)
        if over is not None:
            del raw  # the traceback of the abort holds this frame
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(over))
        request = await _request(raw, request_type, name, context)
        refused = _refusal(precheck, request)
        if refused is not None:
            del request, raw
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(refused))
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler, unary_unary


def _refusal(precheck: Precheck | None, request: Message) -> linkage.InvalidArgument | None:
    if precheck is None:
        return None
    try:
        precheck(request)
    except linkage.InvalidArgument as error:
        # Without its traceback the error holds no frame, and so not the refused message.
        return error.with_traceback(None)
    return None


# Below this size decoding is cheap (a few ms, a few MiB) and the decoded count check refuses
# as well; a scan in Python would only add to every ordinary request's cost.
_SCAN_FROM_BYTES = 256 * 1024


def _wire_check(request_type: type[Message], limit: EntryLimit | None) -> WireCheck:
    if limit is None:
        return lambda raw: None
    number = request_type.DESCRIPTOR.fields_by_name[limit.field].number
    cap = limit.limit

    def too_many(raw: bytes) -> linkage.InvalidArgument | None:
        if len(raw) >= _SCAN_FROM_BYTES and entries_exceed(raw, number, cap):
            return linkage.InvalidArgument(limit.field, f"more than {cap} in one message; at most {cap}")
        return None

    return too_many


async def _request(raw: bytes, request_type: type[Message], name: str, context: grpc.aio.ServicerContext) -> Message:
    try:
        return _decode(raw, request_type, name)
    except linkage.InvalidArgument as error:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        raise  # abort raises; this satisfies the type checker

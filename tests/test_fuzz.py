"""A hostile client, with a valid admin token: 10,000 requests over every method of the service,
half undecodable bytes, half well-formed messages filled at random from the proto descriptors
(odd strings, huge and negative numbers, unknown enums, nested messages). No call may end in
UNKNOWN or INTERNAL, and the server must still answer health checks and real calls after."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer
from tests._signals import batch, resolve, signal

SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
REQUESTS = 10_000
_STRINGS = (
    "", "cookie", "login", "email", "phone", "device", "crm:hotel", "null", "0", "p_1", "p_0", "h_1",
    "p_99999999999999999999", "anna@example.org", "+4915112345678", "1.2.3.4", "::1", "300.1.2.3",
    "a\x00b", "\u202e\u0000\ud7ff", "ß" * 300, "x" * 5000, "DROP TABLE persons; --", "%s%n%x",
)  # fmt: skip
_NUMBERS = (0, 1, -1, 2**31 - 1, -(2**31), 2**53, 10**18)


def _fill(message: Message, rng: random.Random, depth: int = 0) -> Message:
    """Set a random subset of the fields of `message` to random, often hostile, values."""
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        repeated = field.is_repeated
        count = rng.choice((1, 2, 3, 50)) if repeated else 1
        for _ in range(count):
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth > 3:
                    break
                child = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                if field.message_type.full_name == "google.protobuf.Timestamp":
                    child.seconds = rng.choice((0, -62135596800, 253402300799, 1_748_736_000, 2**40))
                    child.nanos = rng.choice((0, 999_999_999))
                else:
                    _fill(child, rng, depth + 1)
                continue
            value = _scalar(field, rng)
            if repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)
    return message


def _scalar(field: FieldDescriptor, rng: random.Random) -> object:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return rng.choice(_STRINGS) + (str(rng.randrange(100)) if rng.random() < 0.3 else "")
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randrange(64))
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice((0.0, -1.0, 1.5, 1e308, -1e308, float("nan"), float("inf"), 0.5))
    if kind == FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [7, 99])
    if kind == FieldDescriptor.TYPE_UINT64:
        return abs(rng.choice(_NUMBERS))
    if kind == FieldDescriptor.TYPE_UINT32:
        return abs(rng.choice(_NUMBERS)) % 2**32
    if kind == FieldDescriptor.TYPE_INT32:
        return max(min(rng.choice(_NUMBERS), 2**31 - 1), -(2**31))
    return rng.choice(_NUMBERS)


def _payloads(method_input: type[Message], rng: random.Random) -> Iterator[bytes]:
    """One or a few payloads for one call: undecodable bytes, or a random well-formed message."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.5:
            yield rng.randbytes(rng.randrange(1, 200))
        else:
            yield _fill(method_input(), rng).SerializeToString()


@pytest.mark.slow
def test_ten_thousand_hostile_requests_get_no_unknown_or_internal_and_crash_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261206)
    server = ThreadServer(tmp_path / "data")
    try:
        server.stub.Ingest(batch(signal(("cookie", "before-the-fuzz"))))
        codes: Counter[str] = Counter()
        bad: list[tuple[str, grpc.StatusCode, str]] = []
        methods = list(SERVICE.methods)
        for _ in range(REQUESTS):
            method = rng.choice(methods)
            path = f"/{SERVICE.full_name}/{method.name}"
            request_type = getattr(pb, method.input_type.name)
            payloads = list(_payloads(request_type, rng))
            code, details = _call(server.channel, path, method, payloads)
            codes[code.name] += 1
            if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
                bad.append((method.name, code, details))
        assert not bad, bad[:5]
        assert sum(codes.values()) == REQUESTS
        assert codes["INVALID_ARGUMENT"] > REQUESTS // 3, codes  # the undecodable half, at least

        health = health_pb2_grpc.HealthStub(server.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        assert resolve(server.stub, ("cookie", "before-the-fuzz"))[0] != "" or codes["OK"] > 0
        after = server.stub.Ingest(batch(signal(("cookie", "after-the-fuzz")))).results[0]
        assert after.person_id.startswith("p_") or after.suppressed
    finally:
        server.stop()


def _call(channel: grpc.Channel, path: str, method: object, payloads: list[bytes]) -> tuple[grpc.StatusCode, str]:
    client_streaming = method.client_streaming  # type: ignore[attr-defined]
    server_streaming = method.server_streaming  # type: ignore[attr-defined]
    try:
        if client_streaming and server_streaming:
            for _ in channel.stream_stream(path)(iter(payloads), timeout=5):
                pass
        elif client_streaming:
            channel.stream_unary(path)(iter(payloads), timeout=5)
        elif server_streaming:
            # A WatchChanges that follows the log never ends: a short deadline ends it.
            for _ in channel.unary_stream(path)(payloads[0], timeout=0.05):
                pass
        else:
            channel.unary_unary(path)(payloads[0], timeout=5)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""

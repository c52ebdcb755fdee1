"""Bad input gets a status naming the field, writes nothing, and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import linkage
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer
from tests._signals import batch, ident, resolve, signal


def _status(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    error = caught.value
    return error.code(), error.details()  # type: ignore[attr-defined]


def _no_identifiers() -> pb.Signal:
    return signal()


def _no_event_id() -> pb.Signal:
    s = signal(("cookie", "x"))
    s.event_id = ""
    return s


def _with_ip(ip: str) -> pb.Signal:
    s = signal(("cookie", "x"))
    s.context.ip = ip
    return s


def _half_coordinates() -> pb.Signal:
    s = signal(("cookie", "x"))
    s.context.geo.latitude = 52.5
    return s


BAD_SIGNALS = {
    "no identifiers": (_no_identifiers, "signals[0].identifiers"),
    "unknown namespace": (lambda: signal(("shoe_size", "42")), "signals[0].identifiers[0].namespace"),
    "malformed email": (lambda: signal(("email", "anna at example")), "signals[0].identifiers[0].value"),
    "malformed phone": (lambda: signal(("phone", "12")), "signals[0].identifiers[0].value"),
    "only blocked values": (lambda: signal(("cookie", "null"), ("device", "0")), "signals[0].identifiers"),
    "timestamp before 2000": (lambda: signal(("cookie", "x"), at=631_152_000.0), "signals[0].timestamp"),
    "timestamp in the future": (lambda: signal(("cookie", "x"), at=4_102_444_800.0), "signals[0].timestamp"),
    "missing event id": (_no_event_id, "signals[0].event_id"),
    "two logins in one signal": (lambda: signal(("login", "a"), ("login", "b")), "signals[0].identifiers[1]"),
    "malformed ip": (lambda: _with_ip("300.1.2.3"), "signals[0].context.ip"),
    "latitude without longitude": (_half_coordinates, "signals[0].context.geo"),
    "control characters": (lambda: signal(("cookie", "a\x00b")), "signals[0].identifiers[0].value"),
}


@pytest.mark.parametrize("case", sorted(BAD_SIGNALS))
def test_bad_signal_is_invalid_argument_naming_the_field_and_writes_nothing(server: ThreadServer, case: str) -> None:
    make_bad, field = BAD_SIGNALS[case]
    good = signal(("cookie", "good-one"), ("login", "anna"))
    bad = make_bad()
    # The bad signal comes second, so its field path starts with signals[1].
    bad_second = pb.IngestRequest(signals=[good, bad])
    code, details = _status(lambda: server.stub.Ingest(bad_second))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field.replace("signals[0]", "signals[1]")), details
    assert resolve(server.stub, ("cookie", "good-one")) == [""], "a rejected batch writes nothing"


def test_messages_never_echo_personal_data(server: ThreadServer) -> None:
    _, details = _status(lambda: server.stub.Ingest(batch(signal(("email", "anna.secret@nowhere")))))
    assert "anna.secret" not in details


def test_batch_over_the_limit(server: ThreadServer) -> None:
    too_many = batch(*[signal(("cookie", f"c{i}")) for i in range(1001)])
    code, details = _status(lambda: server.stub.Ingest(too_many))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("signals:")
    code, details = _status(lambda: server.stub.Ingest(pb.IngestRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("signals:")


def test_message_over_the_size_limit_is_resource_exhausted(server: ThreadServer) -> None:
    huge = signal(("cookie", "x"))
    huge.context.user_agent = "x" * (5 * 1024 * 1024)
    code, _ = _status(lambda: server.stub.Ingest(batch(huge)))
    # gRPC itself refuses it before any handler runs, with its standard code for this.
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_resolve_and_get_person_errors(server: ThreadServer) -> None:
    code, details = _status(lambda: server.stub.Resolve(pb.ResolveRequest()))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "identifiers")
    code, details = _status(
        lambda: server.stub.Resolve(
            pb.ResolveRequest(identifiers=[ident("cookie", "ok"), ident("cookie", "undefined")])
        )
    )
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "identifiers[1].value")
    code, details = _status(lambda: server.stub.GetPerson(pb.GetPersonRequest(person_id="p_999")))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = _status(lambda: server.stub.GetPerson(pb.GetPersonRequest(person_id="anna")))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "person_id")
    code, details = _status(lambda: server.stub.GetPerson(pb.GetPersonRequest()))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "selector")
    code, _ = _status(lambda: server.stub.GetPerson(pb.GetPersonRequest(identifier=ident("cookie", "nobody"))))
    assert code == grpc.StatusCode.NOT_FOUND


def test_deadline_is_honoured_and_the_server_keeps_serving(server: ThreadServer) -> None:
    follow = server.stub.WatchChanges(pb.WatchChangesRequest(), timeout=0.5)
    code, _ = _status(lambda: list(follow))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    health = health_pb2_grpc.HealthStub(server.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    assert server.stub.Ingest(batch(signal(("cookie", "after")))).results[0].person_id


_NOT_A_MESSAGE = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, a length past the end


@pytest.mark.parametrize(
    ("method", "shape"),
    [
        ("Resolve", "unary_unary"),
        ("Ingest", "unary_unary"),
        ("WatchChanges", "unary_stream"),
        ("IngestStream", "stream_stream"),
        ("SyncCrmRecords", "stream_unary"),
    ],
)
def test_a_payload_that_does_not_decode_is_invalid_argument_and_leaves_no_trace(
    server: ThreadServer, method: str, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/idstitch.v1.IdentityService/{method}"
    call = getattr(server.channel, shape)(path)  # raw bytes both ways
    if shape.startswith("stream"):
        request: object = iter([_NOT_A_MESSAGE])
    else:
        request = _NOT_A_MESSAGE
    with caplog.at_level("WARNING", logger="idstitch.server"):

        def send() -> None:
            answer = call(request, timeout=5)
            if shape.endswith("stream"):
                list(answer)

        code, details = _status(send)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("request: not a valid idstitch.v1.")
    assert "DecodeError" not in details and "google" not in details
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]
    # Still serving, and nothing was written.
    assert resolve(server.stub, ("cookie", "x")) == [""]


def test_an_unknown_namespace_is_named_only_when_it_looks_like_a_name(server: ThreadServer) -> None:
    huge = "x" * 20_000
    code, details = _status(lambda: server.stub.Resolve(pb.ResolveRequest(identifiers=[ident(huge, "v")])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "identifiers[0].namespace: unknown namespace (a value of 20000 characters)"
    code, details = _status(lambda: server.stub.Resolve(pb.ResolveRequest(identifiers=[ident("cokie", "v")])))
    assert details == "identifiers[0].namespace: unknown namespace 'cokie'"


def test_an_oversized_request_is_refused_by_its_count_on_the_wire_before_decoding(server: ThreadServer) -> None:
    resolve_call = server.channel.unary_unary("/idstitch.v1.IdentityService/Resolve")
    code, details = _status(lambda: resolve_call(b"\x0a\x00" * 2_000_000, timeout=30))  # 2 M empty identifiers
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "identifiers: more than 10000 in one message; at most 10000"
    ingest_call = server.channel.unary_unary("/idstitch.v1.IdentityService/Ingest")
    code, details = _status(lambda: ingest_call(b"\x0a\x00" * 1_500_000, timeout=30))  # 1.5 M empty signals
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "signals: more than 1000 in one message; at most 1000"
    # Just at the limit, a request is decoded and checked as usual: here it fails later, on
    # its empty signals, not on its count.
    code, details = _status(lambda: ingest_call(b"\x0a\x00" * 1000, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than" not in details


def test_customer_records_are_capped_per_message_and_per_stream(server: ThreadServer) -> None:
    sync = server.channel.stream_unary("/idstitch.v1.IdentityService/SyncCrmRecords")
    code, details = _status(lambda: sync(iter([b"\x0a\x00" * 200_000]), timeout=30))  # 200,000 empty records
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "records: more than 50000 in one message; at most 50000"

    config = linkage.LinkageConfig(hash_secret=b"s" * 32, max_records_per_sync=10)
    stitcher = linkage.Stitcher(config, linkage.MemoryStore())
    stitcher.check_sync_chunk(6, 4)  # exactly at the cap
    with pytest.raises(linkage.InvalidArgument, match="more than 10 records in one stream"):
        stitcher.check_sync_chunk(6, 5)

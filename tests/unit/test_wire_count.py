"""Counting repeated entries on the wire agrees with decoding, and stops at the limit."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._wire_count import entries_exceed

_SIGNALS = pb.IngestRequest.DESCRIPTOR.fields_by_name["signals"].number
_IDENTIFIERS = pb.ResolveRequest.DESCRIPTOR.fields_by_name["identifiers"].number


def _ingest(count: int, value: str = "v") -> bytes:
    request = pb.IngestRequest()
    for n in range(count):
        signal = request.signals.add(event_id=f"e{n}", channel="web")
        signal.identifiers.add(namespace="cookie", value=value)
    return request.SerializeToString()


@pytest.mark.parametrize("count", [0, 1, 9, 10, 11, 200])
@pytest.mark.parametrize("value", ["v", "x" * 300])  # entries of one-byte and two-byte lengths
def test_the_count_on_the_wire_is_the_decoded_count(count: int, value: str) -> None:
    raw = _ingest(count, value)
    assert len(pb.IngestRequest.FromString(raw).signals) == count
    assert entries_exceed(raw, _SIGNALS, 10) is (count > 10)
    assert entries_exceed(raw, _SIGNALS, count) is False
    if count:
        assert entries_exceed(raw, _SIGNALS, count - 1) is True


def test_other_fields_and_wire_types_are_skipped_not_counted() -> None:
    request = pb.ResolveRequest(identifiers=[pb.Identifier(namespace="cookie", value="a")] * 3)
    request.min_probability = 0.5  # a fixed 64-bit field
    request.deterministic_only = True  # a varint
    raw = request.SerializeToString()
    assert entries_exceed(raw, _IDENTIFIERS, 2) is True
    assert entries_exceed(raw, _IDENTIFIERS, 3) is False


def test_two_million_empty_entries_are_refused_after_the_first_past_the_limit() -> None:
    raw = b"\x0a\x00" * 2_000_000
    assert entries_exceed(raw, _IDENTIFIERS, 10_000) is True
    assert entries_exceed(raw, 2, 10_000) is False  # another field: none of them


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x00" * 20 + b"\x0a\x05ab",  # the last entry runs past the end
        b"\x0a\x00" * 20 + b"\x0a",  # a tag without its length
        b"\x0a\x00" * 20 + b"\x0a\xff\xff",  # a truncated varint length
        b"\x0b" + b"\x0a\x00" * 20,  # a group: no message of this API has one
    ],
)
def test_a_malformed_message_is_left_to_the_decoder(raw: bytes) -> None:
    assert entries_exceed(raw, _IDENTIFIERS, 20) is False
    with pytest.raises(DecodeError):
        pb.ResolveRequest.FromString(raw)

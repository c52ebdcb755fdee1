"""Small builders for proto signals in tests."""

from __future__ import annotations

import itertools
import time

from server._proto.idstitch.v1 import idstitch_pb2 as pb

_counter = itertools.count(1)


def ident(namespace: str, value: str) -> pb.Identifier:
    return pb.Identifier(namespace=namespace, value=value)


def signal(
    *ids: tuple[str, str], event_id: str | None = None, at: float | None = None, channel: str = "web"
) -> pb.Signal:
    message = pb.Signal(
        event_id=event_id or f"ev-{next(_counter)}-{time.monotonic_ns()}",
        channel=channel,
        identifiers=[ident(n, v) for n, v in ids],
    )
    message.timestamp.FromNanoseconds(int((at if at is not None else time.time()) * 1e9))
    return message


def batch(*signals: pb.Signal) -> pb.IngestRequest:
    return pb.IngestRequest(signals=list(signals))


def resolve(stub: object, *ids: tuple[str, str]) -> list[str]:
    """Person id per identifier, "" when not found."""
    response = stub.Resolve(pb.ResolveRequest(identifiers=[ident(n, v) for n, v in ids]))  # type: ignore[attr-defined]
    return [r.person_id if r.found else "" for r in response.resolutions]


def identifiers_of(history: list[pb.IngestRequest]) -> list[pb.Identifier]:
    """Every identifier the requests carry, once, in the order first seen."""
    return list({(i.namespace, i.value): i for r in history for s in r.signals for i in s.identifiers}.values())

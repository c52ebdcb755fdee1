"""Memory of a refused request is freed: 100 oversized 4 MB requests (Resolve, Ingest and
SyncCrmRecords streams in turn) leave the server's resident memory within 50 MiB of where it
was (a separate server process, measured with psutil).

Streams matter most here: gRPC's reader of a stream holds the last message it handed over
until it is closed, and before it was, every refused SyncCrmRecords stream kept about 5 MiB."""

from __future__ import annotations

from pathlib import Path

import grpc
import psutil
import pytest

from tests._servers import ProcessServer
from tests._signals import batch, signal

_SERVICE = "/idstitch.v1.IdentityService"
# Just under 4 MiB of empty repeated entries: 2 million identifiers (Resolve), records (sync).
_EMPTY_ENTRIES = b"\x0a\x00" * 2_000_000
_ROUNDS = 100
_ALLOWED_MIB = 50


def _rss_mib(server: ProcessServer) -> float:
    return float(psutil.Process(server.process.pid).memory_info().rss) / 2**20


@pytest.mark.slow
def test_rss_after_100_refused_4_mb_requests_stays_within_50_mib(tmp_path: Path) -> None:
    server = ProcessServer(tmp_path / "data")
    try:
        server.stub.Ingest(batch(signal(("cookie", "warm-up"))))
        resolve = server.channel.unary_unary(f"{_SERVICE}/Resolve")
        ingest = server.channel.unary_unary(f"{_SERVICE}/Ingest")
        sync = server.channel.stream_unary(f"{_SERVICE}/SyncCrmRecords")
        # One of each first, so that what a first call allocates for good (code, caches) is in
        # the baseline.
        calls = [
            lambda: resolve(_EMPTY_ENTRIES, timeout=60),
            lambda: ingest(_EMPTY_ENTRIES, timeout=60),
            lambda: sync(iter([_EMPTY_ENTRIES, _EMPTY_ENTRIES]), timeout=60),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError):
                call()
        before = _rss_mib(server)
        codes = set()
        for round_ in range(_ROUNDS):
            with pytest.raises(grpc.RpcError) as refused:
                calls[round_ % len(calls)]()
            codes.add(refused.value.code())  # type: ignore[attr-defined]
        after = _rss_mib(server)
        assert codes == {grpc.StatusCode.INVALID_ARGUMENT}
        assert after - before <= _ALLOWED_MIB, f"RSS {before:.0f} -> {after:.0f} MiB after {_ROUNDS} refusals"
        assert server.stub.Ingest(batch(signal(("cookie", "still-serving")))).results[0].person_id
    finally:
        assert server.terminate() == 0

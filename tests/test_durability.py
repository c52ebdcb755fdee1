"""The DuckDB file is the truth: restarts, SIGTERM and SIGKILL lose nothing acknowledged."""

from __future__ import annotations

import signal as signal_module
import threading
import time
from pathlib import Path

import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ProcessServer
from tests._signals import batch, resolve, signal


def _snapshot(stub: object, identifiers: list[tuple[str, str]]) -> list[str]:
    return resolve(stub, *identifiers)


@pytest.mark.slow
def test_restart_keeps_persons_aliases_and_the_change_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ProcessServer(data)
    laptop = first.stub.Ingest(batch(signal(("cookie", "laptop"), ("email", "anna@example.org")))).results[0].person_id
    phone = first.stub.Ingest(batch(signal(("device", "phone")))).results[0].person_id
    first.stub.Ingest(
        batch(signal(("login", "anna"), ("cookie", "laptop")), signal(("login", "anna"), ("device", "phone")))
    )
    first.stub.Ingest(
        batch(signal(("device", "tablet"), ("login", "anna")), signal(("device", "tablet"), ("login", "ben")))
    )
    ids = [
        ("cookie", "laptop"),
        ("device", "phone"),
        ("device", "tablet"),
        ("login", "ben"),
        ("email", "anna@example.org"),
    ]
    before = _snapshot(first.stub, ids)
    person_before = first.stub.GetPerson(pb.GetPersonRequest(person_id=phone)).person
    log_before = list(first.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))
    assert first.terminate() == 0

    second = ProcessServer(data)
    try:
        assert _snapshot(second.stub, ids) == before
        assert before[:2] == [laptop, laptop]
        assert second.stub.GetPerson(pb.GetPersonRequest(person_id=phone)).person == person_before
        assert list(second.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True))) == log_before
        fresh = second.stub.Ingest(batch(signal(("cookie", "new-visitor")))).results[0]
        taken = {c.person_id for c in log_before}
        assert fresh.person_id not in taken, "person ids are never reused"
        log_after = list(
            second.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=log_before[-1].sequence, stop_at_end=True))
        )
        assert log_after[0].sequence == log_before[-1].sequence + 1
    finally:
        second.terminate()


_KILL_ROUNDS = 5


def _ingest_until_killed(server: ProcessServer, round_: int, acknowledged: list[pb.Signal]) -> int:
    """Ingest 50-signal calls from a thread, SIGKILL the server once 1,000 more are
    acknowledged (mid-stream: calls are in flight), and return how many this round added."""
    before = len(acknowledged)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            signals = [
                signal(("cookie", f"r{round_}-k{n}-{i}"), ("device", f"r{round_}-d{(n * 50 + i) // 3}"))
                for i in range(50)
            ]
            n += 1
            try:
                server.stub.Ingest(batch(*signals), timeout=10)
            except grpc.RpcError:
                return
            acknowledged.extend(signals)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    while len(acknowledged) < before + 1000:
        time.sleep(0.01)
    server.process.kill()  # SIGKILL: no shutdown code runs
    writer.join(30)
    stop.set()
    server.wait(30)
    return len(acknowledged) - before


@pytest.mark.slow
def test_sigkill_rounds_lose_no_acknowledged_event(tmp_path: Path) -> None:
    """Five rounds on one data directory: ingest, SIGKILL right after acknowledging, restart;
    after each restart every event acknowledged in any round so far is there."""
    data = tmp_path / "data"
    acknowledged: list[pb.Signal] = []
    for round_ in range(_KILL_ROUNDS):
        assert _ingest_until_killed(ProcessServer(data), round_, acknowledged) >= 1000
        restarted = ProcessServer(data)
        try:
            found = []
            for start in range(0, len(acknowledged), 1000):
                chunk = acknowledged[start : start + 1000]
                found += resolve(restarted.stub, *[(s.identifiers[0].namespace, s.identifiers[0].value) for s in chunk])
            lost = found.count("")
            assert not lost, f"round {round_ + 1}: {lost} of {len(acknowledged)} acknowledged signals lost"
            replay = restarted.stub.Ingest(batch(*acknowledged[-500:]))
            assert all(r.duplicate for r in replay.results)
        finally:
            assert restarted.terminate() == 0, restarted.log()


@pytest.mark.slow
def test_sigterm_finishes_in_flight_calls_and_exits_cleanly(tmp_path: Path) -> None:
    server = ProcessServer(tmp_path / "data")
    sent = [[signal(("cookie", f"t{n}-{i}")) for i in range(500)] for n in range(6)]
    futures = [server.stub.Ingest.future(batch(*signals), timeout=30) for signals in sent]
    time.sleep(0.05)
    server.process.send_signal(signal_module.SIGTERM)
    answered: list[tuple[list[pb.Signal], pb.IngestResponse]] = []
    for signals, future in zip(sent, futures, strict=True):
        try:
            answered.append((signals, future.result()))
        except grpc.RpcError as exc:
            # A call still arriving when the shutdown began is refused (gRPC answers UNAVAILABLE
            # or CANCELLED, depending on how far it got); only answered calls must be durable.
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), exc
    assert server.terminate() == 0, server.log()
    assert answered, "in-flight calls finish during a graceful shutdown"

    restarted = ProcessServer(tmp_path / "data")
    try:
        for signals, response in answered:
            stored = resolve(restarted.stub, *[("cookie", s.identifiers[0].value) for s in signals])
            assert stored == [r.person_id for r in response.results]
    finally:
        restarted.terminate()

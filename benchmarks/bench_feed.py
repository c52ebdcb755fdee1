"""What following the change feed costs the server: CPU per change per subscriber.

Starts the server (deterministic, `--no-model`, so that the feed's cost is not lost in the
model's) as a separate process and, in one run:

1. ingests `--signals` signals with nobody watching (the baseline: server CPU per signal);
2. starts `--subscribers` followers of `WatchChanges` at the head, ingests as many signals
   again, and waits until every follower has received every change;
3. does the same with followers of `WatchChangeBatches` (a message per commit, not per change).

The server's CPU beyond the baseline, divided by changes x subscribers, is the fan-out cost.
Also printed: ingest rates of both phases (their ratio shows whether watching slows ingest)
and how far behind the head the slowest follower was at the end of ingest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from _harness import ServerHandle, machine, machine_line, running_server

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

BATCH = 500


def _signals(prefix: str, count: int) -> list[pb.IngestRequest]:
    now = int(time.time())
    requests = []
    for start in range(0, count, BATCH):
        request = pb.IngestRequest()
        for n in range(start, min(start + BATCH, count)):
            signal = request.signals.add(event_id=f"{prefix}-{n}", channel="web")
            signal.identifiers.add(namespace="cookie", value=f"{prefix}-c{n}")
            if n % 3 == 0:
                signal.identifiers.add(namespace="login", value=f"{prefix}-u{n // 3}")
            signal.timestamp.FromSeconds(now)
        requests.append(request)
    return requests


def _ingest(stub: pb_grpc.IdentityServiceStub, requests: Sequence[pb.IngestRequest]) -> float:
    began = time.perf_counter()
    for request in requests:
        stub.Ingest(request, timeout=60)
    return time.perf_counter() - began


def _head(stub: pb_grpc.IdentityServiceStub, after: int = 0) -> int:
    """The sequence of the last committed change (read in batches from `after`)."""
    last = after
    for page in stub.WatchChangeBatches(pb.WatchChangesRequest(after_sequence=after, stop_at_end=True)):
        last = page.changes[-1].sequence
    return last


class _Follower(threading.Thread):
    def __init__(self, server: ServerHandle, after: int, batched: bool) -> None:
        super().__init__(daemon=True)
        self._channel = server.channel()
        self._stub = pb_grpc.IdentityServiceStub(self._channel)
        self._after = after
        self._batched = batched
        self.last = after
        self.ready = threading.Event()
        request = pb.WatchChangesRequest(after_sequence=after)
        self._call = (self._stub.WatchChangeBatches if batched else self._stub.WatchChanges)(request)

    def run(self) -> None:
        self.ready.set()
        try:
            for item in self._call:
                self.last = item.changes[-1].sequence if self._batched else item.sequence
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise

    def stop(self) -> None:
        self._call.cancel()
        self.join(timeout=10)
        self._channel.close()


@dataclass(frozen=True, slots=True)
class _Phase:
    seconds: float  # to ingest
    changes: int
    behind: int  # the slowest follower, when ingest ended
    drained: float  # seconds until every follower had every change
    cpu: float  # server CPU seconds, from the followers' start until they had every change


def _watched_phase(
    server: ServerHandle,
    stub: pb_grpc.IdentityServiceStub,
    pid: int,
    args: argparse.Namespace,
    prefix: str,
    batched: bool,
    after: int,
) -> _Phase:
    head = _head(stub, after)
    followers = [_Follower(server, head, batched) for _ in range(args.subscribers)]
    for f in followers:
        f.start()
        f.ready.wait()
    time.sleep(0.5)
    cpu0 = _cpu(pid)
    seconds = _ingest(stub, _signals(prefix, args.signals))
    # Reading the head is the benchmark's own cost: measured and left out.
    cpu_head = _cpu(pid)
    end = _head(stub, head)
    cpu_head = _cpu(pid) - cpu_head
    behind = end - min(f.last for f in followers)
    began = time.perf_counter()
    while min(f.last for f in followers) < end and time.perf_counter() - began < 600:
        time.sleep(0.01)
    drained = time.perf_counter() - began
    cpu = _cpu(pid) - cpu0 - cpu_head
    for f in followers:
        f.stop()
    return _Phase(seconds, end - head, behind, drained, cpu)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=30_000, help="signals per phase (default 30,000)")
    parser.add_argument("--subscribers", type=int, default=8, help="followers in the second phase (default 8)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idstitch-bench-feed-") as tmp:
        data = Path(tmp) / "data"
        with running_server(data, Path(tmp) / "server.log", ["--no-model"]) as server:
            pid = server.process.pid
            channel = server.channel()
            stub = pb_grpc.IdentityServiceStub(channel)
            cpu0 = _cpu(pid)
            alone = _ingest(stub, _signals("a", args.signals))
            cpu1 = _cpu(pid)
            head = _head(stub)
            changes_alone = head
            phases = []
            cursor = head
            for prefix, batched in (("b", False), ("c", True)):
                phases.append(_watched_phase(server, stub, pid, args, prefix, batched, cursor))
                cursor += phases[-1].changes
            channel.close()
        host = machine(Path(tmp))
    per_change_alone = (cpu1 - cpu0) / changes_alone
    print("| measure | figure |\n|---|---|")
    print(f"| ingest alone | {args.signals / alone:,.0f} signals/s ({changes_alone:,} changes) |")
    print(f"| server CPU per change, nobody watching | {per_change_alone * 1e6:.1f} µs |")
    for name, phase in zip(("WatchChanges", "WatchChangeBatches"), phases, strict=True):
        fan_out = phase.cpu - per_change_alone * phase.changes
        print(
            f"| {name}: ingest with {args.subscribers} followers | {args.signals / phase.seconds:,.0f} signals/s "
            f"(rate watched / alone {alone / phase.seconds:.2f}) |"
        )
        print(
            f"| {name}: slowest follower behind the head at the end of ingest | {phase.behind:,} changes; "
            f"caught up in {phase.drained:.1f} s |"
        )
        print(
            f"| {name}: server CPU per change per follower (beyond the baseline) | "
            f"{fan_out / phase.changes / args.subscribers * 1e6:.1f} µs |"
        )
    print(f"\n{machine_line(host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What following the change feed costs the server, and whether it slows ingest.

Starts the server (deterministic, `--no-model`, so that the feed's cost is not lost in the
model's) as a separate process. The followers run in a process of their own, as real ones run
on other machines: here they share the two cores, not the ingest client's interpreter. In one
run, phases of `--signals` signals each:

1. ingest with nobody watching, before and after every watched phase (the store grows, so
   each watched phase is compared with the mean of the two unwatched ones around it);
2. once with `--subscribers` followers of `WatchChanges` (a message per change);
3. `--rounds` times with as many followers of `WatchChangeBatches` (the commits of 50 ms per
   message), each phase ending when every follower has received every change.

Printed: the ingest rate watched / unwatched (median and range over the rounds), how far
behind the head the slowest follower was when ingest ended and how long it took to catch up,
and the server's CPU beyond the unwatched baseline, divided by changes x followers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from pathlib import Path

import psutil
from _harness import ServerHandle, machine, machine_line, running_server

from cli._connect import Connection
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


# -- the followers' process ---------------------------------------------------------------


def _follow(
    target: str,
    token: str,
    after: int,
    batched: bool,
    last: SynchronizedArray[int],
    delay: SynchronizedArray[float],
    ready: SynchronizedArray[int],
) -> None:
    """In the followers' process: one thread and channel per follower, each writing the last
    sequence it received into `last` and its longest delay into `delay` (seconds from a
    change's arrival at the server, its time, to its receipt here; one clock on one machine),
    until the parent terminates the process."""

    def one(slot: int) -> None:
        with Connection(target, token).channel() as channel:
            stub = pb_grpc.IdentityServiceStub(channel)
            request = pb.WatchChangesRequest(after_sequence=after)
            call = (stub.WatchChangeBatches if batched else stub.WatchChanges)(request)
            ready[slot] = 1
            for item in call:
                received = time.time()
                oldest = item.changes[0] if batched else item
                delay[slot] = max(delay[slot], received - oldest.time.ToNanoseconds() / 1e9)
                last[slot] = item.changes[-1].sequence if batched else item.sequence

    threads = [threading.Thread(target=one, args=(slot,), daemon=True) for slot in range(len(last))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Followers:
    def __init__(self, server: ServerHandle, count: int, after: int, batched: bool) -> None:
        spawn = multiprocessing.get_context("spawn")  # no fork of a process with gRPC channels
        self.last = spawn.Array("q", [after] * count, lock=False)
        self.delay = spawn.Array("d", [0.0] * count, lock=False)
        self._ready = spawn.Array("q", [0] * count, lock=False)
        shared = (self.last, self.delay, self._ready)
        self._process = spawn.Process(
            target=_follow, args=(server.target, server.token, after, batched, *shared), daemon=True
        )
        self._process.start()
        deadline = time.monotonic() + 60
        while not all(self._ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not all(self._ready):
            raise RuntimeError("the followers did not start within 60 s")

    def slowest(self) -> int:
        return int(min(self.last))

    def cpu(self) -> float:
        times = psutil.Process(self._process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(10)


# -- phases ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Phase:
    seconds: float  # to ingest
    changes: int
    cpu: float  # server CPU seconds: of ingest, or from the followers' start until they had it all
    behind: int = 0  # the slowest follower, when ingest ended
    drained: float = 0.0  # seconds until every follower had every change
    followers_cpu: float = 0.0  # CPU seconds of the followers' process, over the same time
    delay: float = 0.0  # the longest of any follower: a change's arrival to its receipt

    def rate(self, signals: int) -> float:
        return signals / self.seconds


class _Run:
    def __init__(self, server: ServerHandle, args: argparse.Namespace) -> None:
        self._server = server
        self._args = args
        self._channel = server.channel()
        self._stub = pb_grpc.IdentityServiceStub(self._channel)
        self._pid = server.process.pid
        self._phases = 0
        self.head = _head(self._stub)

    def _requests(self) -> list[pb.IngestRequest]:
        self._phases += 1
        return _signals(f"p{self._phases}", self._args.signals)

    def alone(self) -> _Phase:
        requests = self._requests()
        cpu0 = self._cpu()
        seconds = _ingest(self._stub, requests)
        cpu = self._cpu() - cpu0
        end = _head(self._stub, self.head)
        phase = _Phase(seconds, end - self.head, cpu)
        self.head = end
        return phase

    def watched(self, batched: bool) -> _Phase:
        requests = self._requests()
        followers = _Followers(self._server, self._args.subscribers, self.head, batched)
        try:
            time.sleep(0.5)
            cpu0, followers_cpu0 = self._cpu(), followers.cpu()
            seconds = _ingest(self._stub, requests)
            # Reading the head is the benchmark's own cost: measured and left out.
            cpu_head = self._cpu()
            end = _head(self._stub, self.head)
            cpu_head = self._cpu() - cpu_head
            behind = end - followers.slowest()
            began = time.perf_counter()
            while followers.slowest() < end and time.perf_counter() - began < 600:
                time.sleep(0.01)
            drained = time.perf_counter() - began
            cpu = self._cpu() - cpu0 - cpu_head
            followers_cpu = followers.cpu() - followers_cpu0
            delay = max(followers.delay)
        finally:
            followers.stop()
        phase = _Phase(seconds, end - self.head, cpu, behind, drained, followers_cpu, delay)
        self.head = end
        return phase

    def _cpu(self) -> float:
        times = psutil.Process(self._pid).cpu_times()
        return float(times.user + times.system)

    def close(self) -> None:
        self._channel.close()


@dataclass(frozen=True, slots=True)
class _Compared:
    ratio: float  # ingest rate watched / the mean unwatched rate around it
    fan_out_us: float  # server CPU per change per follower beyond the unwatched baseline
    phase: _Phase


def _compare(before: _Phase, watched: _Phase, after: _Phase, args: argparse.Namespace) -> _Compared:
    alone_rate = (before.rate(args.signals) + after.rate(args.signals)) / 2
    per_change = (before.cpu / before.changes + after.cpu / after.changes) / 2
    fan_out = watched.cpu - per_change * watched.changes
    return _Compared(
        watched.rate(args.signals) / alone_rate, fan_out / watched.changes / args.subscribers * 1e6, watched
    )


def _report(name: str, compared: list[_Compared], args: argparse.Namespace) -> None:
    ratios = [c.ratio for c in compared]
    costs = [c.fan_out_us for c in compared]
    client = statistics.median(c.phase.followers_cpu / c.phase.changes / args.subscribers for c in compared)
    many = len(compared) > 1
    rounds = f", median of {len(compared)} (range {min(ratios):.2f}-{max(ratios):.2f})" if many else ""
    rows = [
        (f"ingest rate with {args.subscribers} followers / without", f"{statistics.median(ratios):.2f}{rounds}"),
        (
            "slowest follower behind the head when ingest ended (worst)",
            f"{max(c.phase.behind for c in compared):,} changes; "
            f"caught up in {max(c.phase.drained for c in compared):.1f} s",
        ),
        (
            "longest delay from a change's arrival at the server to its receipt by a follower",
            f"{max(c.phase.delay for c in compared):.2f} s",
        ),
        (
            "server CPU per change per follower, beyond the baseline",
            f"{statistics.median(costs):.1f} µs" + (f" (range {min(costs):.1f}-{max(costs):.1f})" if many else ""),
        ),
        (
            "the followers' own CPU per change per follower (client side)",
            f"{client * 1e6:.1f} µs",
        ),
    ]
    for measure, figure in rows:
        print(f"| {name}: {measure} | {figure} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=30_000, help="signals per phase (default 30,000)")
    parser.add_argument("--subscribers", type=int, default=10, help="followers of the watched phases (default 10)")
    parser.add_argument("--rounds", type=int, default=7, help="watched phases of WatchChangeBatches (default 7)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idstitch-bench-feed-") as tmp:
        data = Path(tmp) / "data"
        with running_server(data, Path(tmp) / "server.log", ["--no-model"]) as server:
            run = _Run(server, args)
            alone = [run.alone()]
            per_change: list[_Compared] = []
            batches: list[_Compared] = []
            for batched, into in [(False, per_change)] + [(True, batches)] * args.rounds:
                watched = run.watched(batched)
                alone.append(run.alone())
                into.append(_compare(alone[-2], watched, alone[-1], args))
            run.close()
        host = machine(Path(tmp))
    rates = [phase.rate(args.signals) for phase in alone]
    per_change_cpu = statistics.mean(phase.cpu / phase.changes for phase in alone)
    print("| measure | figure |\n|---|---|")
    print(
        f"| ingest alone | {statistics.median(rates):,.0f} signals/s, median of {len(rates)} phases "
        f"({min(rates):,.0f}-{max(rates):,.0f}; {alone[0].changes:,} changes per phase) |"
    )
    print(f"| server CPU per change, nobody watching | {per_change_cpu * 1e6:.1f} µs |")
    _report("WatchChanges", per_change, args)
    _report("WatchChangeBatches", batches, args)
    print(f"\n{machine_line(host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

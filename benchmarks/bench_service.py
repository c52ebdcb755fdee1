"""Service benchmark: durable ingest, Resolve against a no-op ceiling, batched Resolve, memory.

The real server runs as a separate process (`python -m cli serve --bench-noop`) on a fresh
data directory, and this process drives it over gRPC, so client and server share the machine.

    python benchmarks/bench_service.py            # the default run, about 1.5 minutes on 2 cores
    python benchmarks/bench_service.py --quick    # a smoke run of 10-20 seconds

Prints a Markdown table and writes the same figures to benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from _harness import (
    REPO,
    RESULTS_DIR,
    START_TIMEOUT,
    LoadMeter,
    ServerHandle,
    busy_phases,
    log_problems,
    machine,
    machine_line,
    running_server,
    stop_on_sigterm,
)

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

RESULTS_FILE = RESULTS_DIR / "latest.json"
NOOP_METHOD = "/idstitch.bench.v1.Noop/Resolve"

INGEST_GOAL = 5_000.0  # signals per second
RATIO_GOAL = 0.7  # Resolve throughput over the no-op ceiling

INGEST_CALL_TIMEOUT = 120.0
CALL_TIMEOUT = 30.0
WARMUP_SECONDS = 1.0

CITIES = ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Leipzig", "Wien", "Zürich")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari",
)


@dataclass(frozen=True, slots=True)
class Config:
    signals: int
    batch_size: int
    ingest_concurrency: int
    concurrency: int
    duration: float
    rounds: int
    resolve_batch: int
    batched_concurrency: int
    seed: int
    no_model: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and short durations (smoke run)")
    parser.add_argument("--signals", type=int, help="signals to ingest (default 200,000; quick 20,000)")
    parser.add_argument("--batch-size", type=int, default=500, help="signals per Ingest call")
    parser.add_argument("--ingest-concurrency", type=int, default=4, help="Ingest calls in flight")
    parser.add_argument("--concurrency", type=int, default=16, help="Resolve / no-op calls in flight")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 5; quick 1)")
    parser.add_argument("--rounds", type=int, help="alternating no-op/Resolve rounds, best kept (default 3; quick 2)")
    parser.add_argument("--resolve-batch", type=int, default=1_000, help="identifiers per batched Resolve call")
    parser.add_argument("--batched-concurrency", type=int, default=4, help="batched Resolve calls in flight")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic workload")
    parser.add_argument("--no-model", action="store_true", help="serve without the visitor model (deterministic only)")
    args = parser.parse_args(argv)
    config = Config(
        signals=args.signals or (20_000 if args.quick else 200_000),
        batch_size=args.batch_size,
        ingest_concurrency=args.ingest_concurrency,
        concurrency=args.concurrency,
        duration=args.duration or (1.0 if args.quick else 5.0),
        rounds=args.rounds or (2 if args.quick else 3),
        resolve_batch=args.resolve_batch,
        batched_concurrency=args.batched_concurrency,
        seed=args.seed,
        no_model=args.no_model,
    )
    if min(config.signals, config.batch_size, config.concurrency, config.rounds, config.resolve_batch) < 1:
        parser.error("sizes, concurrency and rounds must be at least 1")
    return config


# -- the synthetic workload -----------------------------------------------------------------

NEW_COOKIE_RATE = 0.3  # cookies churn: cleared browsers, new devices, consent banners
LOGIN_RATE = 0.6  # share of visitors who have an account
SECOND_DEVICE_RATE = 0.3
KIOSK_RATE = 0.01  # a shared device (family tablet, shop kiosk) used by several accounts
KIOSKS = 50


@dataclass(slots=True)
class Visitor:
    login: str | None
    devices: list[str]
    cookies: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Workload:
    requests: list[pb.IngestRequest]
    identifiers: list[tuple[str, str]]  # distinct, in first-seen order


def build_workload(config: Config) -> Workload:
    """Signals of a visitor population: every signal brings a cookie plus a device or login.

    About four signals per visitor, so most visitors come back: a new cookie seen with a known
    device or login joins that person, and a cookie first seen with the device and later with
    the login merges two persons. Values are UUID-sized, like real cookie and device ids.
    """
    rng = random.Random(config.seed)
    population = max(1, config.signals // 4)
    visitors: dict[int, Visitor] = {}
    seen: dict[tuple[str, str], None] = {}
    week_ns = 7 * 86_400 * 10**9
    start_ns = time.time_ns() - week_ns
    step_ns = week_ns // config.signals
    requests = []
    for first in range(0, config.signals, config.batch_size):
        request = pb.IngestRequest()
        for n in range(first, min(first + config.batch_size, config.signals)):
            who = rng.randrange(population)
            if who not in visitors:
                visitors[who] = new_visitor(who, rng)
            ids = pick_identifiers(who, visitors[who], rng)
            fill_signal(request.signals.add(), n, start_ns + n * step_ns, who, ids)
            seen.update(dict.fromkeys(ids))
        requests.append(request)
    return Workload(requests, list(seen))


def random_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_visitor(who: int, rng: random.Random) -> Visitor:
    login = f"user-{who:08d}" if rng.random() < LOGIN_RATE else None
    devices = [random_id(rng) for _ in range(2 if rng.random() < SECOND_DEVICE_RATE else 1)]
    return Visitor(login, devices)


def pick_identifiers(who: int, visitor: Visitor, rng: random.Random) -> list[tuple[str, str]]:
    if not visitor.cookies or rng.random() < NEW_COOKIE_RATE:
        visitor.cookies.append(random_id(rng))
    ids = [("cookie", rng.choice(visitor.cookies))]
    if visitor.login and rng.random() < KIOSK_RATE:
        # Logged in on a shared device: the device ends up shared, never a bridge between people.
        return [*ids, ("device", f"kiosk-{rng.randrange(KIOSKS):04d}"), ("login", visitor.login)]
    device = ("device", rng.choice(visitor.devices))
    login = ("login", visitor.login) if visitor.login else None
    if login is None or rng.random() < 0.5:
        ids.append(device)
        if login and rng.random() < 0.3:
            ids.append(login)
    else:
        ids.append(login)
        if rng.random() < 0.3:
            ids.append(device)
    return ids


def fill_signal(signal: pb.Signal, n: int, timestamp_ns: int, who: int, ids: list[tuple[str, str]]) -> None:
    signal.event_id = f"bench-{n:09d}"
    signal.timestamp.FromNanoseconds(timestamp_ns)
    signal.channel = "web"
    for namespace, value in ids:
        signal.identifiers.add(namespace=namespace, value=value)
    signal.context.ip = f"10.{who >> 16 & 255}.{who >> 8 & 255}.{who & 255}"
    signal.context.geo.country = "DE"
    signal.context.geo.city = CITIES[who % len(CITIES)]
    signal.context.user_agent = USER_AGENTS[who % len(USER_AGENTS)]


def single_resolves(identifiers: list[tuple[str, str]], count: int, seed: int) -> list[pb.ResolveRequest]:
    sample = random.Random(seed).sample(identifiers, min(count, len(identifiers)))
    return [pb.ResolveRequest(identifiers=[pb.Identifier(namespace=ns, value=v)]) for ns, v in sample]


def batched_resolves(identifiers: list[tuple[str, str]], size: int, seed: int) -> list[pb.ResolveRequest]:
    shuffled = random.Random(seed).sample(identifiers, len(identifiers))
    return [
        pb.ResolveRequest(identifiers=[pb.Identifier(namespace=ns, value=v) for ns, v in shuffled[i : i + size]])
        for i in range(0, len(shuffled), size)
    ]


# -- measurements ---------------------------------------------------------------------------


@dataclass(slots=True)
class IngestResult:
    signals: int = 0
    seconds: float = 0.0
    persons_created: int = 0
    persons_merged: int = 0
    conflicts: int = 0
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.signals / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class BatchedResult:
    identifiers: int = 0  # resolved, over all passes
    per_pass: int = 0
    seconds: float = 0.0
    passes: int = 0
    found: int = 0  # in the first pass: every distinct identifier sent, so the ones stored
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.identifiers / self.seconds if self.seconds else 0.0


async def run_ingest(channel: grpc.aio.Channel, requests: list[pb.IngestRequest], concurrency: int) -> IngestResult:
    stub = pb_grpc.IdentityServiceStub(channel)
    result = IngestResult()
    # One iterator shared by the workers: each takes the next batch when its call returns.
    pending = iter(requests)

    async def worker() -> None:
        for request in pending:
            try:
                response = await stub.Ingest(request, timeout=INGEST_CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                result.errors[exc.code().name] += 1
                continue
            for r in response.results:
                result.signals += 1
                result.persons_created += r.person_created
                result.persons_merged += len(r.merged_person_ids)
                result.conflicts += len(r.conflicts)
                result.duplicates += r.duplicate

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


async def closed_loop(
    call: grpc.aio.UnaryUnaryMultiCallable, requests: list[pb.ResolveRequest], concurrency: int, seconds: float
) -> LoadResult:
    """`concurrency` callers, each sending its next request as soon as the last one returns."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        for i in itertools.count(offset, concurrency):
            if time.perf_counter() >= deadline:
                return
            began = time.perf_counter()
            try:
                await call(requests[i % len(requests)], timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return LoadResult(len(latencies), elapsed, cuts[49] * 1e3, cuts[98] * 1e3, dict(errors))


async def compare_with_noop(
    channel: grpc.aio.Channel, requests: list[pb.ResolveRequest], config: Config, meter: LoadMeter
) -> tuple[list[LoadResult], list[LoadResult]]:
    """Alternating rounds, so drift (caches, CPU boost, the other tenant) hits both sides alike."""
    resolve = pb_grpc.IdentityServiceStub(channel).Resolve
    noop = noop_call(channel)
    for call in (noop, resolve):
        await closed_loop(call, requests, config.concurrency, WARMUP_SECONDS)
    noops, resolves = [], []
    for n in range(1, config.rounds + 1):
        with meter.phase(f"noop {n}"):
            noops.append(await closed_loop(noop, requests, config.concurrency, config.duration))
        with meter.phase(f"resolve {n}"):
            resolves.append(await closed_loop(resolve, requests, config.concurrency, config.duration))
    return noops, resolves


def noop_call(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        NOOP_METHOD,
        request_serializer=pb.ResolveRequest.SerializeToString,
        response_deserializer=pb.ResolveResponse.FromString,
    )


async def run_batched(
    channel: grpc.aio.Channel, batches: list[pb.ResolveRequest], concurrency: int, min_seconds: float
) -> BatchedResult:
    """Whole passes over every identifier sent, repeated until `min_seconds` have passed."""
    resolve = pb_grpc.IdentityServiceStub(channel).Resolve
    result = BatchedResult(per_pass=sum(len(b.identifiers) for b in batches))
    began = time.perf_counter()
    while result.passes == 0 or time.perf_counter() - began < min_seconds:
        found = await resolve_pass(resolve, batches, concurrency, result.errors)
        if result.passes == 0:
            result.found = found
        result.passes += 1
    result.seconds = time.perf_counter() - began
    result.identifiers = result.passes * result.per_pass
    return result


async def resolve_pass(
    resolve: grpc.aio.UnaryUnaryMultiCallable,
    batches: list[pb.ResolveRequest],
    concurrency: int,
    errors: Counter[str],
) -> int:
    pending = iter(batches)
    found = 0

    async def worker() -> None:
        nonlocal found
        for request in pending:
            try:
                response = await resolve(request, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                continue
            if len(response.resolutions) != len(request.identifiers):
                errors["WRONG_RESOLUTION_COUNT"] += 1
            found += sum(r.found for r in response.resolutions)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return found


@dataclass(slots=True)
class Measurements:
    ingest: IngestResult
    noop_rounds: list[LoadResult]
    resolve_rounds: list[LoadResult]
    batched: BatchedResult
    rss_empty: int
    rss_loaded: int
    rss_end: int
    other_cores: dict[str, float]


async def measure(server: ServerHandle, config: Config, workload: Workload) -> Measurements:
    single = single_resolves(workload.identifiers, 20_000, config.seed)
    batches = batched_resolves(workload.identifiers, config.resolve_batch, config.seed)
    async with server.aio_channel() as channel:
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT)
        await noop_call(channel)(single[0], timeout=CALL_TIMEOUT)
        rss_empty = server.rss()
        meter = LoadMeter(server.process.pid)
        print(f"ingesting {config.signals:,} signals ...", file=sys.stderr, flush=True)
        with meter.phase("ingest"):
            ingest = await run_ingest(channel, workload.requests, config.ingest_concurrency)
        rss_loaded = server.rss()
        print("Resolve against the no-op ceiling ...", file=sys.stderr, flush=True)
        noops, resolves = await compare_with_noop(channel, single, config, meter)
        print("batched Resolve ...", file=sys.stderr, flush=True)
        with meter.phase("batched"):
            batched = await run_batched(channel, batches, config.batched_concurrency, config.duration)
        rss_end = server.rss()
    return Measurements(ingest, noops, resolves, batched, rss_empty, rss_loaded, rss_end, meter.other_cores)


# -- reporting ------------------------------------------------------------------------------


def best(rounds: list[LoadResult]) -> LoadResult:
    # Noise on a shared machine only ever slows a round down, so the fastest is the least disturbed.
    return max(rounds, key=lambda r: r.per_second)


def summarise(m: Measurements, config: Config, server: ServerHandle, host: dict[str, Any]) -> dict[str, Any]:
    noop, resolve = best(m.noop_rounds), best(m.resolve_rounds)
    stored = m.batched.found
    mib_per_million = (m.rss_loaded - m.rss_empty) / 2**20 / stored * 1e6 if stored else None
    return {
        "machine": host,
        "config": asdict(config),
        "ingest": {**asdict(m.ingest), "signals_per_second": m.ingest.per_second, "goal": INGEST_GOAL},
        "identifiers_sent": m.batched.per_pass,
        "identifiers_stored": stored,
        "persons": m.ingest.persons_created - m.ingest.persons_merged,
        "resolve": {**asdict(resolve), "calls_per_second": resolve.per_second},
        "noop": {**asdict(noop), "calls_per_second": noop.per_second},
        "resolve_rounds": [r.per_second for r in m.resolve_rounds],
        "noop_rounds": [r.per_second for r in m.noop_rounds],
        "ratio": resolve.per_second / noop.per_second if noop.per_second else 0.0,
        "ratio_goal": RATIO_GOAL,
        "batched": {**asdict(m.batched), "identifiers_per_second": m.batched.per_second},
        "memory": {
            "rss_empty_mib": m.rss_empty / 2**20,
            "rss_loaded_mib": m.rss_loaded / 2**20,
            "rss_end_mib": m.rss_end / 2**20,
            "mib_per_million_identifiers": mib_per_million,
        },
        "other_cores": m.other_cores,
        "server": {
            "exit_code": server.exit_code,
            "stop_seconds": server.stop_seconds,
            "log": log_problems(server.log_path)[:20],
        },
    }


def verdict(value: float, goal: float) -> str:
    return "yes" if value >= goal else "**no**"


def latency(r: dict[str, Any]) -> str:
    return f"{r['calls_per_second']:,.0f} calls/s · p50 {r['p50_ms']:.2f} ms · p99 {r['p99_ms']:.2f} ms"


def memory_cell(mem: dict[str, Any]) -> str:
    per_million = mem["mib_per_million_identifiers"]
    if per_million is None:
        return "n/a (nothing stored)"
    loaded = f"{mem['rss_empty_mib']:,.0f} MiB empty → {mem['rss_loaded_mib']:,.0f} MiB loaded"
    return f"{per_million:,.0f} MiB ({loaded})"


def markdown(s: dict[str, Any]) -> str:
    c, ingest = s["config"], s["ingest"]
    rows = [
        (
            f"Durable ingest ({c['batch_size']} signals/call, {c['ingest_concurrency']} in flight)",
            f"{ingest['signals_per_second']:,.0f} signals/s",
            f"≥ {INGEST_GOAL:,.0f} signals/s",
            verdict(ingest["signals_per_second"], INGEST_GOAL),
        ),
        (
            "Stored after ingest",
            f"{s['identifiers_stored']:,} identifiers, {s['persons']:,} persons "
            f"({ingest['persons_merged']:,} merges, {ingest['conflicts']:,} conflicts)",
            "",
            "",
        ),
        (f"Resolve, 1 identifier/call ({c['concurrency']} in flight)", latency(s["resolve"]), "", ""),
        ("No-op ceiling (same client, stack and messages)", latency(s["noop"]), "", ""),
        ("Resolve / no-op throughput", f"{s['ratio']:.2f}", f"≥ {RATIO_GOAL}", verdict(s["ratio"], RATIO_GOAL)),
        (
            f"Batched Resolve ({c['resolve_batch']:,}/call, {c['batched_concurrency']} in flight)",
            f"{s['batched']['identifiers_per_second']:,.0f} identifiers/s",
            "",
            "",
        ),
        ("Server RSS per million identifiers", memory_cell(s["memory"]), "", ""),
    ]
    lines = ["| Measure | idstitch | Goal | Met |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    m = s["machine"]
    lines.append("")
    lines.append(
        f"{machine_line(m)} "
        f"Resolve and no-op: best of {c['rounds']} alternating {c['duration']:g} s rounds "
        f"(calls/s: no-op {rounds(s['noop_rounds'])}; Resolve {rounds(s['resolve_rounds'])})."
    )
    return "\n".join(lines)


def rounds(per_second: list[float]) -> str:
    return " / ".join(f"{x:,.0f}" for x in per_second)


def problems(s: dict[str, Any]) -> list[str]:
    """Anything a reader of the figures should know went wrong."""
    found = []
    for name, errors in (
        ("Ingest", s["ingest"]["errors"]),
        ("Resolve", s["resolve"]["errors"]),
        ("no-op", s["noop"]["errors"]),
        ("batched Resolve", s["batched"]["errors"]),
    ):
        if errors:
            found.append(f"{name} errors: {dict(errors)}")
    if s["identifiers_stored"] != s["identifiers_sent"]:
        found.append(f"{s['identifiers_sent'] - s['identifiers_stored']:,} identifiers sent do not resolve")
    if s["server"]["exit_code"] != 0:
        found.append(f"server exit code {s['server']['exit_code']} after SIGTERM")
    if busy := busy_phases(s["other_cores"]):
        found.append(busy)
    found += [f"server log: {line}" for line in s["server"]["log"]]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    stop_on_sigterm()
    print(f"building {config.signals:,} signals ...", file=sys.stderr, flush=True)
    workload = build_workload(config)
    with tempfile.TemporaryDirectory(prefix="idstitch-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with running_server(
            data_dir, Path(tmp) / "server.log", ["--bench-noop", *(["--no-model"] if config.no_model else [])]
        ) as server:
            measured = asyncio.run(measure(server, config, workload))
        summary = summarise(measured, config, server, machine(Path(tmp)))
    print(markdown(summary))
    notes = problems(summary)
    print("\n" + ("\n".join(f"- {n}" for n in notes) if notes else "No errors, server stopped cleanly."))
    print(f"Server stopped {summary['server']['stop_seconds']:.1f} s after SIGTERM.")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"Figures written to {RESULTS_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

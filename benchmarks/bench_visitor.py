"""Visitor-stitching benchmark: accuracy of probabilistic stitching, ingest speed with it on, scoring cost.

One run:

1. simulates web and app traffic with ground truth (`training._simulate`: households, offices,
   carrier CGNAT, family tablets, cookie churn, sporadic logins);
2. starts the real server as a separate process with the visitor model on, and replays every
   signal in time order through `Ingest` (batches of 500, a bounded number in flight);
3. resolves every identifier twice on that server, deterministic-only and at the default
   confidence, and builds a naive same-IP stitching offline;
4. scores the three against the truth with pairwise precision, recall and F1, and counts the
   soft links the change log reports;
5. times the online numpy scorer per candidate pair against Splink's `score_pairs` on the
   same pairs of realistic profile records (built from the simulated signals).

    python benchmarks/bench_visitor.py            # 20,000 persons, 30 days: about 5.5 minutes on 2 cores
    python benchmarks/bench_visitor.py --quick    # 2,000 persons: about 20 seconds

Prints a Markdown table and writes the same figures to benchmarks/results/visitor-latest.json.
The bundled model was trained on seed 1 of the simulator; the default seed here is another one,
so the figures are measured on traffic the model has not seen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import pairwise
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
    code_version,
    log_problems,
    machine,
    machine_line,
    running_server,
    stop_on_sigterm,
)
from splink import DuckDBAPI, Linker

from linkage import BUNDLED_MODEL, Signal
from linkage.modelling import (
    AddressWeeks,
    EncodedProfiles,
    Evidence,
    ProfileRecord,
    VisitorScorer,
    encode_profiles,
    history_records,
    parse_user_agent,
)
from linkage.visitor import VisitorModel
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc
from training import score_profiles
from training._simulate import SimulatedSignal, SimulationConfig, population, simulate

RESULTS_FILE = RESULTS_DIR / "visitor-latest.json"

INGEST_GOAL = 2_000.0  # signals per second with the probabilistic path on
PRECISION_GOAL = 0.95  # pairwise precision of idstitch
RECALL_GAIN_GOAL = 0.05  # "well above deterministic-only": at least this much more recall, absolute
SPEEDUP_GOAL = 1_000.0  # Splink's time per pair over the online scorer's, same pairs

INGEST_CALL_TIMEOUT = 120.0
RESOLVE_CALL_TIMEOUT = 60.0
WATCH_TIMEOUT = 300.0
# Namespaces whose identifiers are devices (one browser or app install): profiles to score.
DEVICE_NAMESPACES = frozenset({"cookie", "device"})

IdentifierKey = tuple[str, str]  # (namespace, value as sent)


@dataclass(frozen=True, slots=True)
class Config:
    persons: int
    days: int
    seed: int
    sessions_per_day: float
    batch_size: int
    in_flight: int
    resolve_batch: int
    model: Path
    max_replay_seconds: float
    scorer_lefts: int
    scorer_rounds: int
    splink_repeats: int


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 persons and fewer timing repeats (smoke run)")
    parser.add_argument("--persons", type=int, help="simulated persons (default 20,000; quick 2,000)")
    parser.add_argument("--days", type=int, default=30, help="simulated days")
    parser.add_argument("--seed", type=int, default=2, help="simulator seed (the bundled model was trained on 1)")
    parser.add_argument(
        "--sessions-per-day",
        type=float,
        default=SimulationConfig.sessions_per_day,
        help="mean sessions per person and day (the simulator's default: few; real shoppers may use devices more)",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="signals per Ingest call")
    parser.add_argument("--in-flight", type=int, default=2, help="Ingest calls in flight (order is checked)")
    parser.add_argument("--resolve-batch", type=int, default=1_000, help="identifiers per Resolve call")
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="visitor model JSON (default: bundled)")
    parser.add_argument(
        "--max-replay-seconds", type=float, default=900.0, help="stop the replay after this long and score the prefix"
    )
    args = parser.parse_args(argv)
    config = Config(
        persons=args.persons or (2_000 if args.quick else 20_000),
        days=args.days,
        seed=args.seed,
        sessions_per_day=args.sessions_per_day,
        batch_size=args.batch_size,
        in_flight=args.in_flight,
        resolve_batch=args.resolve_batch,
        model=args.model.resolve(),
        max_replay_seconds=args.max_replay_seconds,
        scorer_lefts=20 if args.quick else 50,
        scorer_rounds=5 if args.quick else 9,
        splink_repeats=5 if args.quick else 9,
    )
    if min(config.persons, config.days, config.batch_size, config.in_flight, config.resolve_batch) < 1:
        parser.error("sizes must be at least 1")
    if not config.model.is_file():
        parser.error(f"no model file at {config.model}")
    return config


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the traffic ----------------------------------------------------------------------------


def signal_message(signal: Signal) -> pb.Signal:
    message = pb.Signal(event_id=signal.event_id, channel=signal.channel)
    if signal.timestamp is not None:
        message.timestamp.FromMicroseconds(round(signal.timestamp * 1_000_000))
    for identifier in signal.identifiers:
        message.identifiers.add(namespace=identifier.namespace, value=identifier.value)
    context, geo = signal.context, signal.context.geo
    message.context.ip = context.ip
    message.context.user_agent = context.user_agent
    message.context.geo.country = geo.country
    message.context.geo.city = geo.city
    if geo.latitude is not None and geo.longitude is not None:
        message.context.geo.latitude = geo.latitude
        message.context.geo.longitude = geo.longitude
    return message


def ingest_requests(signals: Sequence[SimulatedSignal], batch_size: int) -> list[pb.IngestRequest]:
    """The signals in time order, `batch_size` per request."""
    return [
        pb.IngestRequest(signals=[signal_message(s.signal) for s in signals[i : i + batch_size]])
        for i in range(0, len(signals), batch_size)
    ]


@dataclass(frozen=True, slots=True)
class Truth:
    """Every identifier sent, in first-seen order, and its true person: who sent most of its signals."""

    identifiers: list[IdentifierKey]
    person: list[int]
    ambiguous: int  # identifiers that signals of two or more persons carried (family tablets)
    signals_of: list[Counter[int]]  # per identifier: signals per true person


def ground_truth(signals: Iterable[SimulatedSignal]) -> Truth:
    counts: dict[IdentifierKey, Counter[int]] = {}
    for item in signals:
        for identifier in item.signal.identifiers:
            key = (identifier.namespace, identifier.value)
            found = counts.get(key)
            if found is None:
                found = counts[key] = Counter()
            found[item.person] += 1
    person = [main_person(c) for c in counts.values()]
    ambiguous = sum(1 for c in counts.values() if len(c) > 1)
    return Truth(list(counts), person, ambiguous, list(counts.values()))


def main_person(counts: Counter[int]) -> int:
    """The person with most signals; ties go to the lower number, never to dict order."""
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


# -- the replay -----------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayResult:
    batches: int = 0
    signals: int = 0
    seconds: float = 0.0
    acknowledged: list[bool] = field(default_factory=list)  # per batch sent
    call_ms: list[float] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    persons_created: int = 0
    persons_merged: int = 0
    conflicts: int = 0
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    truncated: bool = False
    marks: list[tuple[float, int]] = field(default_factory=list)  # (seconds, signals so far) per batch answered

    @property
    def per_second(self) -> float:
        return self.signals / self.seconds if self.seconds else 0.0

    def rates_by_tenth(self) -> list[float]:
        """Signals per second in each tenth of the batches: does ingest slow down as the graph grows?"""
        if len(self.marks) < 10:
            return []
        points = [(0.0, 0)] + [self.marks[len(self.marks) * k // 10 - 1] for k in range(1, 11)]
        return [(s1 - s0) / (t1 - t0) if t1 > t0 else 0.0 for (t0, s0), (t1, s1) in pairwise(points)]


async def timed_ingest(
    stub: pb_grpc.IdentityServiceStub, request: pb.IngestRequest
) -> tuple[pb.IngestResponse | str, float]:
    began = time.perf_counter()
    try:
        response = await stub.Ingest(request, timeout=INGEST_CALL_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, time.perf_counter() - began
    return response, time.perf_counter() - began


def tally(result: ReplayResult, outcome: pb.IngestResponse | str, seconds: float) -> None:
    result.call_ms.append(seconds * 1e3)
    if isinstance(outcome, str):
        result.errors[outcome] += 1
        result.acknowledged.append(False)
        return
    result.acknowledged.append(True)
    for r in outcome.results:
        result.signals += 1
        result.decisions[pb.Decision.Name(r.decision)] += 1
        result.persons_created += r.person_created
        result.persons_merged += len(r.merged_person_ids)
        result.conflicts += len(r.conflicts)
        result.duplicates += r.duplicate


async def replay(
    stub: pb_grpc.IdentityServiceStub, requests: Sequence[pb.IngestRequest], in_flight: int, budget: float
) -> ReplayResult:
    """Send the batches in order, at most `in_flight` at a time; results are taken in order too."""
    result = ReplayResult()
    pending: deque[asyncio.Task[tuple[pb.IngestResponse | str, float]]] = deque()
    began = time.perf_counter()
    step = max(1, len(requests) // 10)

    async def take_oldest() -> None:
        tally(result, *await pending.popleft())
        elapsed = time.perf_counter() - began
        result.marks.append((elapsed, result.signals))
        if len(result.marks) % step == 0:
            done = f"{len(result.marks):,} of {len(requests):,} batches"
            progress(f"  {done} in {elapsed:.0f} s, {result.signals / elapsed:,.0f} signals/s so far")

    for request in requests:
        if time.perf_counter() - began > budget:
            result.truncated = True
            break
        while len(pending) >= in_flight:
            await take_oldest()
        pending.append(asyncio.create_task(timed_ingest(stub, request)))
        result.batches += 1
    while pending:
        await take_oldest()
    result.seconds = time.perf_counter() - began
    return result


# -- resolving and the change log -----------------------------------------------------------


@dataclass(slots=True)
class Resolved:
    """One answer per identifier: a person id ("" when not found) and the decision."""

    person: list[str] = field(default_factory=list)
    decision: list[int] = field(default_factory=list)
    household: list[str] = field(default_factory=list)  # "" when in no household
    shared: int = 0
    not_found: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


def resolve_request(keys: Sequence[IdentifierKey], deterministic_only: bool) -> pb.ResolveRequest:
    request = pb.ResolveRequest(identifiers=[pb.Identifier(namespace=ns, value=v) for ns, v in keys])
    if deterministic_only:
        request.deterministic_only = True
    return request


async def resolve_all(
    stub: pb_grpc.IdentityServiceStub, keys: Sequence[IdentifierKey], batch: int, deterministic_only: bool
) -> Resolved:
    """Resolve every identifier (emails raw: the server hashes them as it did on ingest)."""
    out = Resolved()
    began = time.perf_counter()
    for i in range(0, len(keys), batch):
        chunk = keys[i : i + batch]
        try:
            response = await stub.Resolve(resolve_request(chunk, deterministic_only), timeout=RESOLVE_CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            out.errors[exc.code().name] += 1
            out.person += [""] * len(chunk)
            out.decision += [pb.DECISION_UNSPECIFIED] * len(chunk)
            out.household += [""] * len(chunk)
            continue
        for r in response.resolutions:
            out.person.append(r.person_id if r.found else "")
            out.decision.append(r.decision)
            out.household.append(r.household_id)
            out.shared += r.shared
            out.not_found += not r.found
    out.seconds = time.perf_counter() - began
    return out


@dataclass(slots=True)
class ChangeLog:
    kinds: Counter[str] = field(default_factory=Counter)
    unlink_reasons: Counter[str] = field(default_factory=Counter)
    # Changes whose signal belongs to an earlier batch than one already seen: batches applied out of order.
    out_of_order: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def soft_links(self) -> int:
        return self.kinds["CHANGE_KIND_SOFT_LINKED"] - self.kinds["CHANGE_KIND_SOFT_UNLINKED"]


async def read_change_log(stub: pb_grpc.IdentityServiceStub, batch_of: dict[str, int]) -> ChangeLog:
    """The whole change log (stop_at_end): counts by kind, and whether batches applied in order."""
    log = ChangeLog()
    latest = -1
    began = time.perf_counter()
    call = stub.WatchChanges(pb.WatchChangesRequest(after_sequence=0, stop_at_end=True), timeout=WATCH_TIMEOUT)
    try:
        async for change in call:
            log.kinds[pb.ChangeKind.Name(change.kind)] += 1
            if change.kind == pb.CHANGE_KIND_SOFT_UNLINKED:
                log.unlink_reasons[change.detail] += 1
            batch = batch_of.get(change.event_id, -1)
            log.out_of_order += 0 <= batch < latest
            latest = max(latest, batch)
    except grpc.aio.AioRpcError as exc:
        log.error = exc.code().name
    log.seconds = time.perf_counter() - began
    return log


@dataclass(frozen=True, slots=True)
class ServerRun:
    replay: ReplayResult
    keys: list[IdentifierKey]  # every identifier of the acknowledged signals, first seen first
    deterministic: Resolved
    default: Resolved
    changes: ChangeLog
    other_cores: dict[str, float]
    relinked: Resolved  # the default answers again after a batch relink
    relink: dict[str, Any]  # its counts and seconds
    model_change: dict[str, Any]  # promote then rollback under load: seconds, calls, failures, exactness


async def drive(server: ServerHandle, requests: Sequence[pb.IngestRequest], config: Config) -> ServerRun:
    pid = server.process.pid
    async with server.aio_channel() as channel:
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT)
        stub = pb_grpc.IdentityServiceStub(channel)
        meter = LoadMeter(pid)
        signals = sum(len(r.signals) for r in requests)
        progress(f"replaying {signals:,} signals in {len(requests):,} batches, {config.in_flight} in flight ...")
        with meter.phase("ingest"):
            replayed = await replay(stub, requests, config.in_flight, config.max_replay_seconds)
        acknowledged = [s for r, ok in zip(requests, replayed.acknowledged, strict=False) if ok for s in r.signals]
        keys = list(dict.fromkeys((i.namespace, i.value) for s in acknowledged for i in s.identifiers))
        progress(f"resolving {len(keys):,} identifiers twice ...")
        deterministic = await resolve_all(stub, keys, config.resolve_batch, deterministic_only=True)
        default = await resolve_all(stub, keys, config.resolve_batch, deterministic_only=False)
        progress("reading the change log ...")
        batch_of = {s.event_id: n for n, r in enumerate(requests) for s in r.signals}
        changes = await asyncio.wait_for(read_change_log(stub, batch_of), WATCH_TIMEOUT + 10)
        progress("batch relink with the whole history, then resolving again ...")
        with meter.phase("relink"):
            began = time.perf_counter()
            final = None
            async for update in stub.Relink(pb.RelinkRequest()):
                final = update
            relink_seconds = time.perf_counter() - began
        if final is None or not final.done:
            raise RuntimeError("the relink ended early")
        relink = {f.name: getattr(final, f.name) for f in final.DESCRIPTOR.fields if f.name != "done"}
        relink["seconds"] = relink_seconds
        relinked = await resolve_all(stub, keys, config.resolve_batch, deterministic_only=False)
        progress("batch relink again, scored by Splink predict on DuckDB (relink --engine duckdb) ...")
        with meter.phase("relink by Splink"):
            relink["splink_duckdb"] = await relink_by_splink(stub)
        again = await resolve_all(stub, keys, config.resolve_batch, deterministic_only=False)
        relink["splink_duckdb"]["answers_differing"] = sum(
            a != b for a, b in zip(relinked.person, again.person, strict=True)
        )
        progress("promote a candidate model, then roll it back, while clients keep calling ...")
        with meter.phase("model change"):
            model_change = await promote_and_roll_back(stub, keys, requests, config)
    return ServerRun(replayed, keys, deterministic, default, changes, meter.other_cores, relinked, relink, model_change)


async def relink_by_splink(stub: pb_grpc.IdentityServiceStub) -> dict[str, Any]:
    """What `idstitch relink --engine duckdb` does, timed: a snapshot of the visitor profiles,
    Splink predict on DuckDB over them, the pairs sent back (RelinkScored) and decided."""
    began = time.perf_counter()
    written = await stub.WriteSnapshot(pb.WriteSnapshotRequest(visitor_profiles_only=True), timeout=600)
    snapshot_seconds = time.perf_counter() - began
    directory = Path(written.directory)
    try:
        scored = await asyncio.to_thread(
            score_profiles, directory / "visitor-profiles.parquet", written.visitor_model_json, "duckdb"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    sent = time.perf_counter()

    async def messages() -> Any:
        step = 100_000
        for start in range(0, max(len(scored.left), 1), step):
            yield pb.ScoredPairs(
                left=scored.left[start : start + step].tolist(), right=scored.right[start : start + step].tolist(),
                match_weight=scored.match_weight[start : start + step].tolist(),
                model_version=written.visitor_model_version,
            )  # fmt: skip

    result = await stub.RelinkScored(messages(), timeout=3600)
    return {
        "seconds": time.perf_counter() - began,
        "snapshot_seconds": snapshot_seconds,
        "predict_seconds": scored.seconds,
        "apply_seconds": time.perf_counter() - sent,
        "pairs": len(scored.left),
        **_counts(result),
    }


def _counts(relinked: pb.RelinkProgress) -> dict[str, int]:
    return {name: getattr(relinked, name) for name in ("scored", "made", "dropped", "moved", "kept")}


def candidate_model(model: Path) -> pb.PromoteModelRequest:
    """A model to promote: the benchmark's own with a prior twice as high (another version,
    linking a little more), and its metrics file."""
    settings = json.loads(model.read_text())
    settings["probability_two_random_records_match"] *= 2
    metrics = model.with_name(model.name.removesuffix(".json") + ".metrics.json")
    return pb.PromoteModelRequest(
        model_json=json.dumps(settings).encode(), metrics_json=metrics.read_bytes() if metrics.exists() else b""
    )


async def promote_and_roll_back(
    stub: pb_grpc.IdentityServiceStub,
    keys: Sequence[IdentifierKey],
    requests: Sequence[pb.IngestRequest],
    config: Config,
) -> dict[str, Any]:
    """Promote a candidate and roll it back while a client keeps calling Resolve and Ingest
    (batches already sent: idempotent, so the graph must come back as it was); times, calls,
    failures, and whether every answer after the rollback equals the one before the promote."""
    before = await resolve_all(stub, keys, config.resolve_batch, deterministic_only=False)
    stop = asyncio.Event()
    calls: Counter[str] = Counter()

    async def keep_calling() -> None:
        n = 0
        while not stop.is_set():
            try:
                if n % 2:
                    await stub.Ingest(requests[n % len(requests)], timeout=RESOLVE_CALL_TIMEOUT)
                else:
                    chunk = keys[(n * 50) % len(keys) :][:50]
                    await stub.Resolve(resolve_request(chunk, False), timeout=RESOLVE_CALL_TIMEOUT)
                calls["ok"] += 1
            except grpc.aio.AioRpcError as exc:
                calls[exc.code().name] += 1
            n += 1

    caller = asyncio.create_task(keep_calling())
    try:
        began = time.perf_counter()
        promoted = await stub.PromoteModel(candidate_model(config.model), timeout=3600)
        promote_seconds = time.perf_counter() - began
        promote_calls = sum(calls.values())
        began = time.perf_counter()
        rolled = await stub.RollbackModel(pb.RollbackModelRequest(), timeout=3600)
        rollback_seconds = time.perf_counter() - began
    finally:
        stop.set()
        await caller
    after = await resolve_all(stub, keys, config.resolve_batch, deterministic_only=False)
    return {
        "promoted": promoted.version,
        "promote_seconds": promote_seconds,
        "promote_relinked": _counts(promoted.relinked),
        "rollback_seconds": rollback_seconds,
        "rollback_relinked": _counts(rolled.relinked),
        "calls_during": promote_calls,
        "calls": sum(calls.values()),
        "failed_calls": sum(n for code, n in calls.items() if code != "ok"),
        "answers_restored": before.person == after.person and before.household == after.household,
        "answers_differing": sum(a != b for a, b in zip(before.person, after.person, strict=True)),
        "household_answers_differing": sum(a != b for a, b in zip(before.household, after.household, strict=True)),
    }


# -- accuracy -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairScores:
    persons: int  # predicted persons (clusters) over the identifiers
    predicted_pairs: int
    true_pairs: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def same_cluster_pairs(labels: Iterable[Hashable]) -> int:
    return sum(math.comb(n, 2) for n in Counter(labels).values())


def pair_scores(predicted: Sequence[Hashable], truth: Sequence[int]) -> PairScores:
    """Pairwise scores from contingency counts: pairs placed together, truly together, and both."""
    return PairScores(
        persons=len(set(predicted)),
        predicted_pairs=same_cluster_pairs(predicted),
        true_pairs=same_cluster_pairs(truth),
        true_positives=same_cluster_pairs(zip(predicted, truth, strict=True)),
    )


def labels(resolved: Resolved) -> list[Hashable]:
    """Person ids as cluster labels; an identifier not found is a person of its own."""
    return [person if person else ("unresolved", i) for i, person in enumerate(resolved.person)]


def household_labels(resolved: Resolved) -> list[Hashable]:
    """The household id where the answer has one, else the person id (see `labels`)."""
    return [h if h else person for h, person in zip(resolved.household, labels(resolved), strict=True)]


class UnionFind:
    def __init__(self, size: int) -> None:
        self._parent = list(range(size))

    def find(self, x: int) -> int:
        parent = self._parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


def naive_same_ip(signals: Iterable[SimulatedSignal], index: dict[IdentifierKey, int]) -> list[int]:
    """Baseline (ii): identifiers seen on one IP address are one person, and so are identifiers
    seen in one signal; union-find over both."""
    groups = UnionFind(len(index))
    first_on_ip: dict[str, int] = {}
    for item in signals:
        signal = item.signal
        ids = [index[(i.namespace, i.value)] for i in signal.identifiers]
        for other in ids[1:]:
            groups.union(ids[0], other)
        if signal.context.ip and ids:
            groups.union(first_on_ip.setdefault(signal.context.ip, ids[0]), ids[0])
    return [groups.find(i) for i in range(len(index))]


@dataclass(frozen=True, slots=True)
class SoftLinkCheck:
    """Soft links at the end, checked against the truth. A person at the default confidence is a
    root component plus the components soft-linked to it (resolved DECISION_PROBABILISTIC); a link
    is right when the linked component's main true person is the root's."""

    identifiers: int  # resolved with DECISION_PROBABILISTIC
    components: int  # distinct components among them: soft links in force
    correct: int
    unknown: int  # in a person whose root holds none of the identifiers sent


def component_truth(truth: Truth, deterministic: Resolved) -> dict[str, int]:
    """Each component's main true person: who sent most of the signals of its identifiers."""
    signals_of: dict[str, Counter[int]] = {}
    for component, counts in zip(deterministic.person, truth.signals_of, strict=True):
        if component:
            signals_of.setdefault(component, Counter()).update(counts)
    return {component: main_person(counts) for component, counts in signals_of.items()}


def check_soft_links(truth: Truth, deterministic: Resolved, default: Resolved) -> SoftLinkCheck:
    groups: dict[str, set[str]] = {}  # person at the default confidence -> its components
    linked: set[str] = set()
    identifiers = 0
    for component, person, decision in zip(deterministic.person, default.person, default.decision, strict=True):
        if component and person:
            groups.setdefault(person, set()).add(component)
            if decision == pb.DECISION_PROBABILISTIC:
                identifiers += 1
                linked.add(component)
    main = component_truth(truth, deterministic)
    correct = unknown = 0
    for components in groups.values():
        members, roots = components & linked, components - linked
        if len(roots) != 1:
            unknown += len(members)
            continue
        root = roots.pop()
        correct += sum(1 for member in members if main[member] == main[root])
    return SoftLinkCheck(identifiers, len(linked), correct, unknown)


@dataclass(frozen=True, slots=True)
class Accuracy:
    identifiers: int
    namespaces: dict[str, int]
    true_persons: int
    ambiguous: int
    deterministic: PairScores
    naive_ip: PairScores
    idstitch: PairScores
    soft_links: SoftLinkCheck
    household_deterministic: PairScores  # a pair is right when both identifiers are of one household
    household_idstitch: PairScores
    # Households as an answer: an identifier with a household id is placed by it, others by person.
    household_answers: PairScores
    household_linked: int  # identifiers whose answer carries a household id
    by_kind: dict[str, KindRecall]
    relinked: PairScores  # idstitch after the batch relink
    # Persons whose identifiers are the same before and after the relink, and how many of them
    # changed id (the goal is none).
    unchanged_persons: int
    unchanged_persons_new_id: int


@dataclass(frozen=True, slots=True)
class KindRecall:
    """True pairs of one kind (of one person's browser and app identifiers), and how many of
    them each method placed together."""

    true_pairs: int
    deterministic: int
    idstitch: int


PAIR_KINDS = ("successive cookies of one browser", "app and web of one phone", "two devices")


def pair_kind(a: IdentifierKey, b: IdentifierKey, agent_of: dict[IdentifierKey, str]) -> str:
    """What a true pair of identifiers is, from what they sent: one browser's cookies send one
    user-agent string; a phone's app and browser name one OS and kind; anything else is two devices."""
    ua, ub = agent_of[a], agent_of[b]
    if a[0] == b[0] == "cookie" and ua == ub:
        return PAIR_KINDS[0]
    if {a[0], b[0]} == {"cookie", "device"}:
        (fa, ka), (fb, kb) = parse_user_agent(ua), parse_user_agent(ub)
        if ka == kb == "phone" and fa.split("/")[0] == fb.split("/")[0]:
            return PAIR_KINDS[1]
    return PAIR_KINDS[2]


def kind_recalls(
    signals: Iterable[SimulatedSignal], truth: Truth, deterministic: Sequence[Hashable], default: Sequence[Hashable]
) -> dict[str, KindRecall]:
    agents: dict[IdentifierKey, Counter[str]] = {}
    for item in signals:
        for identifier in item.signal.identifiers:
            if identifier.namespace in ("cookie", "device") and item.signal.context.user_agent:
                key = (identifier.namespace, identifier.value)
                agents.setdefault(key, Counter())[item.signal.context.user_agent] += 1
    agent_of = {key: counts.most_common(1)[0][0] for key, counts in agents.items()}
    by_person: dict[int, list[int]] = {}
    for i, key in enumerate(truth.identifiers):
        if key in agent_of:
            by_person.setdefault(truth.person[i], []).append(i)
    tally = {kind: [0, 0, 0] for kind in PAIR_KINDS}
    for members in by_person.values():
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                counts = tally[pair_kind(truth.identifiers[i], truth.identifiers[j], agent_of)]
                counts[0] += 1
                counts[1] += deterministic[i] == deterministic[j]
                counts[2] += default[i] == default[j]
    return {kind: KindRecall(*counts) for kind, counts in tally.items()}


def accuracy(signals: Sequence[SimulatedSignal], truth: Truth, run: ServerRun, household_of: Sequence[int]) -> Accuracy:
    if truth.identifiers != run.keys:
        raise RuntimeError("the identifiers resolved are not those of the signals replayed")
    index = {key: i for i, key in enumerate(truth.identifiers)}
    households = [household_of[p] for p in truth.person]
    return Accuracy(
        identifiers=len(truth.identifiers),
        namespaces=dict(Counter(ns for ns, _ in truth.identifiers)),
        true_persons=len(set(truth.person)),
        ambiguous=truth.ambiguous,
        deterministic=pair_scores(labels(run.deterministic), truth.person),
        naive_ip=pair_scores(naive_same_ip(signals, index), truth.person),
        idstitch=pair_scores(labels(run.default), truth.person),
        soft_links=check_soft_links(truth, run.deterministic, run.default),
        household_deterministic=pair_scores(labels(run.deterministic), households),
        household_idstitch=pair_scores(labels(run.default), households),
        household_answers=pair_scores(household_labels(run.default), households),
        household_linked=sum(1 for h in run.default.household if h),
        by_kind=kind_recalls(signals, truth, labels(run.deterministic), labels(run.default)),
        relinked=pair_scores(labels(run.relinked), truth.person),
        **dict(
            zip(("unchanged_persons", "unchanged_persons_new_id"), id_churn(run.default, run.relinked), strict=True)
        ),
    )


def id_churn(before: Resolved, after: Resolved) -> tuple[int, int]:
    """Persons whose set of identifiers is the same in both answers, and how many of them have
    another person id in the second."""

    def clusters(resolved: Resolved) -> dict[frozenset[int], str]:
        members: dict[str, set[int]] = {}
        for i, person in enumerate(resolved.person):
            if person:
                members.setdefault(person, set()).add(i)
        return {frozenset(ids): person for person, ids in members.items()}

    old, new = clusters(before), clusters(after)
    same = set(old) & set(new)
    return len(same), sum(1 for c in same if old[c] != new[c])


# -- scoring cost ---------------------------------------------------------------------------


def device_profiles(signals: Iterable[SimulatedSignal]) -> list[ProfileRecord]:
    """One profile per cookie or device id, from the evidence of the signals that carried it,
    with term frequencies over all of them (as training builds them from stored history)."""
    evidence: dict[IdentifierKey, Evidence] = {}
    weeks = AddressWeeks()
    for item in signals:
        signal = item.signal
        if signal.context.ip:
            weeks.observe(signal.timestamp or 0.0, signal.context.ip)
        for identifier in signal.identifiers:
            if identifier.namespace in DEVICE_NAMESPACES:
                key = (identifier.namespace, identifier.value)
                found = evidence.get(key)
                if found is None:
                    found = evidence[key] = Evidence()
                found.observe(signal.timestamp or 0.0, signal.context)
    return [record for _, record in history_records(list(evidence.values()), weeks)]


@dataclass(frozen=True, slots=True)
class Workload:
    """Left profiles, each with its own random candidates, for both scorers."""

    lefts: list[int]
    candidates: dict[int, list[list[int]]]  # candidates per left, by candidate count


def scoring_workload(records: int, lefts: int, sizes: Sequence[int], seed: int) -> Workload:
    rng = random.Random(seed)
    chosen = rng.sample(range(records), min(lefts, records))
    candidates: dict[int, list[list[int]]] = {}
    for size in sizes:
        candidates[size] = []
        for left in chosen:
            others = rng.sample(range(records), min(size + 1, records))
            candidates[size].append([i for i in others if i != left][:size])
    return Workload(chosen, candidates)


def time_scorer(scorer: VisitorScorer, encoded: EncodedProfiles, work: Workload, size: int, rounds: int) -> float:
    """Median over rounds of µs per pair, after a warm-up round."""
    one_round = scorer_round(scorer, encoded, work, size)
    one_round()
    return statistics.median(one_round() for _ in range(rounds))


def scorer_round(scorer: VisitorScorer, encoded: EncodedProfiles, work: Workload, size: int) -> Callable[[], float]:
    """A function that scores every left of `work` against its `size` candidates once and returns
    µs per pair; encodings are taken beforehand (online they are cached). Each score reads its
    match probabilities too (computed when first read), since Splink's `score_pairs` returns them."""
    calls = [
        (encoded.take([left]), encoded.take(rows)) for left, rows in zip(work.lefts, work.candidates[size], strict=True)
    ]
    pairs = sum(len(c) for _, c in calls)

    def one_round() -> float:
        began = time.perf_counter()
        for left, candidates in calls:
            scorer.score(left, candidates).match_probability  # noqa: B018 - computes them
        return (time.perf_counter() - began) / pairs * 1e6

    return one_round


@dataclass(frozen=True, slots=True)
class SplinkTiming:
    us_per_pair: float
    ms_per_call: float
    calls: int
    max_weight_difference: float  # against the online scorer on the same pairs
    linker_seconds: float
    # Splink's µs per pair over the scorer's in a 1 x 100 round run just before each call: the
    # machine's speed drifts between runs, much less between a call and the round before it.
    paired_speedups: list[float]


def time_splink(
    model: Path,
    records: Sequence[ProfileRecord],
    ours: tuple[VisitorScorer, EncodedProfiles],
    work: Workload,
    repeats: int,
) -> SplinkTiming:
    """`linker.inference.score_pairs` with 1 left x 100 right dicts per call, after two warm-up calls,
    each preceded by one round of the online scorer on the workload's 1 x 100 pairs; each call's
    match weights are checked against the online scorer's on the same pairs."""
    rows = [r.as_row() for r in records]
    began = time.perf_counter()
    linker = Linker(DuckDBAPI().register(rows, dataset_display_name="profiles"), str(model), log_level=logging.WARNING)
    linker_seconds = time.perf_counter() - began
    calls = list(zip(work.lefts, work.candidates[100], strict=True))
    for left, right in calls[:2]:
        linker.inference.score_pairs([rows[left]], [rows[i] for i in right]).as_record_list()
    ours_round = scorer_round(*ours, work, 100)
    ours_round()
    seconds: list[float] = []
    paired: list[float] = []
    worst = 0.0
    for n in range(repeats):
        left, right = calls[(n + 2) % len(calls)]
        left_rows, right_rows = [rows[left]], [rows[i] for i in right]
        scorer_us = ours_round()
        began = time.perf_counter()
        scored = linker.inference.score_pairs(left_rows, right_rows).as_record_list()
        seconds.append(time.perf_counter() - began)
        paired.append(seconds[-1] / len(right) * 1e6 / scorer_us)
        worst = max(worst, weight_difference(*ours, left, right, scored))
    median = statistics.median(seconds)
    return SplinkTiming(median / len(calls[0][1]) * 1e6, median * 1e3, repeats, worst, linker_seconds, paired)


def weight_difference(
    scorer: VisitorScorer, encoded: EncodedProfiles, left: int, right: list[int], scored: Sequence[dict[str, Any]]
) -> float:
    """Largest |match weight| difference between Splink's rows and the online scorer's."""
    ours = scorer.score(encoded.take([left]), encoded.take(right))
    weight = dict(zip(ours.candidate_ids.tolist(), ours.match_weight.tolist(), strict=True))
    return max(abs(float(row["match_weight"]) - float(weight[row["unique_id_r"]])) for row in scored)


@dataclass(frozen=True, slots=True)
class ScoringCost:
    profiles: int
    scorer_us_per_pair: dict[int, float]  # by candidates per call
    splink: SplinkTiming
    # Plain Splink over the same profiles: predict at the model's threshold, then
    # cluster_pairwise_predictions_at_threshold; seconds, pairs predicted, clusters of 2+.
    splink_relink: dict[str, float]

    def speedup(self, size: int) -> float:
        """At 100 candidates the median of the paired rounds; otherwise medians over medians."""
        if size == 100 and self.splink.paired_speedups:
            return statistics.median(self.splink.paired_speedups)
        ours = self.scorer_us_per_pair[size]
        return self.splink.us_per_pair / ours if ours else 0.0


def scoring_cost(signals: Sequence[SimulatedSignal], config: Config) -> ScoringCost:
    records = device_profiles(signals)
    scorer = VisitorScorer.from_model(config.model)
    encoded = encode_profiles(records)
    work = scoring_workload(len(records), config.scorer_lefts, (100, 1_000), config.seed)
    ours = {size: time_scorer(scorer, encoded, work, size, config.scorer_rounds) for size in (100, 1_000)}
    progress("timing Splink score_pairs ...")
    splink = time_splink(config.model, records, (scorer, encoded), work, config.splink_repeats)
    progress("timing Splink predict + cluster_pairwise_predictions_at_threshold on the same profiles ...")
    return ScoringCost(len(records), ours, splink, time_splink_relink(config.model, records))


def time_splink_relink(model: Path, records: Sequence[ProfileRecord]) -> dict[str, float]:
    """What a batch relink with plain Splink costs: `predict` over the model's prediction
    blocking rules at its threshold, then clustering at it, on DuckDB."""
    threshold = VisitorModel.load(model).threshold
    rows = [r.as_row() for r in records]
    began = time.perf_counter()
    linker = Linker(DuckDBAPI().register(rows, dataset_display_name="profiles"), str(model), log_level=logging.WARNING)
    predicted = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predicted, threshold)
    ((grouped,),) = (
        clusters.as_duckdbpyrelation().aggregate("cluster_id, count(*) AS n").filter("n > 1").count("*").fetchall()
    )
    seconds = time.perf_counter() - began
    ((pairs,),) = predicted.as_duckdbpyrelation().count("*").fetchall()
    return {"seconds": seconds, "pairs": float(pairs), "clusters": float(grouped)}


# -- reporting ------------------------------------------------------------------------------


def summarise(
    config: Config,
    signals: tuple[int, int],  # replayed, simulated
    run: ServerRun,
    scores: Accuracy,
    cost: ScoringCost,
    server: dict[str, Any],
    timings: dict[str, float],
    host: dict[str, Any],
) -> dict[str, Any]:
    replayed = run.replay
    cuts = statistics.quantiles(replayed.call_ms, n=100) if len(replayed.call_ms) > 1 else [0.0] * 99
    return {
        "machine": host,
        "config": {**asdict(config), "model": str(config.model)},
        "traffic": {
            "signals_replayed": signals[0],
            "signals_simulated": signals[1],
            "persons": config.persons,
            "days": config.days,
            "seed": config.seed,
            "sessions_per_day": config.sessions_per_day,
        },
        "ingest": {
            **shallow_dict(replayed, leave_out=("acknowledged", "call_ms", "marks")),
            "signals_per_second_by_tenth": replayed.rates_by_tenth(),
            "signals_per_second": replayed.per_second,
            "call_p50_ms": cuts[49],
            "call_p99_ms": cuts[98],
            "goal": INGEST_GOAL,
        },
        "accuracy": {
            "identifiers": scores.identifiers,
            "namespaces": scores.namespaces,
            "true_persons": scores.true_persons,
            "ambiguous_identifiers": scores.ambiguous,
            "deterministic_only": scores.deterministic.as_dict(),
            "naive_same_ip": scores.naive_ip.as_dict(),
            "idstitch": scores.idstitch.as_dict(),
            "household_deterministic_only": scores.household_deterministic.as_dict(),
            "household_idstitch": scores.household_idstitch.as_dict(),
            "household_answers": scores.household_answers.as_dict(),
            "household_linked_identifiers": scores.household_linked,
            "by_kind": {kind: asdict(k) for kind, k in scores.by_kind.items()},
            "idstitch_relinked": scores.relinked.as_dict(),
            "unchanged_persons": scores.unchanged_persons,
            "unchanged_persons_new_id": scores.unchanged_persons_new_id,
            "precision_goal": PRECISION_GOAL,
            "recall_gain_goal": RECALL_GAIN_GOAL,
        },
        "resolve": {
            name: shallow_dict(r, leave_out=("person", "decision"))
            for name, r in (("deterministic_only", run.deterministic), ("default", run.default))
        },
        "soft_links": {
            "change_log": {**shallow_dict(run.changes), "net": run.changes.soft_links},
            "at_end": asdict(scores.soft_links),
        },
        "scoring": {
            "profiles": cost.profiles,
            "scorer_us_per_pair": cost.scorer_us_per_pair,
            "splink": asdict(cost.splink),
            "speedup_100": cost.speedup(100),
            "speedup_1000": cost.speedup(1_000),
            "splink_relink": cost.splink_relink,
            "goal": SPEEDUP_GOAL,
        },
        "relink": run.relink,
        "model_change": run.model_change,
        "other_cores": run.other_cores,
        "server": server,
        "timings_seconds": timings,
    }


def shallow_dict(obj: Any, leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """A dataclass's fields, Counters as plain dicts (`asdict` would rebuild them from their items)."""
    skip = set(leave_out)
    return {
        f.name: dict(value) if isinstance(value, Counter) else value
        for f in fields(obj)
        if f.name not in skip
        for value in (getattr(obj, f.name),)
    }


def verdict(met: bool) -> str:
    return "yes" if met else "**no**"


def prf(s: dict[str, Any]) -> str:
    return (
        f"P {s['precision']:.3f} · R {s['recall']:.3f} · F1 {s['f1']:.3f} "
        f"({s['persons']:,} persons, {s['predicted_pairs']:,} pairs)"
    )


def traffic_rows(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    a, t, model = s["accuracy"], s["traffic"], s["server"]["model"]
    namespaces = ", ".join(f"{n:,} {ns}" for ns, n in sorted(a["namespaces"].items()))
    share = a["ambiguous_identifiers"] / a["identifiers"] if a["identifiers"] else 0.0
    replayed, simulated = t["signals_replayed"], t["signals_simulated"]
    prefix = "" if replayed == simulated else f", of which {replayed:,} replayed"
    return [
        (
            "Simulated traffic",
            f"{t['persons']:,} persons, {t['days']} days, {t['sessions_per_day']:g} sessions a day, seed {t['seed']}: "
            f"{simulated:,} signals{prefix}",
            "",
            "",
        ),
        (
            "Server code and visitor model",
            f"{s['server']['code']}; model {model['version']}, links at probability ≥ {model['threshold']:g}",
            "",
            "",
        ),
        ("Identifiers scored", f"{a['identifiers']:,} ({namespaces}); {a['true_persons']:,} true persons", "", ""),
        (
            "Ambiguous identifiers (signals of 2+ persons)",
            f"{a['ambiguous_identifiers']:,} ({share:.1%}); truth = person with most signals",
            "",
            "",
        ),
    ]


def ingest_rows(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    c, i = s["config"], s["ingest"]
    decisions = ", ".join(f"{n:,} {d.removeprefix('DECISION_').lower()}" for d, n in sorted(i["decisions"].items()))
    return [
        (
            f"Ingest with the visitor model ({c['batch_size']}/call, {c['in_flight']} in flight)",
            f"{i['signals_per_second']:,.0f} signals/s ({i['signals']:,} in {i['seconds']:.1f} s; "
            f"p50 {i['call_p50_ms']:.0f} ms, p99 {i['call_p99_ms']:.0f} ms per call)",
            f"≥ {INGEST_GOAL:,.0f} signals/s",
            verdict(i["signals_per_second"] >= INGEST_GOAL),
        ),
        (
            "Ingest rate by tenth of the replay",
            " · ".join(f"{r:,.0f}" for r in i["signals_per_second_by_tenth"]),
            "",
            "",
        ),
        ("Ingest decisions per signal", decisions, "", ""),
    ]


def accuracy_rows(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    a = s["accuracy"]
    m = s["model_change"]
    ours, det = a["idstitch"], a["deterministic_only"]
    gain = ours["recall"] - det["recall"]
    return [
        ("(i) Deterministic only (Resolve deterministic_only)", prf(det), "", ""),
        ("(ii) Naive same-IP stitching (offline union-find)", prf(a["naive_same_ip"]), "", ""),
        ("(iii) idstitch (Resolve, default confidence)", prf(ours), "", ""),
        (
            "idstitch pairwise precision",
            f"{ours['precision']:.3f}",
            f"≥ {PRECISION_GOAL}",
            verdict(ours["precision"] >= PRECISION_GOAL),
        ),
        (
            "idstitch recall over deterministic-only",
            f"{gain:+.3f} ({det['recall']:.3f} → {ours['recall']:.3f})",
            f"≥ +{RECALL_GAIN_GOAL}",
            verdict(gain >= RECALL_GAIN_GOAL),
        ),
        *(
            (
                f"Recall, {kind}",
                f"{k['deterministic'] / k['true_pairs']:.3f} → {k['idstitch'] / k['true_pairs']:.3f} "
                f"({k['true_pairs']:,} true pairs)"
                if k["true_pairs"]
                else "no such pairs",
                "",
                "",
            )
            for kind, k in a["by_kind"].items()
        ),
        ("(iv) idstitch after a batch relink (Relink, then Resolve)", prf(a["idstitch_relinked"]), "", ""),
        (
            "Relink: recall over online only; person ids changed of unchanged persons",
            f"{a['idstitch_relinked']['recall'] - ours['recall']:+.3f}; {a['unchanged_persons_new_id']:,} of "
            f"{a['unchanged_persons']:,}",
            "churn 0",
            verdict(a["unchanged_persons_new_id"] == 0),
        ),
        (
            "Relink",
            f"{s['relink']['scored']:,} anonymous visitors in {s['relink']['seconds']:.1f} s: "
            f"{s['relink']['made']:,} made, {s['relink']['dropped']:,} dropped, {s['relink']['moved']:,} moved",
            "",
            "",
        ),
        (
            "Relink by Splink (--engine duckdb: snapshot, predict, decide) over plain Splink predict + cluster",
            f"{s['relink']['splink_duckdb']['seconds'] / s['scoring']['splink_relink']['seconds']:.2f}x "
            f"({s['relink']['splink_duckdb']['seconds']:.1f} s: snapshot "
            f"{s['relink']['splink_duckdb']['snapshot_seconds']:.1f}, predict "
            f"{s['relink']['splink_duckdb']['predict_seconds']:.1f}, decide "
            f"{s['relink']['splink_duckdb']['apply_seconds']:.1f}; "
            f"{s['relink']['splink_duckdb']['pairs']:,} pairs; after the online relink "
            f"{s['relink']['splink_duckdb']['answers_differing']:,} answers differ)",
            "≤ 1.3x",
            verdict(s["relink"]["splink_duckdb"]["seconds"] <= 1.3 * s["scoring"]["splink_relink"]["seconds"]),
        ),
        (
            "Relink time over plain Splink predict + cluster on the same profiles",
            f"{s['relink']['seconds'] / s['scoring']['splink_relink']['seconds']:.2f}x "
            f"({s['relink']['seconds']:.1f} s against {s['scoring']['splink_relink']['seconds']:.1f} s, "
            f"{s['scoring']['splink_relink']['pairs']:,.0f} pairs predicted)",
            "≤ 1.3x",
            verdict(s["relink"]["seconds"] <= 1.3 * s["scoring"]["splink_relink"]["seconds"]),
        ),
        (
            "Promote a candidate model live (swap + relink of every visitor)",
            f"{m['promote_seconds']:.1f} s ({m['promote_relinked']['made']:,} made, "
            f"{m['promote_relinked']['dropped']:,} dropped, {m['promote_relinked']['moved']:,} moved); "
            f"rollback {m['rollback_seconds']:.1f} s",
            "",
            "",
        ),
        (
            "Calls failed during promote and rollback (Resolve and Ingest in a loop)",
            f"{m['failed_calls']:,} of {m['calls']:,}",
            "0",
            verdict(m["failed_calls"] == 0),
        ),
        (
            "Every answer after promote + rollback equals the one before",
            f"{'yes' if m['answers_restored'] else 'no'} ({m['answers_differing']:,} person ids and "
            f"{m['household_answers_differing']:,} household answers differ)",
            "",
            verdict(m["answers_restored"]),
        ),
        ("Household level: deterministic only", prf(a["household_deterministic_only"]), "", ""),
        ("Household level: idstitch", prf(a["household_idstitch"]), "", ""),
        (
            "Household level: idstitch with household answers",
            f"{prf(a['household_answers'])} ({a['household_linked_identifiers']:,} identifiers with a household id)",
            "",
            "",
        ),
    ]


def soft_link_rows(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    log, end = s["soft_links"]["change_log"], s["soft_links"]["at_end"]
    made, dropped = log["kinds"].get("CHANGE_KIND_SOFT_LINKED", 0), log["kinds"].get("CHANGE_KIND_SOFT_UNLINKED", 0)
    checked = end["components"] - end["unknown"]
    share = end["correct"] / checked if checked else 0.0
    return [
        ("Soft links (change log: made - dropped)", f"{made:,} - {dropped:,} = {log['net']:,}", "", ""),
        (
            "Soft-linked at the end (Resolve)",
            f"{end['components']:,} components ({end['identifiers']:,} identifiers); "
            f"{end['correct']:,} of {checked:,} joined the right person ({share:.1%})",
            "",
            "",
        ),
    ]


def scoring_rows(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    sc = s["scoring"]
    ours, splink = sc["scorer_us_per_pair"], sc["splink"]
    return [
        ("Online scorer, 1 x 100 candidates", f"{ours[100]:.2f} µs/pair", "", ""),
        ("Online scorer, 1 x 1,000 candidates", f"{ours[1_000]:.2f} µs/pair", "", ""),
        (
            "Splink score_pairs, 1 x 100 dicts",
            f"{splink['us_per_pair']:,.0f} µs/pair ({splink['ms_per_call']:.1f} ms/call)",
            "",
            "",
        ),
        (
            "Speed-up per pair (same 1 x 100 pairs, each Splink call against the scorer round before it)",
            f"{sc['speedup_100']:,.0f}x",
            f"≥ {SPEEDUP_GOAL:,.0f}x",
            verdict(sc["speedup_100"] >= SPEEDUP_GOAL),
        ),
        ("Speed-up per pair (scorer at 1 x 1,000)", f"{sc['speedup_1000']:,.0f}x", "", ""),
        ("Match-weight parity on the timed pairs", f"largest difference {splink['max_weight_difference']:.1e}", "", ""),
    ]


def markdown(s: dict[str, Any]) -> str:
    rows = traffic_rows(s) + ingest_rows(s) + accuracy_rows(s) + soft_link_rows(s) + scoring_rows(s)
    lines = ["| Measure | Figure | Goal | Met |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in s["timings_seconds"].items())
    sc = s["scoring"]
    lines += [
        "",
        f"{machine_line(s['machine'])} Scorer: median of {s['config']['scorer_rounds']} rounds over "
        f"{s['config']['scorer_lefts']} left profiles of {sc['profiles']:,} device profiles; Splink: median of "
        f"{sc['splink']['calls']} calls after 2 warm-up calls; speed-up at 1 x 100: median of those calls' ratios "
        f"(range {min(sc['splink']['paired_speedups']):,.0f} to {max(sc['splink']['paired_speedups']):,.0f}x). "
        f"Timings: {timings}.",
    ]
    return "\n".join(lines)


def problems(s: dict[str, Any]) -> list[str]:
    """Anything a reader of the figures should know went wrong."""
    found = []
    if s["ingest"]["errors"]:
        found.append(f"Ingest errors: {dict(s['ingest']['errors'])}")
    if s["ingest"]["truncated"]:
        found.append(f"the replay stopped after {s['config']['max_replay_seconds']:.0f} s; only its prefix is scored")
    for name, r in s["resolve"].items():
        if r["errors"]:
            found.append(f"Resolve ({name}) errors: {dict(r['errors'])}")
        if r["not_found"]:
            found.append(f"Resolve ({name}): {r['not_found']:,} identifiers sent do not resolve")
    log = s["soft_links"]["change_log"]
    if log["error"]:
        found.append(f"WatchChanges ended with {log['error']}")
    if log["out_of_order"]:
        found.append(f"{log['out_of_order']:,} changes came from a batch older than one applied before them")
    if s["server"]["exit_code"] != 0:
        found.append(f"server exit code {s['server']['exit_code']} after SIGTERM")
    if busy := busy_phases(s["other_cores"]):
        found.append(busy)
    if reasons := log["unlink_reasons"]:
        found.append(
            "soft links dropped because: " + "; ".join(f"{r or '(no detail)'} {n:,}" for r, n in reasons.items())
        )
    found += [f"server log: {line}" for line in s["server"]["log"]]
    return found


# -- the run --------------------------------------------------------------------------------


def serve_and_measure(
    requests: Sequence[pb.IngestRequest], config: Config, tmp: Path
) -> tuple[ServerRun, dict[str, Any]]:
    extra = [] if config.model == BUNDLED_MODEL.resolve() else ["--model", str(config.model)]
    # What the server loads as it starts is what gets measured.
    model = VisitorModel.load(config.model)
    code = code_version()
    with running_server(tmp / "data", tmp / "server.log", extra) as server:
        run = asyncio.run(drive(server, requests, config))
        rss = server.rss()
    info = {
        "code": code,
        "model": {"path": str(config.model), "version": model.version, "threshold": model.threshold},
        "exit_code": server.exit_code,
        "stop_seconds": server.stop_seconds,
        "rss_end_mib": rss / 2**20,
        "log": log_problems(server.log_path)[:20],
    }
    return run, info


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    stop_on_sigterm()
    timings: dict[str, float] = {}
    began = time.perf_counter()
    progress(f"simulating {config.persons:,} persons over {config.days} days ...")
    simulation = SimulationConfig(
        persons=config.persons, days=config.days, seed=config.seed, sessions_per_day=config.sessions_per_day
    )
    signals = simulate(simulation)
    household_of = {p: h for h, members in enumerate(population(simulation).households) for p in members}
    timings["simulate"] = time.perf_counter() - began
    mark = time.perf_counter()
    requests = ingest_requests(signals, config.batch_size)
    timings["build requests"] = time.perf_counter() - mark
    with tempfile.TemporaryDirectory(prefix="idstitch-bench-visitor-") as tmp:
        mark = time.perf_counter()
        run, server = serve_and_measure(requests, config, Path(tmp))
        timings["server (start, replay, resolve, change log, stop)"] = time.perf_counter() - mark
        timings["of which replay"] = run.replay.seconds
        host = machine(Path(tmp))
    mark = time.perf_counter()
    replayed = [s for n, ok in enumerate(run.replay.acknowledged) if ok for s in signals_of_batch(signals, n, config)]
    truth = ground_truth(replayed)
    scores = accuracy(replayed, truth, run, [household_of[p] for p in range(len(household_of))])
    timings["accuracy"] = time.perf_counter() - mark
    progress("timing the online scorer ...")
    mark = time.perf_counter()
    cost = scoring_cost(signals, config)
    timings["scoring cost"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - began
    summary = summarise(config, (len(replayed), len(signals)), run, scores, cost, server, timings, host)
    print(markdown(summary))
    notes = problems(summary)
    print("\n" + ("\n".join(f"- {n}" for n in notes) if notes else "No errors, server stopped cleanly."))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"Figures written to {RESULTS_FILE.relative_to(REPO)}")
    return 0


def signals_of_batch(signals: Sequence[SimulatedSignal], batch: int, config: Config) -> Sequence[SimulatedSignal]:
    return signals[batch * config.batch_size : (batch + 1) * config.batch_size]


if __name__ == "__main__":
    sys.exit(main())

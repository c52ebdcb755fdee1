"""The stitching core: validate, apply under the rules, commit, then answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._config import LinkageConfig
from .._errors import FellBehind, InvalidArgument, LinkageError, NotFound, Unavailable
from .._types import (
    AuditEntry,
    Change,
    Decision,
    Erased,
    Explanation,
    HouseholdView,
    Identifier,
    LinkKind,
    LinkStep,
    PersonIdentifier,
    PersonView,
    Relinked,
    Resolution,
    Signal,
    SignalResult,
    quantize,
)
from ..customer._model import CustomerModel
from ..customer._records import (
    MAX_REPORTED_ERRORS,
    CustomerRecord,
    PreparedCustomerRecord,
    RecordError,
    SyncSummary,
    prepare_customer_records,
)
from ..identifiers._namespaces import IdentifierPolicy, split_key
from ..identifiers._signals import PreparedSignal, check_batch_count, prepare_batch
from ..softlinks import ModelChange
from ..store._protocol import Store
from ..store._rows import Erasure, ModelRow
from ..visitor._model import VisitorModel
from ..visitor._profile import PROFILES_FILE, write_profiles
from ._evidence_cache import EvidenceCache
from ._graph import IdentityGraph

log = logging.getLogger("idstitch.linkage")

_CHANGE_PAGE = 1000
# Committed changes kept in memory for followers of the feed, so that a live subscriber never
# queries the store and every subscriber reads the same objects (encoded once at the edge).
_RECENT_CHANGES = 20_000
# A large sync yields the event loop this often while it is applied, so reads go on meanwhile.
_RECORDS_PER_SLICE = 2000
# A batch relink scores this many components per commit: ingest waits at most about one chunk.
RELINK_CHUNK = 500


class _Abandoned(Exception):
    """A job given up before its commit; the graph is rolled back to the store."""


@dataclass(slots=True)
class _Job:
    """A batch of signals or a stream of customer records: applied, then committed with the
    other jobs of its group in one transaction."""

    received_at: float
    signals: list[PreparedSignal] = field(default_factory=list)
    records: list[PreparedCustomerRecord] | None = None
    rejected: list[RecordError] = field(default_factory=list)
    # An erasure: the person by id or alias, or by an identifier key.
    forget: tuple[int | None, str | None] | None = None
    lift: tuple[str, ...] | None = None  # identifier keys whose erasure is lifted
    audit: tuple[str, str, str] | None = None  # an audited read: (action, subject, detail)
    principal: str = ""  # who asked, for the audit log
    relink: list[int] | None = None  # components a batch relink scores again
    change: ModelChange | None = None  # the model change a relink is part of, if any
    # Of a relink with pairs scored elsewhere: component -> its candidates and their weights.
    scored: dict[int, tuple[list[int], NDArray[np.float64]]] | None = None
    fresh: bool = False  # a relink's first chunk: encode every profile again
    profiles: bool = False  # the visitor profiles, between two commits
    restore: ModelChange | None = None  # a rollback: put back the links of the change it undoes
    swapping: bool = False  # a model change: `model` goes in force (None: no visitor model)
    model: VisitorModel | None = None
    journal: bool = False  # of a swap: a promote, whose relink journals what it replaces
    abandoned: bool = False  # the caller went away before the answer: roll back if not committed
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Stitcher:
    """Stitches signals into persistent person ids and answers lookups, all on one event loop.

    Writes go through a single writer task that applies every queued batch to the in-memory
    graph and commits them to the store in one transaction (group commit): under load many
    requests share one commit, and no caller is answered before its batch is durable.
    Reads are served from the in-memory graph.
    """

    def __init__(
        self,
        config: LinkageConfig,
        store: Store,
        clock: Callable[[], float] = time.time,
        model: VisitorModel | None = None,
        customer_model: CustomerModel | None = None,
        max_feed_lag: int = 100_000,
        evidence_cache: Path | None = None,
    ) -> None:
        """`evidence_cache`: where the visitor evidence is saved at shutdown and read at start
        (`_evidence_cache`); None rebuilds it from the stored signals at every start."""
        if max_feed_lag < 1:
            raise ValueError("max_feed_lag must be positive")
        self._evidence_cache = EvidenceCache(evidence_cache) if evidence_cache is not None else None
        self.evidence_source = ""  # how the last start got the visitor evidence: cache or replay
        self._config = config
        self._max_feed_lag = max_feed_lag
        # Oldest first, gap-free; cut back to the last _RECENT_CHANGES once twice as long, so
        # that a follower's page is a slice (a deque's islice walks from its start).
        self._recent: list[Change] = []
        self._store = store
        self._model = model
        self._customer_model = customer_model
        self._clock = clock
        self._policy = IdentifierPolicy(config)
        self._graph = IdentityGraph(config, self._policy, model, customer_model)
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=1024)
        self._writer: asyncio.Task[None] | None = None
        self._last_committed = 0
        self._committed = asyncio.Event()
        self._closing = False
        self._watches_ended = False
        self._sync_turns = asyncio.Semaphore(config.max_concurrent_syncs)
        self._while_committing: list[Callable[[list[Change]], object]] = []

    async def start(self) -> None:
        """Rebuild the graph from the store and start the writer."""
        await self._reload()
        self._writer = asyncio.create_task(self._write_loop(), name="idstitch-writer")

    def end_watches(self) -> None:
        """End every `changes` stream at its next wait, so a shutdown need not wait for them."""
        self._watches_ended = True
        self._wake_watchers()

    async def close(self) -> None:
        """Finish every queued write, then close the store."""
        self.end_watches()
        self._closing = True
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
        if self._evidence_cache is not None and self._model is not None and self._writer is not None:
            try:
                await asyncio.to_thread(self._save_evidence, self._evidence_cache)
            except Exception:
                log.exception("could not save the visitor evidence cache; the next start replays the history")
        await asyncio.to_thread(self._store.close)

    @property
    def identifier_count(self) -> int:
        return self._graph.identifier_count

    @property
    def person_count(self) -> int:
        return self._graph.person_count

    # -- writes --------------------------------------------------------------------------

    async def ingest(self, signals: Sequence[Signal]) -> list[SignalResult]:
        """Stitch a batch; all-or-nothing validation, answered once durable."""
        if self._closing:
            raise Unavailable("shutting down")
        now = quantize(self._clock())
        job = _Job(now, signals=prepare_batch(signals, self._policy, self._config, now))
        await self._queue.put(job)
        results: list[SignalResult] = await asyncio.shield(job.done)
        return results

    async def sync_customer_records(self, records: Sequence[CustomerRecord]) -> SyncSummary:
        """Apply a stream of customer records in one transaction; malformed records are left
        out and reported. Answered once durable."""
        if self._closing:
            raise Unavailable("shutting down")
        now = quantize(self._clock())
        prepared, rejected = prepare_customer_records(records, self._policy, self._config, now)
        job = _Job(now, records=prepared, rejected=rejected)
        await self._queue.put(job)
        try:
            summary: SyncSummary = await asyncio.shield(job.done)
        except asyncio.CancelledError:
            job.abandoned = True
            raise
        return summary

    async def forget(
        self, person_id: int | None = None, identifier: Identifier | None = None, principal: str = "unknown"
    ) -> Erased:
        """Erase a person's own hard-linked component (by id or alias, or by one of its
        identifiers) and everything stored of it; answered once durable. `NotFound` if no such
        person (or it was erased already)."""
        if self._closing:
            raise Unavailable("shutting down")
        if (person_id is None) == (identifier is None):
            raise InvalidArgument("selector", "give person_id or identifier")
        key = None if identifier is None else self._key(identifier, "identifier")
        job = _Job(quantize(self._clock()), forget=(person_id, key), principal=principal)
        await self._queue.put(job)
        erasure: Erasure = await asyncio.shield(job.done)
        return Erased(erasure.person_id, len(erasure.keys), erasure.customer_records, len(erasure.events))

    async def lift_suppression(self, identifiers: Sequence[Identifier], principal: str = "unknown") -> int:
        """Let the identifiers of an erased person in again (it came back with fresh consent):
        later events carrying them are stitched as new. Audited; how many were suppressed."""
        if self._closing:
            raise Unavailable("shutting down")
        self.check_resolve_count(len(identifiers))
        keys = tuple(self._key(identifier, f"identifiers[{i}]") for i, identifier in enumerate(identifiers))
        job = _Job(quantize(self._clock()), lift=keys, principal=principal)
        await self._queue.put(job)
        lifted: int = await asyncio.shield(job.done)
        return lifted

    async def relink(
        self, principal: str = "unknown", progress: Callable[[Relinked, int], Awaitable[None]] | None = None
    ) -> Relinked:
        """Batch relink: score every anonymous component again against its candidates as they
        now stand (see `IdentityGraph.relink`), a chunk per commit so that ingest goes on in
        between; `progress(so far, total)` after each. Audited with the counts."""
        if self._closing:
            raise Unavailable("shutting down")
        components = self._graph.relinkable()
        # Audited before it begins too: a relink its caller cancels still leaves its trace.
        await self.record_read(principal, "relink", f"{len(components)} components", "started")
        total = await self._relink_in_chunks(components, principal, None, progress)
        await self.record_read(principal, "relink", f"{total.scored} components", _relinked_detail(total))
        return total

    async def _relink_in_chunks(
        self,
        components: list[int],
        principal: str,
        change: ModelChange | None,
        progress: Callable[[Relinked, int], Awaitable[None]] | None,
        scored: dict[int, tuple[list[int], NDArray[np.float64]]] | None = None,
    ) -> Relinked:
        """Relink `components` a chunk per commit (`IdentityGraph.relink`), with the pairs of
        `scored` where given."""
        total = Relinked(0, 0, 0, 0, 0)
        for start in range(0, len(components), RELINK_CHUNK):
            chunk = components[start : start + RELINK_CHUNK]
            chosen = None if scored is None else {c: scored[c] for c in chunk if c in scored}
            job = _Job(
                quantize(self._clock()), relink=chunk, change=change, scored=chosen, fresh=start == 0,
                principal=principal,
            )  # fmt: skip
            await self._queue.put(job)
            total = total + await asyncio.shield(job.done)
            if progress is not None:
                await progress(total, len(components))
        return total

    async def put_model(self, row: ModelRow) -> None:
        """Add or update a model of the registry (the store's `models`)."""
        await asyncio.to_thread(self._store.put_model, row)

    async def models(self) -> list[ModelRow]:
        """The model registry, oldest first."""
        return await asyncio.to_thread(self._store.models)

    async def record_read(self, principal: str, action: str, subject: str = "", detail: str = "") -> None:
        """Audit an operation (a bulk read such as a change-feed subscription, a model added),
        durable before it goes on."""
        if self._closing:
            raise Unavailable("shutting down")
        job = _Job(quantize(self._clock()), audit=(action, subject, detail), principal=principal)
        await self._queue.put(job)
        await asyncio.shield(job.done)

    async def write_snapshot(
        self, directory: Path, principal: str = "unknown", visitor_profiles: bool = False, history: bool = True
    ) -> dict[str, int]:
        """Write a consistent snapshot of the history training reads (Parquet) into
        `directory`, while writes go on; audited. Rows per file. With `visitor_profiles`, also
        `visitor-profiles.parquet`: the profile of every component with visitor evidence, as
        the writer holds them between two commits (`IdentityGraph.visitor_profiles`); without
        `history`, only those."""
        if self._closing:
            raise Unavailable("shutting down")
        if directory.exists():
            raise InvalidArgument("directory", "a snapshot there already exists")
        if history:
            counts = await asyncio.to_thread(self._store.write_snapshot, directory)
        else:
            directory.mkdir(mode=0o700)
            counts = {"identifiers": 0, "events": 0}
        if visitor_profiles:
            job = _Job(quantize(self._clock()), profiles=True, principal=principal)
            await self._queue.put(job)
            rows = await asyncio.shield(job.done)
            counts["visitor_profiles"] = await asyncio.to_thread(write_profiles, directory / PROFILES_FILE, rows)
        await self.record_read(principal, "snapshot", directory.name, f"{counts['events']} events")
        return counts

    async def relink_scored(
        self,
        left: NDArray[np.int64],
        right: NDArray[np.int64],
        match_weight: NDArray[np.float64],
        model_version: str,
        principal: str = "unknown",
    ) -> Relinked:
        """Batch relink with pairs scored elsewhere (Splink over a snapshot's visitor profiles)
        under the model in force: each anonymous component of a pair is decided from its pairs'
        weights by the rules of online (`IdentityGraph.relink` with `scored`), a chunk per
        commit. Audited with the counts."""
        if self._closing:
            raise Unavailable("shutting down")
        if not len(left) == len(right) == len(match_weight):
            raise InvalidArgument("left", "left, right and match_weight must be of one length")
        in_force = _version(self._model)
        if model_version != in_force:
            raise InvalidArgument("model_version", f"the pairs were scored by {model_version or 'no model'}, "
                                  f"{in_force} is in force: score a new snapshot")  # fmt: skip
        scored = _candidates_by_component(left, right, match_weight)
        # Every anonymous visitor, in the order online relink takes them (a decision depends on
        # the links made before it): one without a scored pair has its link checked.
        components = self._graph.relinkable()
        await self.record_read(principal, "relink", f"{len(components)} components", f"scored pairs: {len(left)}")
        total = await self._relink_in_chunks(components, principal, None, None, scored)
        await self.record_read(principal, "relink", f"{total.scored} components", _relinked_detail(total))
        return total

    async def audit_log(self, after_sequence: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """The audit log after a cursor, oldest first."""
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit", "must be between 1 and 10000")
        return await asyncio.to_thread(self._store.audit_after, after_sequence, limit)

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            jobs: list[_Job] = []
            swap: _Job | None = None
            if first is None:
                stopping = True
            elif first.swapping:
                swap = first
            else:
                jobs.append(first)
            # An erasure ends its group: the store applies it last in the transaction, so a job
            # after it (the same cookie seen again, now a new person) must not share its commit.
            # A model change ends it too: the jobs before it are applied with the old model.
            while swap is None and not self._queue.empty() and not (jobs and jobs[-1].forget is not None):
                job = self._queue.get_nowait()
                if job is None:
                    stopping = True
                elif job.swapping:
                    swap = job
                else:
                    jobs.append(job)
            if jobs:
                await self._apply_and_commit(jobs)
            if swap is not None:
                await self._swap_model(swap)

    async def _swap_model(self, job: _Job) -> None:
        """Put `job.model` in force: the graph is rebuilt from the store with it (its evidence
        indexes follow the model), reads go on against the old graph meanwhile, and writes wait.
        Links already made stay, each with the version that made it, until the relink after
        the swap (`change_visitor_model`). Audited in the same commit."""
        previous = self._model
        self._model = job.model
        try:
            await self._reload()
            assert job.audit is not None
            self._graph.audit(job.received_at, job.principal, *job.audit)
            if job.journal:
                self._graph.begin_model_change(ModelChange(_version(previous), _version(job.model)), job.received_at)
            await asyncio.to_thread(self._store.commit, self._graph.drain())
        except Exception:
            log.exception("the model change failed; the previous model stays in force")
            self._model = previous
            await self._reload()
            job.done.set_exception(Unavailable("the model change failed; the previous model stays in force"))
            return
        job.done.set_result(previous)

    async def change_visitor_model(
        self, model: VisitorModel | None, principal: str, action: str, subject: str, rollback: bool = False
    ) -> VisitorModel | None:
        """Put another visitor model in force without a restart and without dropping a call
        (see `_swap_model`); returns the model it replaced. Audited as `action`. Links stay as
        they are until `relink_after_model_change`."""
        if self._closing:
            raise Unavailable("shutting down")
        job = _Job(
            quantize(self._clock()), swapping=True, model=model, principal=principal,
            audit=(action, subject, ""), journal=not rollback,
        )  # fmt: skip
        await self._queue.put(job)
        replaced: VisitorModel | None = await asyncio.shield(job.done)
        return replaced

    async def relink_after_model_change(
        self, replaced: VisitorModel | None, principal: str, rollback: bool = False
    ) -> Relinked:
        """Relink every anonymous component with the model just put in force in place of
        `replaced`, a chunk per commit as `relink` does: each link that changes gets a change
        entry with both versions and is journalled as it was. A `rollback` first puts back the
        links the promote it undoes replaced, and relinks only what it could not put back and
        what the rolled-back model linked since: promote then rollback leaves the links as they
        were. Audited with its counts."""
        change = ModelChange(_version(replaced), _version(self._model))
        relinked = Relinked(0, 0, 0, 0, 0)
        try:
            again = None
            if rollback:
                restore = _Job(quantize(self._clock()), restore=change, principal=principal)
                await self._queue.put(restore)
                again = await asyncio.shield(restore.done)
            components = self._graph.relinkable() if again is None else again
            relinked = await self._relink_in_chunks(components, principal, change, None)
        except Unavailable:
            # The model is in force whatever happens here; `idstitch relink` does the rest.
            log.exception("the relink after model change %s stopped; the model stays in force", change.label)
        await self.record_read(principal, "relink", f"{relinked.scored} components",
                               f"{change.label}: {_relinked_detail(relinked)}")  # fmt: skip
        return relinked

    @property
    def visitor_model(self) -> VisitorModel | None:
        return self._model

    async def _apply_and_commit(self, jobs: list[_Job]) -> None:
        try:
            results: list[Any] = []
            for job in jobs:
                if job.forget is not None:
                    try:
                        erasure = self._graph.forget(job.received_at, *job.forget)
                    except LinkageError as refused:  # checked before anything changed
                        results.append(refused)
                    else:
                        self._graph.audit(job.received_at, job.principal, "forget", f"person {erasure.person_id}")
                        results.append(erasure)
                elif job.lift is not None:
                    lifted = self._graph.lift_suppression(job.lift)
                    self._graph.audit(
                        job.received_at, job.principal, "lift_suppression", f"{lifted} of {len(job.lift)} identifiers"
                    )
                    results.append(lifted)
                elif job.audit is not None:
                    self._graph.audit(job.received_at, job.principal, *job.audit)
                    results.append(None)
                elif job.relink is not None:
                    results.append(self._graph.relink(job.relink, job.received_at, job.change, job.scored, job.fresh))
                elif job.profiles:
                    results.append(self._graph.visitor_profiles())
                elif job.restore is not None:
                    results.append(self._graph.restore_links(job.restore, job.received_at))
                elif job.records is None:
                    results.append([self._graph.ingest(s, job.received_at) for s in job.signals])
                else:
                    results.append(await self._apply_records(job, job.records))
            batch = self._graph.drain()
            if batch:
                # Submitted first, so that the work of `while_committing` overlaps the commit's
                # I/O (the store gives up the GIL while it writes).
                commit = asyncio.get_running_loop().run_in_executor(None, self._store.commit, batch)
                try:
                    self._before_commit_ends(batch.changes)
                finally:
                    await commit
        except _Abandoned as stopped:
            log.info("%s: rolling back the group it was applied with", stopped)
            await self._reload()
            for job in jobs:
                if job.abandoned:
                    job.done.cancel()  # nobody waits for it
                elif not job.done.done():
                    job.done.set_exception(Unavailable(f"{stopped}; nothing of this call was written, send it again"))
            return
        except Exception:
            log.exception("commit failed; rebuilding the graph from the store")
            await self._reload()
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(Unavailable("the store could not commit; nothing was written"))
            return
        if batch.erasures:
            self._recent.clear()  # the store's copies lose the erased identifiers; these would not
        elif batch.changes:
            self._recent.extend(batch.changes)
            if len(self._recent) > 2 * _RECENT_CHANGES:
                del self._recent[:-_RECENT_CHANGES]
        if batch.changes:
            self._last_committed = batch.changes[-1].sequence
        for erasure in batch.erasures:
            self._graph.forget_events(erasure.events)
            log.info("person %d erased", erasure.person_id)
        for job, result in zip(jobs, results, strict=True):
            if job.done.done():
                continue
            if isinstance(result, LinkageError):
                job.done.set_exception(result)
            else:
                job.done.set_result(result)
        if batch.changes:
            # After the callers' results: their replies go out before the followers' pages.
            self._wake_watchers()

    def while_committing(self, prepare: Callable[[list[Change]], object]) -> None:
        """Call `prepare(changes)` with the changes of every ingest commit while the store
        writes them, before any follower can read them: work done there for the followers
        (encoding them once) overlaps the commit instead of following it. The changes are not
        durable yet; if the commit fails they are never handed out. `prepare` must be quick
        and must not raise (what it raises is logged and ignored)."""
        self._while_committing.append(prepare)

    def _before_commit_ends(self, changes: list[Change]) -> None:
        for prepare in self._while_committing:
            try:
                prepare(changes)
            except Exception:
                log.exception("preparing changes for the followers failed; they are encoded when read")

    async def _apply_records(self, job: _Job, records: list[PreparedCustomerRecord]) -> SyncSummary:
        outcomes = {"created": 0, "updated": 0, "unchanged": 0, "suppressed": 0}
        suppressed: list[RecordError] = []
        linked = 0
        for start in range(0, len(records), _RECORDS_PER_SLICE):
            # A long sync is given up between slices when its caller left (a shutdown cancels
            # calls still running after the grace period): all or nothing, and nothing is cheaper.
            if job.abandoned:
                raise _Abandoned("a customer-record stream was cancelled by its caller")
            for record in records[start : start + _RECORDS_PER_SLICE]:
                outcome, link = self._graph.sync_customer(record, job.received_at)
                outcomes[outcome] += 1
                linked += link is not None
                if outcome == "suppressed":
                    suppressed.append(RecordError(record.index, "source_key", "of an erased person: suppressed"))
            if start + _RECORDS_PER_SLICE < len(records):
                await asyncio.sleep(0)
        return SyncSummary(
            received=len(records) + len(job.rejected),
            created=outcomes["created"],
            updated=outcomes["updated"],
            unchanged=outcomes["unchanged"],
            rejected=len(job.rejected) + len(suppressed),
            linked_probabilistically=linked,
            errors=tuple(sorted([*job.rejected, *suppressed], key=lambda e: e.index)[:MAX_REPORTED_ERRORS]),
        )

    async def _reload(self) -> None:
        now = self._clock()
        state = await asyncio.to_thread(self._store.load, now - self._config.event_id_window_seconds)
        graph = IdentityGraph.from_state(self._config, self._policy, state, self._model, self._customer_model, now)
        if self._model is not None:
            self.evidence_source = await asyncio.to_thread(self._rebuild_evidence, graph)
        self._graph = graph
        self._last_committed = state.last_sequence
        log.info(
            "graph loaded: %d identifiers, %d persons, change log at %d",
            self._graph.identifier_count,
            self._graph.person_count,
            state.last_sequence,
        )

    def _rebuild_evidence(self, graph: IdentityGraph) -> str:
        """The visitor evidence from the cache saved for this very history, else replayed."""
        if self._evidence_cache is not None:
            index = self._evidence_cache.load(self._store.history_mark(), graph.visitor_index.settings)
            if index is not None and graph.adopt_visitor_index(index):
                log.info("visitor evidence read from %s", self._evidence_cache.path)
                return "cache"
        graph.replay_evidence(self._store.iter_events())
        return "replay"

    def _save_evidence(self, cache: EvidenceCache) -> None:
        cache.save(self._store.history_mark(), self._graph.visitor_index)

    # -- reads ---------------------------------------------------------------------------

    def check_batch_count(self, count: int) -> None:
        """Refuse an empty or oversized Ingest batch by its count alone: the edge calls this
        before converting anything, so a huge rejected request costs no memory."""
        check_batch_count(count, self._config)

    @contextlib.asynccontextmanager
    async def sync_turn(self) -> AsyncIterator[None]:
        """Hold one of the `max_concurrent_syncs` turns to receive, hold and apply a
        SyncCrmRecords stream; waits for one. A stream is held whole until applied, so this
        bounds what syncs can take of memory however many clients stream at once."""
        async with self._sync_turns:
            yield

    def check_sync_chunk(self, count: int, so_far: int) -> None:
        """Refuse a SyncCrmRecords message by its record count, or a stream that has grown
        past the per-stream cap, before converting its records."""
        per_message, per_sync = self._config.max_records_per_message, self._config.max_records_per_sync
        if count > per_message:
            raise InvalidArgument("records", f"{count} records in one message; at most {per_message}")
        if so_far + count > per_sync:
            raise InvalidArgument(
                "records", f"more than {per_sync} records in one stream; split the file or raise max_records_per_sync"
            )

    def check_resolve_count(self, count: int) -> None:
        """Refuse an empty or oversized Resolve by its count alone (see `check_batch_count`)."""
        if not count:
            raise InvalidArgument("identifiers", "must hold at least one identifier")
        limit = self._config.max_identifiers_per_resolve
        if count > limit:
            raise InvalidArgument("identifiers", f"{count} identifiers; at most {limit} per call")

    def resolve(
        self, identifiers: Sequence[Identifier], min_probability: float | None = None, deterministic_only: bool = False
    ) -> list[Resolution]:
        """The person of each identifier (None when unknown), in request order.

        By default every soft link counts; `min_probability` keeps only soft links at least
        that likely, and `deterministic_only` answers with the identifier's own component.
        """
        if min_probability is not None and not 0.0 <= min_probability <= 1.0:
            raise InvalidArgument("min_probability", "must be between 0 and 1")
        self.check_resolve_count(len(identifiers))
        keys = [self._key(identifier, f"identifiers[{i}]") for i, identifier in enumerate(identifiers)]
        resolutions = []
        for identifier, key in zip(identifiers, keys, strict=True):
            owner = self._graph.owner(key)
            if owner is None:
                resolutions.append(Resolution(identifier, None))
                continue
            component, shared = owner
            household = None if deterministic_only else self._graph.household_of(component, min_probability)
            household_id, household_probability = (None, 0.0) if household is None else household
            link = None if deterministic_only else self._graph.soft_link(component)
            if link is not None and (min_probability is None or link.probability >= min_probability):
                person = self._graph.person_at(component, min_probability)
                resolutions.append(
                    Resolution(
                        identifier,
                        person,
                        Decision.PROBABILISTIC,
                        shared,
                        link.probability,
                        household_id=household_id,
                        household_probability=household_probability,
                    )
                )
            elif deterministic_only:
                resolutions.append(Resolution(identifier, component, Decision.DETERMINISTIC, shared))
            else:
                person = self._graph.person_at(component, min_probability)
                resolutions.append(
                    Resolution(
                        identifier,
                        person,
                        Decision.DETERMINISTIC,
                        shared,
                        household_id=household_id,
                        household_probability=household_probability,
                    )
                )
        return resolutions

    def explain(self, a: Identifier, b: Identifier) -> Explanation:
        """Why two identifiers share a person: the components and soft links between them."""
        components = []
        for name, identifier in (("a", a), ("b", b)):
            owner = self._graph.owner(self._key(identifier, name))
            if owner is None:
                raise NotFound(f"{name}: no person holds this {identifier.namespace} identifier")
            components.append(owner[0])
        ca, cb = components
        if ca == cb:
            return Explanation(self._graph.person_at(ca), (LinkStep(LinkKind.HARD, ca, ca),))
        root = self._graph.root_of(ca)
        if root != self._graph.root_of(cb):
            return Explanation(None, ())
        steps = []
        for component, towards_root in ((ca, True), (cb, False)):
            link = self._graph.soft_link(component)
            if link is None:
                continue
            ends = (component, root) if towards_root else (root, component)
            steps.append(
                LinkStep(LinkKind.SOFT, *ends, link.probability, link.match_weight, link.model_version, link.weights)
            )
        return Explanation(self._graph.person_at(ca), tuple(steps))

    def person(self, person_id: int) -> PersonView:
        """A person by id or alias, with every component soft-linked into it; `NotFound` if none."""
        components = self._graph.group(person_id)
        states = [self._graph.person(c) for c in components]
        soft_links = []
        for component in components[1:]:
            link = self._graph.soft_link(component)
            if link is not None:
                soft_links.append((component, link.probability, link.model_version))
        person = self._graph.person_at(components[0])
        aliases = ({a for state, _ in states for a in state.aliases} | set(components)) - {person}
        return PersonView(
            person_id=person,
            aliases=tuple(sorted(aliases)),
            identifiers=tuple(
                PersonIdentifier(
                    namespace=(ns := split_key(key)[0]),
                    value=split_key(key)[1],
                    hashed=self._is_hashed(ns),
                    shared=ident.shared,
                    first_seen=ident.first_seen,
                    last_seen=ident.last_seen,
                )
                for _, identifiers in states
                for key, ident in identifiers
            ),
            channels=tuple(sorted({c for state, _ in states for c in state.channels})),
            first_seen=min(state.first_seen for state, _ in states),
            last_seen=max(state.last_seen for state, _ in states),
            soft_links=tuple(soft_links),
        )

    def household(self, household_id: int) -> HouseholdView:
        """A household by its id (or any of its persons' ids): its persons, and the visitors
        linked to it with their probability; `NotFound` if there is no such household."""
        found, roots, links = self._graph.household(household_id)
        return HouseholdView(
            household_id=found,
            persons=tuple(self.person(root) for root in roots),
            visitors=tuple((self.person(link.component), link.probability, link.model_version) for link in links),
        )

    def household_of(self, identifier: Identifier, field: str = "identifier") -> HouseholdView:
        """The household of the person (or visitor) holding an identifier."""
        owner = self._graph.owner(self._key(identifier, field))
        if owner is None:
            raise NotFound(f"no person holds this {identifier.namespace} identifier")
        household = self._graph.household_of(owner[0])
        if household is None:
            raise NotFound(f"this {identifier.namespace} identifier belongs to no household")
        return self.household(household[0])

    def person_of(self, identifier: Identifier, field: str = "identifier") -> PersonView:
        owner = self._graph.owner(self._key(identifier, field))
        if owner is None:
            raise NotFound(f"no person holds this {identifier.namespace} identifier")
        return self.person(owner[0])

    async def changes(self, after_sequence: int, follow: bool) -> AsyncIterator[Change]:
        """The change log after a cursor; with `follow`, then every change as it commits."""
        async for page in self.change_pages(after_sequence, follow):
            for change in page:
                yield change

    async def change_pages(
        self, after_sequence: int, follow: bool, page_size: int = _CHANGE_PAGE, linger: float = 0.0
    ) -> AsyncIterator[list[Change]]:
        """`changes` in pages: every change after the cursor that is there when asked, up to
        `page_size` at a time. A follower that keeps up gets a page per commit, or with `linger`
        (seconds) a page of the commits of that long after the first it waited for: fewer,
        larger messages for the same changes, so followers cost the server less per change."""
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        cursor = after_sequence
        live = False  # caught up once: from then on, falling far behind ends the watch
        while True:
            if live and self._last_committed - cursor > self._max_feed_lag:
                raise FellBehind(cursor, self._last_committed - cursor)
            page = self._recent_after(cursor, page_size)
            if page is None:
                page = await asyncio.to_thread(self._store.changes_after, cursor, page_size)
            if page:
                yield page
                cursor = page[-1].sequence
            if len(page) == page_size:
                continue
            if not follow or self._watches_ended:
                return
            live = True
            while self._last_committed <= cursor and not self._watches_ended:
                await self._committed.wait()
            if linger and not self._watches_ended:
                await asyncio.sleep(linger)

    def _recent_after(self, cursor: int, page_size: int = _CHANGE_PAGE) -> list[Change] | None:
        """Up to a page of the changes after `cursor` from memory; None if they are not all
        there (the store has them)."""
        recent = self._recent
        if not recent or recent[-1].sequence != self._last_committed:
            return None
        start = cursor + 1 - recent[0].sequence  # sequences are gap-free
        return None if start < 0 else recent[start : start + page_size]

    def _wake_watchers(self) -> None:
        self._committed.set()
        self._committed = asyncio.Event()

    # -- helpers -------------------------------------------------------------------------

    def _key(self, identifier: Identifier, field: str) -> str:
        prepared = self._policy.prepare(identifier, field)
        if prepared is None:
            raise InvalidArgument(f"{field}.value", "a blocked value; it never identifies anyone")
        return prepared.key

    def _is_hashed(self, namespace: str) -> bool:
        ns = self._policy.namespace(namespace)
        return ns is not None and ns.pii


def _version(model: VisitorModel | None) -> str:
    return model.version if model is not None else "none"


def _relinked_detail(relinked: Relinked) -> str:
    return f"{relinked.made} made, {relinked.dropped} dropped, {relinked.moved} moved, {relinked.kept} kept"


def _candidates_by_component(
    left: NDArray[np.int64], right: NDArray[np.int64], match_weight: NDArray[np.float64]
) -> dict[int, tuple[list[int], NDArray[np.float64]]]:
    """Each component's candidates and their weights, from pairs given in either order."""
    if not len(left):
        return {}
    ones = np.concatenate([left, right])
    others = np.concatenate([right, left])
    weights = np.concatenate([match_weight, match_weight])
    order = np.argsort(ones, kind="stable")
    ones, others, weights = ones[order], others[order], weights[order]
    starts = np.flatnonzero(np.r_[True, ones[1:] != ones[:-1]])
    ends = np.r_[starts[1:], len(ones)]
    return {int(ones[a]): (others[a:b].tolist(), weights[a:b].copy()) for a, b in zip(starts, ends, strict=True)}

"""The storage seam: one `Store` interface, a DuckDB file by default, a memory fake for unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from .._types import AuditEntry, Change
from ..identifiers._namespaces import join_key
from ._rows import (
    CommitBatch,
    CustomerRecordRow,
    Erasure,
    EventRow,
    HouseholdLinkRow,
    IdentifierRow,
    ModelRow,
    PersonRow,
    ReplacedLinkRow,
    SoftLinkRow,
    StoredState,
    SuppressionRow,
)


class Store(Protocol):
    """Durable truth behind the in-memory graph. One writer process owns a store.

    `commit` is atomic and durable when it returns. `changes_after` may be called from
    another thread while a commit runs, and sees only committed changes.
    """

    def load(self, events_since: float = 0.0) -> StoredState:
        """Everything to rebuild the graph; of the events, those received at `events_since` or
        later (epoch seconds: the idempotency window)."""
        ...

    def commit(self, batch: CommitBatch) -> None: ...

    def changes_after(self, sequence: int, limit: int) -> list[Change]: ...

    def audit_after(self, sequence: int, limit: int) -> list[AuditEntry]: ...

    def write_snapshot(self, directory: Path) -> dict[str, int]:
        """The history training reads, as Parquet files in `directory` (made here), consistent
        while commits go on; rows per file (identifiers, events)."""
        ...

    def history_mark(self) -> tuple[int, int, int]:
        """What tells one history from another: the last change sequence, the number of stored
        events and the latest arrival (whole microseconds)."""
        ...

    def put_model(self, row: ModelRow) -> None:
        """Add or update one model of the registry (beside commits, in a transaction of its own)."""
        ...

    def models(self) -> list[ModelRow]:
        """The model registry, oldest first."""
        ...

    def iter_events(self, page: int = 50_000) -> Iterator[EventRow]:
        """Every stored signal with its evidence, in time order (for profiles and training)."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """A `Store` in a few dicts: for unit tests of the core, never for the service."""

    def __init__(self) -> None:
        self._identifiers: dict[str, IdentifierRow] = {}
        self._persons: dict[int, PersonRow] = {}
        self._event_rows: list[EventRow] = []
        self._changes: list[Change] = []
        self._soft_links: dict[int, SoftLinkRow] = {}
        self._household_links: dict[int, HouseholdLinkRow] = {}
        self._suppressed: dict[str, SuppressionRow] = {}
        self._audit: list[AuditEntry] = []
        self._customer_records: dict[str, CustomerRecordRow] = {}
        self._models: dict[str, ModelRow] = {}
        self._replaced_links: dict[int, ReplacedLinkRow] = {}
        self._model_change: tuple[str, float] = ("", 0.0)
        self.commits = 0

    def load(self, events_since: float = 0.0) -> StoredState:
        last = self._changes[-1].sequence if self._changes else 0
        return StoredState(
            list(self._identifiers.values()),
            list(self._persons.values()),
            [
                (e.digest, e.event_id, e.person_id, e.received_at)
                for e in self._event_rows
                if e.received_at >= events_since
            ],
            last,
            list(self._soft_links.values()),
            list(self._customer_records.values()),
            list(self._household_links.values()),
            set(self._suppressed),
            self._audit[-1].sequence if self._audit else 0,
            sorted(self._replaced_links.values(), key=lambda r: r.component),
            *self._model_change,
        )

    def commit(self, batch: CommitBatch) -> None:
        for row in batch.identifiers:
            self._identifiers[row.key] = row
        for key in batch.removed_identifiers:
            self._identifiers.pop(key, None)
        for person in batch.persons:
            self._persons[person.person_id] = person
        for event in batch.events:
            self._event_rows.append(event)
        self._changes.extend(batch.changes)
        for component in batch.removed_soft_links:
            self._soft_links.pop(component, None)
        for link in batch.soft_links:
            self._soft_links[link.component] = link
        for component in batch.removed_household_links:
            self._household_links.pop(component, None)
        for household in batch.household_links:
            self._household_links[household.component] = household
        for record in batch.customer_records:
            self._customer_records[record.key] = record
        for suppression in batch.suppressions:
            self._suppressed[suppression.digest] = suppression
        for digest in batch.lifted_suppressions:
            self._suppressed.pop(digest, None)
        self._audit.extend(batch.audit)
        if batch.model_change is not None:
            self._replaced_links.clear()
            self._model_change = batch.model_change
        for replaced in batch.replaced_links:
            self._replaced_links.setdefault(replaced.component, replaced)
        for erasure in batch.erasures:
            self._erase(erasure)
        self.commits += 1

    def _erase(self, erasure: Erasure) -> None:
        ids, keys = set(erasure.person_ids), set(erasure.keys)
        gone = [e for e in self._event_rows if e.person_id in ids or keys.intersection(e.identifier_keys)]
        erasure.events = tuple(e.event_id for e in gone)
        self._event_rows = [e for e in self._event_rows if e not in gone]
        for key in keys:
            self._identifiers.pop(key, None)
            self._customer_records.pop(key, None)
        for component, link in list(self._soft_links.items()):
            if component in ids or link.target in ids:
                del self._soft_links[component]
        for component, household in list(self._household_links.items()):
            if component in ids or ids.intersection(household.persons):
                del self._household_links[component]
        for component, replaced in list(self._replaced_links.items()):
            if replaced.names_any(ids):
                del self._replaced_links[component]
        self._changes = [
            replace(c, namespace="", value="")
            if c.person_id in ids or (c.namespace and join_key(c.namespace, c.value) in keys)
            else c
            for c in self._changes
        ]
        events = set(erasure.events)
        self._changes = [replace(c, event_id="") if c.event_id in events else c for c in self._changes]

    def changes_after(self, sequence: int, limit: int) -> list[Change]:
        return [c for c in self._changes if c.sequence > sequence][:limit]

    def history_mark(self) -> tuple[int, int, int]:
        last = self._changes[-1].sequence if self._changes else 0
        latest = max((round(e.received_at * 1e6) for e in self._event_rows), default=0)
        return last, len(self._event_rows), latest

    def put_model(self, row: ModelRow) -> None:
        self._models[row.version] = row

    def models(self) -> list[ModelRow]:
        return sorted(self._models.values(), key=lambda row: (row.added_at, row.version))

    def audit_after(self, sequence: int, limit: int) -> list[AuditEntry]:
        return [a for a in self._audit if a.sequence > sequence][:limit]

    def write_snapshot(self, directory: Path) -> dict[str, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory.mkdir(mode=0o700)
        rows = list(self._identifiers.values())
        pq.write_table(
            pa.table({"key": [r.key for r in rows], "namespace": [r.namespace for r in rows],
                      "person_id": [r.person_id for r in rows]}),
            directory / "identifiers.parquet",
        )  # fmt: skip
        events = self._event_rows
        columns = {
            "event_id": [e.event_id for e in events],
            "ts": [round(e.timestamp * 1e6) for e in events],
            "received_at": [round(e.received_at * 1e6) for e in events],
            "channel": [e.channel for e in events],
            "person_id": [e.person_id for e in events],
            "identifier_keys": [list(e.identifier_keys) for e in events],
            "ip": [e.ip for e in events],
            "country": [e.country for e in events],
            "city": [e.city for e in events],
            "latitude": [e.latitude for e in events],
            "longitude": [e.longitude for e in events],
            "user_agent": [e.user_agent for e in events],
        }
        pq.write_table(pa.table(columns), directory / "events.parquet")
        return {"identifiers": len(rows), "events": len(events)}

    def iter_events(self, page: int = 50_000) -> Iterator[EventRow]:
        return iter(sorted(self._event_rows, key=lambda e: e.timestamp))

    def close(self) -> None:
        pass

"""Row types exchanged between the identity graph and a `Store`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._types import Change


@dataclass(frozen=True, slots=True)
class IdentifierRow:
    key: str
    namespace: str
    value: str
    person_id: int
    first_seen: float
    last_seen: float
    shared: bool


@dataclass(frozen=True, slots=True)
class PersonRow:
    person_id: int
    first_seen: float
    last_seen: float
    merged_into: int | None
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventRow:
    """One accepted signal: its idempotency key, the person it resolved to and its evidence."""

    event_id: str
    timestamp: float
    received_at: float
    channel: str
    person_id: int
    identifier_keys: tuple[str, ...]
    ip: str
    country: str
    city: str
    latitude: float | None
    longitude: float | None
    user_agent: str


@dataclass(slots=True)
class CommitBatch:
    """Everything that changed since the last commit, as final rows: one transaction."""

    identifiers: list[IdentifierRow] = field(default_factory=list)
    removed_identifiers: list[str] = field(default_factory=list)
    persons: list[PersonRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.identifiers or self.removed_identifiers or self.persons or self.events or self.changes)


@dataclass(slots=True)
class StoredState:
    """What a store holds, enough to rebuild the in-memory graph."""

    identifiers: list[IdentifierRow]
    persons: list[PersonRow]
    events: dict[str, int]  # event_id -> person id it resolved to
    last_sequence: int

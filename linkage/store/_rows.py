"""Row types exchanged between the identity graph and a `Store`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._types import AuditEntry, Change


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
    erased: bool = False  # kept (empty) so the id is never reused


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
    # The keyed digest the idempotency window knows the event id by (read back at start, so
    # that a restart hashes nothing); "" where not known.
    digest: str = ""


@dataclass(frozen=True, slots=True)
class SoftLinkRow:
    """A component soft-linked to a root component, with the waterfall it was linked on."""

    component: int
    target: int
    probability: float
    match_weight: float
    model_version: str
    weight_names: tuple[str, ...]
    weights: tuple[float, ...]
    linked_at: float


@dataclass(frozen=True, slots=True)
class HouseholdLinkRow:
    """A component linked to a household: the persons it is one of, none alone likely enough."""

    component: int
    persons: tuple[int, ...]
    probability: float
    model_version: str
    linked_at: float


@dataclass(frozen=True, slots=True)
class CustomerRecordRow:
    """The latest record of one source key: its matching attributes (personal data, kept only
    for matching) and the fingerprint that tells a re-sent record from a changed one."""

    key: str
    given_name: str | None
    family_name: str | None
    date_of_birth: str | None
    address: str | None
    postcode: str | None
    city: str | None
    document_id: str | None  # keyed hash
    fingerprint: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    """A keyed hash of an erased identifier key or event id: checked on ingest, so redelivered
    or new events of an erased person store nothing."""

    digest: str
    kind: str  # "identifier" or "event"
    person_id: int
    erased_at: float


@dataclass(frozen=True, slots=True)
class ReplacedLinkRow:
    """A component's links as they were before the last model change (promote or rollback)
    changed them, `model_change` being "replaced -> in force": what a rollback puts back."""

    component: int
    model_change: str
    soft_link: SoftLinkRow | None
    household_link: HouseholdLinkRow | None

    def names_any(self, components: set[int]) -> bool:
        """Whether the row is of one of these components or names one (erased persons')."""
        soft, household = self.soft_link, self.household_link
        return (
            self.component in components
            or (soft is not None and soft.target in components)
            or (household is not None and not components.isdisjoint(household.persons))
        )


@dataclass(slots=True)
class Erasure:
    """One person erased (`Forget`): its ids (the person and its aliases) and the identifier
    keys it held. The store deletes every event that resolved to one of the ids or carries one
    of the keys, and fills in `events` with their ids."""

    person_id: int
    person_ids: tuple[int, ...]
    keys: tuple[str, ...]
    customer_records: int
    events: tuple[str, ...] = ()


@dataclass(slots=True)
class CommitBatch:
    """Everything that changed since the last commit, as final rows: one transaction."""

    identifiers: list[IdentifierRow] = field(default_factory=list)
    removed_identifiers: list[str] = field(default_factory=list)
    persons: list[PersonRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    soft_links: list[SoftLinkRow] = field(default_factory=list)
    removed_soft_links: list[int] = field(default_factory=list)
    household_links: list[HouseholdLinkRow] = field(default_factory=list)
    removed_household_links: list[int] = field(default_factory=list)
    customer_records: list[CustomerRecordRow] = field(default_factory=list)
    suppressions: list[SuppressionRow] = field(default_factory=list)
    lifted_suppressions: list[str] = field(default_factory=list)  # digests
    audit: list[AuditEntry] = field(default_factory=list)
    # The last model change's replaced links: `model_change` (its label and time) when one began,
    # which empties them first; then `replaced_links` are added.
    model_change: tuple[str, float] | None = None
    replaced_links: list[ReplacedLinkRow] = field(default_factory=list)
    # Applied last in the transaction, so they reach rows written by this very batch too.
    erasures: list[Erasure] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (
                self.identifiers,
                self.removed_identifiers,
                self.persons,
                self.events,
                self.changes,
                self.soft_links,
                self.removed_soft_links,
                self.household_links,
                self.removed_household_links,
                self.customer_records,
                self.suppressions,
                self.lifted_suppressions,
                self.audit,
                self.model_change,
                self.replaced_links,
                self.erasures,
            )
        )


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model of the registry: a version, where it stands, who added it and when, and its
    metrics file (JSON text, "" when it came without one)."""

    version: str
    state: str  # ModelState value
    added_at: float
    added_by: str
    changed_at: float
    metrics: str = ""


@dataclass(slots=True)
class StoredState:
    """What a store holds, enough to rebuild the in-memory graph."""

    identifiers: list[IdentifierRow]
    persons: list[PersonRow]
    # The loaded window: (digest or "", event_id, person id it resolved to, received_at).
    events: list[tuple[str, str, int, float]]
    last_sequence: int
    soft_links: list[SoftLinkRow] = field(default_factory=list)
    customer_records: list[CustomerRecordRow] = field(default_factory=list)
    household_links: list[HouseholdLinkRow] = field(default_factory=list)
    suppressed: set[str] = field(default_factory=set)  # digests
    last_audit_sequence: int = 0
    replaced_links: list[ReplacedLinkRow] = field(default_factory=list)
    model_change: str = ""  # the label of the change `replaced_links` are of, "" for none
    model_change_at: float = 0.0

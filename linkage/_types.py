"""Domain types: what the core takes and answers, free of gRPC and storage."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


def quantize(seconds: float) -> float:
    """Round a time to whole microseconds, the resolution every store keeps."""
    return round(seconds * 1_000_000) / 1_000_000


@dataclass(frozen=True, slots=True)
class Identifier:
    namespace: str
    value: str


@dataclass(frozen=True, slots=True)
class Geo:
    country: str = ""
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """Evidence about a signal; never used as an identifier."""

    ip: str = ""
    geo: Geo = field(default_factory=Geo)
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation as a caller sent it. `timestamp` is epoch seconds, None for "now"."""

    event_id: str
    identifiers: tuple[Identifier, ...]
    timestamp: float | None = None
    channel: str = ""
    context: Context = field(default_factory=Context)


class Decision(enum.Enum):
    NEW = "new"
    DETERMINISTIC = "deterministic"
    PROBABILISTIC = "probabilistic"


class IgnoredReason(enum.Enum):
    BLOCKED_VALUE = "blocked_value"


@dataclass(frozen=True, slots=True)
class IgnoredIdentifier:
    index: int
    namespace: str
    reason: IgnoredReason


@dataclass(frozen=True, slots=True)
class Conflict:
    """A hard link the rules refused. `identifier` is as stored (hashed for personal data)."""

    identifier: Identifier
    person_id: int
    other_person_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class SignalResult:
    event_id: str
    person_id: int
    decision: Decision
    person_created: bool = False
    duplicate: bool = False
    probability: float = 0.0
    ignored: tuple[IgnoredIdentifier, ...] = ()
    merged_person_ids: tuple[int, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    # The event or one of its identifiers is of an erased person: nothing of it was stored.
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class Resolution:
    identifier: Identifier
    person_id: int | None
    decision: Decision | None = None
    shared: bool = False
    probability: float = 0.0  # of the soft link, for DECISION.PROBABILISTIC
    # The household the identifier belongs to, if any, and how likely it is one of its persons'.
    household_id: int | None = None
    household_probability: float = 0.0


@dataclass(frozen=True, slots=True)
class PersonIdentifier:
    namespace: str
    value: str
    hashed: bool
    shared: bool
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Erased:
    """What `Forget` erased: the person's id and how many of each kind of row went."""

    person_id: int
    identifiers: int
    customer_records: int
    events: int


@dataclass(frozen=True, slots=True)
class Relinked:
    """What a batch relink changed: anonymous components scored again with everything seen so
    far, and the soft links that came of it."""

    scored: int
    made: int  # linked now, not before
    dropped: int  # linked before, not now
    moved: int  # linked to another person
    kept: int  # linked before and now, to the same person

    def __add__(self, other: Relinked) -> Relinked:
        return Relinked(*(a + b for a, b in zip(self.counts(), other.counts(), strict=True)))

    def counts(self) -> tuple[int, int, int, int, int]:
        return self.scored, self.made, self.dropped, self.moved, self.kept


@dataclass(frozen=True, slots=True)
class PersonView:
    person_id: int
    aliases: tuple[int, ...]
    identifiers: tuple[PersonIdentifier, ...]
    channels: tuple[str, ...]
    first_seen: float
    last_seen: float
    # Components soft-linked into the person: (component id, probability, model version).
    soft_links: tuple[tuple[int, float, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HouseholdView:
    """A household: persons the visitor model could not tell apart on some visitor, and the
    visitors linked to the household, each (its own person, probability, model version)."""

    household_id: int
    persons: tuple[PersonView, ...]
    visitors: tuple[tuple[PersonView, float, str], ...]


class ChangeKind(enum.Enum):
    PERSON_CREATED = "person_created"
    IDENTIFIER_ADDED = "identifier_added"
    PERSONS_MERGED = "persons_merged"
    IDENTIFIER_MOVED = "identifier_moved"
    IDENTIFIER_EVICTED = "identifier_evicted"
    CONFLICT = "conflict"
    SOFT_LINKED = "soft_linked"
    SOFT_UNLINKED = "soft_unlinked"
    PERSON_ERASED = "person_erased"
    HOUSEHOLD_LINKED = "household_linked"
    HOUSEHOLD_UNLINKED = "household_unlinked"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log. Identifier fields are as stored (hashed for personal data)."""

    sequence: int
    time: float
    kind: ChangeKind
    person_id: int
    other_person_id: int | None = None
    namespace: str = ""
    value: str = ""
    event_id: str = ""
    detail: str = ""
    probability: float = 0.0  # of a soft link (or household link) made
    household_id: int | None = None  # of a household link made or dropped
    household_persons: tuple[int, ...] = ()  # the household's persons after the change
    # Of a soft or household link made: the model that made it. Of any change a model change
    # (promote, rollback) made: the model it put in force, and the one it replaced.
    model_version: str = ""
    previous_model_version: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what and when, for the operations that erase, lift an erasure, compact or read
    in bulk. `subject` is an id (a person id, a count), never a personal value."""

    sequence: int
    time: float
    principal: str  # a token's name, a certificate's subject, or local:<user> for the CLI
    action: str
    subject: str = ""
    detail: str = ""


class LinkKind(enum.Enum):
    HARD = "hard"
    SOFT = "soft"


@dataclass(frozen=True, slots=True)
class LinkStep:
    """One link on the path between two identifiers.

    A hard step is a component: identifiers seen together in signals. A soft step joins two
    components; `weights` is its waterfall at link time — ("prior", w) and then each
    comparison's match weight — and sums to `match_weight`.
    """

    kind: LinkKind
    from_component: int
    to_component: int
    probability: float = 1.0
    match_weight: float = 0.0
    model_version: str = ""
    weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    person_id: int | None  # None when the two identifiers are not one person
    steps: tuple[LinkStep, ...]

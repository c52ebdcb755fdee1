"""The in-memory identity graph and the deterministic stitching rules.

The graph is rebuilt from a `Store` at start-up and advanced one prepared signal at a time;
every mutation also marks what the next commit must write, so the store stays the truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .._config import LinkageConfig
from .._errors import NotFound
from .._types import (
    AuditEntry,
    Change,
    ChangeKind,
    Conflict,
    Context,
    Decision,
    Geo,
    Identifier,
    Relinked,
    SignalResult,
)
from ..customer._catalogue import CustomerAttributes
from ..customer._links import CustomerLinks
from ..customer._model import CustomerModel
from ..customer._records import CUSTOMER_RECORD_CHANNEL, PreparedCustomerRecord
from ..identifiers import clash
from ..identifiers._namespaces import IdentifierPolicy, PreparedIdentifier, split_key
from ..identifiers._signals import PreparedSignal
from ..softlinks import HouseholdLink, LinkJournal, ModelChange, SoftLink, link_states, restore_links
from ..store._rows import (
    CommitBatch,
    CustomerRecordRow,
    Erasure,
    EventRow,
    IdentifierRow,
    PersonRow,
    StoredState,
    SuppressionRow,
)
from ..visitor._index import VisitorIndex
from ..visitor._linker import FloatArray, SoftLinks
from ..visitor._model import VisitorModel
from ._event_index import EventIndex

_NO_WEIGHTS: FloatArray = np.zeros(0)


@dataclass(slots=True)
class _IdentifierState:
    person_id: int
    first_seen: float
    last_seen: float
    shared: bool = False


_EMPTY_UNIQUES: Mapping[str, str] = MappingProxyType({})
# Persons share one tuple per distinct set of channels: there are only a handful of channels.
_CHANNEL_SETS: dict[frozenset[str], tuple[str, ...]] = {}


def _channel_set(channels: Iterable[str]) -> tuple[str, ...]:
    key = frozenset(channels)
    found = _CHANNEL_SETS.get(key)
    if found is None:
        found = _CHANNEL_SETS[key] = tuple(sorted(key))
    return found


class _PersonState:
    """One live person, kept small: most persons have a few keys, no unique ones and no aliases."""

    __slots__ = ("aliases", "channels", "first_seen", "keys", "last_seen", "uniques")

    def __init__(self, first_seen: float, last_seen: float, channels: Iterable[str] = ()) -> None:
        self.first_seen = first_seen
        self.last_seen = last_seen
        self.keys: list[str] = []
        self.uniques: dict[str, str] | None = None  # unique namespace -> key
        self.channels = _channel_set(channels)
        self.aliases: tuple[int, ...] = ()

    def unique_values(self) -> Mapping[str, str]:
        return self.uniques if self.uniques is not None else _EMPTY_UNIQUES

    def add_key(self, key: str, unique_namespace: str | None) -> None:
        self.keys.append(key)
        if unique_namespace is not None:
            if self.uniques is None:
                self.uniques = {}
            self.uniques[unique_namespace] = key

    def remove_key(self, key: str) -> None:
        # Only non-unique identifiers ever leave a person, so `uniques` stays as it is.
        self.keys.remove(key)

    def add_channel(self, channel: str) -> None:
        if channel not in self.channels:
            self.channels = _channel_set((*self.channels, channel))

    def absorb(self, other: _PersonState, other_id: int) -> None:
        self.keys.extend(other.keys)
        if other.uniques:
            self.uniques = {**(self.uniques or {}), **other.uniques}
        self.channels = _channel_set((*self.channels, *other.channels))
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.aliases = (*self.aliases, other_id, *other.aliases)


@dataclass(slots=True)
class _Refusal:
    key: str
    other_person_id: int
    reason: str


class IdentityGraph:
    """Identifiers, persons and aliases, with the rules that join them."""

    def __init__(
        self,
        config: LinkageConfig,
        policy: IdentifierPolicy,
        model: VisitorModel | None = None,
        customer_model: CustomerModel | None = None,
    ) -> None:
        self._config = config
        self._soft = SoftLinks(model)
        self._journal = LinkJournal()  # the links the last model change replaced
        self._customers = CustomerLinks(customer_model)
        self._pending_customer_records: list[CustomerRecordRow] = []
        self._policy = policy
        self._identifiers: dict[str, _IdentifierState] = {}
        self._persons: dict[int, _PersonState] = {}
        self._merged_into: dict[int, int] = {}  # alias -> surviving person, always one hop
        self._erased: set[int] = set()  # erased persons and their aliases: never reused, never found
        self._suppressed: set[str] = set()  # erasure digests of erased identifier keys and event ids
        self._pending_suppressions: list[SuppressionRow] = []
        self._lifted: list[str] = []
        self._pending_audit: list[AuditEntry] = []
        self._next_audit = 1
        self._pending_erasures: list[Erasure] = []
        self._events = EventIndex(config.event_id_window_seconds, lambda e: policy.erasure_digest("event", e))
        self._next_person_id = 1
        self._next_sequence = 1
        self._caps: dict[str, int | None] = {}
        self._dirty_identifiers: set[str] = set()
        self._dirty_persons: set[int] = set()
        self._pending_events: list[EventRow] = []
        self._pending_changes: list[Change] = []
        self._now = 0.0  # when the signal being applied arrived; the time of its changes

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_state(
        cls,
        config: LinkageConfig,
        policy: IdentifierPolicy,
        state: StoredState,
        model: VisitorModel | None = None,
        customer_model: CustomerModel | None = None,
        now: float | None = None,
    ) -> IdentityGraph:
        graph = cls(config, policy, model, customer_model)
        for p in state.persons:
            graph._next_person_id = max(graph._next_person_id, p.person_id + 1)
            if p.erased:
                graph._erased.add(p.person_id)
            elif p.merged_into is not None:
                graph._merged_into[p.person_id] = p.merged_into
            else:
                graph._persons[p.person_id] = _PersonState(p.first_seen, p.last_seen, channels=set(p.channels))
        for alias in list(graph._merged_into):
            survivor = graph._follow(alias)
            graph._merged_into[alias] = survivor
            graph._persons[survivor].aliases += (alias,)
        for row in state.identifiers:
            graph._identifiers[row.key] = _IdentifierState(row.person_id, row.first_seen, row.last_seen, row.shared)
            person = graph._persons[row.person_id]
            person.add_key(row.key, row.namespace if graph._is_unique(row.namespace) else None)
        graph._events.load(state.events, now=time.time() if now is None else now)
        graph._suppressed = set(state.suppressed)
        graph._next_audit = state.last_audit_sequence + 1
        graph._next_sequence = state.last_sequence + 1
        graph._soft.load(state.soft_links)
        graph._soft.households.load(state.household_links)
        graph._journal.load(state.model_change, state.model_change_at, state.replaced_links)
        for record in state.customer_records:
            attributes = CustomerAttributes(
                given_name=record.given_name,
                family_name=record.family_name,
                date_of_birth=record.date_of_birth,
                address=record.address,
                postcode=record.postcode,
                city=record.city,
                document_id=record.document_id,
            )
            graph._customers.index.put(record.key, attributes, record.fingerprint)
        return graph

    @property
    def visitor_index(self) -> VisitorIndex:
        return self._soft.index

    def adopt_visitor_index(self, index: VisitorIndex) -> bool:
        """Take visitor evidence saved from this very history instead of replaying it."""
        return self._soft.adopt_index(index)

    def replay_evidence(self, events: Iterable[EventRow]) -> int:
        """Rebuild the visitor evidence of every component from the stored signals, each on
        the component it was stitched to (or the one that absorbed it since), as it was live.
        Not on its identifiers' owner now: an identifier claimed by another login moved, and
        the visits before the move stayed with the component that had them."""
        count = 0
        for event in events:
            if event.channel.startswith(CUSTOMER_RECORD_CHANNEL):
                continue
            component = self._follow(event.person_id)
            if component not in self._persons:
                continue
            geo = Geo(event.country, event.city, event.latitude, event.longitude)
            context = Context(event.ip, geo, event.user_agent)
            self._soft.index.observe(component, event.timestamp, context)
            count += 1
        return count

    def _follow(self, person_id: int) -> int:
        seen = 0
        while person_id in self._merged_into:
            person_id = self._merged_into[person_id]
            seen += 1
            if seen > len(self._merged_into):
                raise RuntimeError("alias cycle in stored persons")
        return person_id

    # -- reads ---------------------------------------------------------------------------

    @property
    def identifier_count(self) -> int:
        return len(self._identifiers)

    @property
    def person_count(self) -> int:
        return len(self._persons)

    def owner(self, key: str) -> tuple[int, bool] | None:
        """The person holding an identifier key and whether the identifier is shared."""
        state = self._identifiers.get(key)
        return None if state is None else (state.person_id, state.shared)

    def survivor(self, person_id: int) -> int:
        """The live person an id or alias resolves to; `NotFound` if it never existed."""
        person_id = self._merged_into.get(person_id, person_id)
        if person_id not in self._persons:
            raise NotFound(f"no person {person_id}")
        return person_id

    def person_at(self, component: int, min_probability: float | None = None) -> int:
        """The person a component belongs to at a confidence (None: every soft link counts)."""
        return self._soft.person_of(component, min_probability)

    def soft_link(self, component: int) -> SoftLink | None:
        return self._soft.link_of(component)

    def root_of(self, component: int) -> int:
        return self._soft.root_of(component)

    def household_of(self, component: int, min_probability: float | None = None) -> tuple[int, float] | None:
        """The household of a component and how likely the component is one of its persons':
        its own household link, or else its person's household (as likely as its soft link)."""
        households = self._soft.households
        held = households.link_of(component)
        if held is not None:
            if min_probability is not None and held.probability < min_probability:
                return None
            found = households.household(held.persons)
            return None if found is None else (found[0], held.probability)
        link = self._soft.link_of(component)
        if link is not None and min_probability is not None and link.probability < min_probability:
            link = None
        root = component if link is None else link.target
        found = households.household((root,))
        if found is None:
            return None
        return found[0], 1.0 if link is None else link.probability

    def household(self, household_id: int) -> tuple[int, list[int], list[HouseholdLink]]:
        """A household by id (or by any of its persons' ids or aliases): its id, its persons'
        root components and its links; `NotFound` if the person is in no household."""
        households = self._soft.households
        root = self._soft.root_of(self.survivor(household_id))
        roots, links = households.household_links((root,))
        if not links:
            raise NotFound(f"no household {household_id}")
        persons = sorted(roots, key=self._soft.person_of)
        return self._soft.person_of(persons[0]), persons, links

    def group(self, person_id: int) -> list[int]:
        """The components of a person at default confidence, the root first."""
        root = self._soft.root_of(self.survivor(person_id))
        return [root, *sorted(self._soft.members(root))]

    def person(self, person_id: int) -> tuple[_PersonState, list[tuple[str, _IdentifierState]]]:
        state = self._persons[self.survivor(person_id)]
        return state, [(key, self._identifiers[key]) for key in sorted(state.keys)]

    # -- stitching -----------------------------------------------------------------------

    def ingest(self, signal: PreparedSignal, received_at: float, visitor_evidence: bool = True) -> SignalResult:
        """Apply one prepared signal under the deterministic rules, then the visitor model's.

        Without `visitor_evidence` (a customer record: no address, no device, and a time that
        is the source system's, not the person's) only the soft links it contradicts go."""
        event_digest = self._events.digest(signal.event_id)
        known = self._events.get(event_digest, received_at)
        if known is not None:
            component = self._merged_into.get(known, known)
            return SignalResult(
                event_id=signal.event_id,
                person_id=self._soft.person_of(component) if component in self._persons else component,
                decision=Decision.DETERMINISTIC,
                duplicate=True,
                ignored=signal.ignored,
            )
        if self._suppressed and self._is_suppressed(signal, event_digest):
            return SignalResult(event_id=signal.event_id, person_id=0, decision=Decision.NEW, suppressed=True)
        self._now = received_at
        authenticated = any(p.config.unique for p in signal.identifiers)
        group: list[int] = []
        group_uniques: dict[str, str] = {}
        group_size = 0
        fresh: list[PreparedIdentifier] = []
        apart: list[PreparedIdentifier] = []  # new unique identifiers that conflict with the group
        moves: list[tuple[str, int]] = []
        refusals: list[_Refusal] = []

        for item in self._processing_order(signal.identifiers):
            state = self._identifiers.get(item.key)
            if state is None:
                if item.config.unique and group_uniques.get(item.namespace, item.key) != item.key:
                    apart.append(item)
                    continue
                fresh.append(item)
                if item.config.unique:
                    group_uniques[item.namespace] = item.key
                continue
            owner = state.person_id
            if owner in group:
                continue
            if state.shared and group:
                # A shared identifier follows the last authenticated person; it bridges nobody.
                if authenticated:
                    moves.append((item.key, owner))
                continue
            person = self._persons[owner]
            clashing = clash(group_uniques, person.unique_values())
            too_big = group_size + len(person.keys) > self._config.max_identifiers_per_person
            if clashing is None and not too_big:
                group.append(owner)
                group_uniques.update(person.unique_values())
                group_size += len(person.keys)
            elif not item.config.unique and authenticated and clashing is not None:
                moves.append((item.key, owner))
            else:
                reason = f"unique namespace {clashing!r}" if clashing is not None else "person size limit"
                refusals.append(_Refusal(item.key, owner, reason))

        created = not group
        # Ids only grow, so the smallest is the oldest.
        survivor = self._create_person(signal) if created else min(group)
        merged = sorted(p for p in group if p != survivor)
        for other in merged:
            self._merge(other, into=survivor, event_id=signal.event_id)
        for key, owner in moves:
            self._move(key, owner, survivor, signal)
        for item in fresh:
            self._add(item, survivor, signal)
        conflicts = [self._record_refusal(r, survivor, signal) for r in refusals]
        for item in apart:
            other = self._create_person(signal)
            self._add(item, other, signal)
            conflicts.append(
                self._record_refusal(
                    _Refusal(item.key, other, f"unique namespace {item.namespace!r}"), survivor, signal
                )
            )
        self._touch(survivor, signal)
        self._enforce_caps(survivor, signal)
        link = self._stitch_softly(survivor, signal, visitor_evidence)
        self._flush_households(signal.event_id)  # of the merges and the scoring above
        self._events.add(event_digest, survivor, received_at)
        self._pending_events.append(_event_row(signal, survivor, received_at, event_digest))
        if link is not None:
            decision, probability = Decision.PROBABILISTIC, link.probability
        else:
            decision, probability = (Decision.NEW if created else Decision.DETERMINISTIC), 0.0
        return SignalResult(
            event_id=signal.event_id,
            person_id=self._soft.person_of(survivor),
            decision=decision,
            probability=probability,
            person_created=created,
            ignored=signal.ignored,
            merged_person_ids=tuple(merged),
            conflicts=tuple(conflicts),
        )

    def sync_customer(self, record: PreparedCustomerRecord, received_at: float) -> tuple[str, SoftLink | None]:
        """Apply one customer record: its identifiers under the hard rules, then its attributes
        to the customer model. Returns ("created" | "updated" | "unchanged" | "suppressed", the
        soft link the customer model made, if it made one)."""
        index = self._customers.index
        previous = index.fingerprint(record.key)
        if previous == record.fingerprint:
            return "unchanged", None
        if self.ingest(record.signal, received_at, visitor_evidence=False).suppressed:
            return "suppressed", None  # of an erased person: nothing of it is stored
        # An identical record sent before a change (A, B, A again) is a known event that
        # `ingest` skips; its attributes are current again all the same.
        index.put(record.key, record.attributes, record.fingerprint)
        self._pending_customer_records.append(
            CustomerRecordRow(
                key=record.key,
                given_name=record.attributes.given_name,
                family_name=record.attributes.family_name,
                date_of_birth=record.attributes.date_of_birth,
                address=record.attributes.address,
                postcode=record.attributes.postcode,
                city=record.attributes.city,
                document_id=record.attributes.document_id,
                fingerprint=record.fingerprint,
                updated_at=record.signal.timestamp,
            )
        )
        component = self._identifiers[record.key].person_id
        before = self._soft.link_of(component)
        link = self._customers.match(
            component,
            record.key,
            self._soft,
            self._owner_component,
            self._unique_values,
            self._soft_change_recorder(record.signal.event_id),
            self._now,
        )
        self._flush_households(record.signal.event_id)
        made = link if link is not None and link is not before else None
        return ("created" if previous is None else "updated"), made

    def _stitch_softly(self, component: int, signal: PreparedSignal, visitor_evidence: bool) -> SoftLink | None:
        """Probabilistic second: drop what hard evidence contradicts, then (re)score if anonymous."""
        record = self._soft_change_recorder(signal.event_id)
        self._soft.check(component, self._unique_values, record)
        if self._soft.model is None or not visitor_evidence:
            # Without a visitor model evidence is not kept: it is rebuilt from the events if one comes.
            return self._soft.link_of(component)
        new_address = self._soft.observe(component, signal.timestamp, signal.context, record)
        if self._soft.due(component, new_address):
            return self._soft.rescore(component, self._unique_values, record, self._now)
        return self._soft.link_of(component)

    def _owner_component(self, key: str) -> int:
        return self._identifiers[key].person_id

    def _unique_values(self, component: int) -> Mapping[str, str]:
        return self._persons[component].unique_values()

    def _soft_change_recorder(
        self, event_id: str, change: ModelChange | None = None
    ) -> Callable[[int, int, SoftLink | None, str], None]:
        """Soft-link changes as change-log entries; those of a model change carry both versions."""
        in_force, replaced = (change.in_force, change.replaced) if change is not None else ("", "")

        def record(component: int, root: int, link: SoftLink | None, reason: str) -> None:
            kind = ChangeKind.SOFT_LINKED if link is not None else ChangeKind.SOFT_UNLINKED
            self._pending_changes.append(
                Change(
                    self._take_sequence(),
                    self._now,
                    kind,
                    root,
                    component,
                    event_id=event_id,
                    detail=f"model {link.model_version}" if link is not None else reason,
                    probability=link.probability if link is not None else 0.0,
                    model_version=link.model_version if link is not None else in_force,
                    previous_model_version=replaced,
                )
            )

        return record

    def _flush_households(self, event_id: str, change: ModelChange | None = None) -> None:
        """The household links made or dropped since the last flush, as changes."""
        events = self._soft.households.events
        in_force, replaced = (change.in_force, change.replaced) if change is not None else ("", "")
        for event in events:
            link = self._soft.households.link_of(event.component) if event.linked else None
            kind = ChangeKind.HOUSEHOLD_LINKED if event.linked else ChangeKind.HOUSEHOLD_UNLINKED
            self._pending_changes.append(
                Change(
                    self._take_sequence(),
                    self._now,
                    kind,
                    event.household_id,
                    event.component,
                    event_id=event_id,
                    detail=f"model {link.model_version}" if link is not None else event.reason,
                    probability=event.probability if event.linked else 0.0,
                    household_id=event.household_id,
                    household_persons=event.persons,
                    model_version=link.model_version if link is not None else in_force,
                    previous_model_version=replaced,
                )
            )
        events.clear()

    def _processing_order(self, items: Iterable[PreparedIdentifier]) -> list[PreparedIdentifier]:
        # Unique identifiers anchor the person; shared identifiers only ever follow it.
        def rank(item: PreparedIdentifier) -> int:
            if item.config.unique:
                return 0
            state = self._identifiers.get(item.key)
            return 2 if state is not None and state.shared else 1

        return sorted(items, key=rank)

    def _create_person(self, signal: PreparedSignal) -> int:
        person_id = self._next_person_id
        self._next_person_id += 1
        self._persons[person_id] = _PersonState(signal.timestamp, signal.timestamp)
        self._dirty_persons.add(person_id)
        self._change(ChangeKind.PERSON_CREATED, signal, person_id)
        return person_id

    def _merge(self, other: int, into: int, event_id: str) -> None:
        loser = self._persons.pop(other)
        winner = self._persons[into]
        for key in loser.keys:
            self._identifiers[key].person_id = into
            self._dirty_identifiers.add(key)
        winner.absorb(loser, other)
        for alias in (other, *loser.aliases):
            self._merged_into[alias] = into
        self._soft.merged(other, into, self._unique_values, self._soft_change_recorder(event_id))
        self._dirty_persons.update((other, into))
        self._pending_changes.append(
            Change(self._take_sequence(), self._now, ChangeKind.PERSONS_MERGED, into, other, event_id=event_id)
        )

    def _move(self, key: str, owner: int, survivor: int, signal: PreparedSignal) -> None:
        state = self._identifiers[key]
        self._persons[owner].remove_key(key)
        self._persons[survivor].add_key(key, None)
        state.person_id = survivor
        state.shared = True
        self._dirty_identifiers.add(key)
        self._dirty_persons.add(owner)
        self._change(
            ChangeKind.IDENTIFIER_MOVED, signal, survivor, owner, key, "claimed by a second authenticated person"
        )

    def _add(self, item: PreparedIdentifier, person_id: int, signal: PreparedSignal) -> None:
        self._identifiers[item.key] = _IdentifierState(person_id, signal.timestamp, signal.timestamp)
        person = self._persons[person_id]
        person.add_key(item.key, item.namespace if item.config.unique else None)
        self._dirty_identifiers.add(item.key)
        self._dirty_persons.add(person_id)
        self._change(ChangeKind.IDENTIFIER_ADDED, signal, person_id, key=item.key)

    def _touch(self, person_id: int, signal: PreparedSignal) -> None:
        person = self._persons[person_id]
        person.last_seen = max(person.last_seen, signal.timestamp)
        person.first_seen = min(person.first_seen, signal.timestamp)
        if signal.channel:
            person.add_channel(signal.channel)
        for item in signal.identifiers:
            state = self._identifiers.get(item.key)
            if state is not None and state.person_id == person_id:
                state.last_seen = max(state.last_seen, signal.timestamp)
                state.first_seen = min(state.first_seen, signal.timestamp)
                self._dirty_identifiers.add(item.key)
        self._dirty_persons.add(person_id)

    def _enforce_caps(self, person_id: int, signal: PreparedSignal) -> None:
        person = self._persons[person_id]
        by_namespace: dict[str, list[str]] = {}
        for key in person.keys:
            namespace = split_key(key)[0]
            if self._cap(namespace) is not None:
                by_namespace.setdefault(namespace, []).append(key)
        in_signal = {item.key for item in signal.identifiers}
        for namespace, keys in by_namespace.items():
            cap = self._cap(namespace)
            assert cap is not None
            excess = len(keys) - cap
            if excess <= 0:
                continue
            # Evict the least recently seen, never an identifier this very signal carried.
            candidates = sorted((k for k in keys if k not in in_signal), key=lambda k: self._identifiers[k].last_seen)
            for key in candidates[:excess]:
                person.remove_key(key)
                del self._identifiers[key]
                self._dirty_identifiers.add(key)
                self._change(ChangeKind.IDENTIFIER_EVICTED, signal, person_id, key=key, detail=f"cap of {cap}")

    def _record_refusal(self, refusal: _Refusal, person_id: int, signal: PreparedSignal) -> Conflict:
        self._change(ChangeKind.CONFLICT, signal, person_id, refusal.other_person_id, refusal.key, refusal.reason)
        namespace, value = split_key(refusal.key)
        return Conflict(Identifier(namespace, value), person_id, refusal.other_person_id, refusal.reason)

    def _change(
        self,
        kind: ChangeKind,
        signal: PreparedSignal,
        person_id: int,
        other: int | None = None,
        key: str = "",
        detail: str = "",
    ) -> None:
        namespace, value = split_key(key) if key else ("", "")
        self._pending_changes.append(
            Change(self._take_sequence(), self._now, kind, person_id, other, namespace, value, signal.event_id, detail)
        )

    def _take_sequence(self) -> int:
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence

    def _cap(self, namespace: str) -> int | None:
        if namespace not in self._caps:
            ns = self._policy.namespace(namespace)
            self._caps[namespace] = None if ns is None else ns.cap
        return self._caps[namespace]

    def _is_unique(self, namespace: str) -> bool:
        ns = self._policy.namespace(namespace)
        return ns is not None and ns.unique

    # -- erasure -------------------------------------------------------------------------

    def _is_suppressed(self, signal: PreparedSignal, event_digest: str) -> bool:
        # A known identifier is never suppressed (an erased one is no longer known, and one let in
        # again was lifted first): only new ones are hashed.
        digest = self._policy.erasure_digest
        return event_digest in self._suppressed or any(
            digest("identifier", item.key) in self._suppressed
            for item in signal.identifiers
            if item.key not in self._identifiers
        )

    def relinkable(self) -> list[int]:
        """The components a batch relink scores: anonymous ones with visitor evidence."""
        if self._soft.model is None:
            return []
        index = self._soft.index
        return [c for c, person in self._persons.items() if not person.uniques and index.has_evidence(c)]

    def visitor_profiles(self) -> list[tuple[dict[str, object], bool]]:
        """Every component with visitor evidence as the online scorer compares it (the profile
        row Splink reads, `unique_id` the component), and whether a relink decides it (anonymous)."""
        index = self._soft.index
        rows = []
        for component, person in self._persons.items():
            record = index.record(component)
            if record is not None:
                rows.append((record.as_row(), not person.uniques))
        return rows

    def relink(
        self,
        components: Iterable[int],
        now: float,
        change: ModelChange | None = None,
        scored: Mapping[int, tuple[list[int], FloatArray]] | None = None,
        fresh: bool = False,
    ) -> Relinked:
        """Score these anonymous components again against their candidates as they now stand,
        with the scorer, blocking and rules of online: a link that no longer passes goes, a
        better person takes it over, an unlinked component may link. Person ids stay: a person
        is its oldest component, and hard components are never touched.

        Under a model change (`change`: a promote's or rollback's relink) every link changed
        is journalled as it was before, for a rollback, and its change entries carry both versions.
        With `scored` (component -> its candidates and their match weights, from Splink under
        this model) those decide instead of the online scorer and blocking. `fresh` (a relink's
        first chunk): every profile is encoded again as it now stands before it is scored."""
        self._now = now
        if fresh:
            self._soft.forget_encodings()
        record = self._soft_change_recorder("", change)
        # Links before and after the whole chunk: rechecking a root also drops its members' links.
        chosen = [c for c in components if c in self._persons and not self._persons[c].uniques]
        before = {c: self._soft.link_of(c) for c in chosen}
        states = link_states(self._soft) if change is not None else None
        if change is not None:
            self._journal.begin(change, now)
        # Soft links merge no persons: `chosen` stays as it was.
        if scored is None:
            self._soft.rescore_each(chosen, self._unique_values, record, now)
        else:
            for component in chosen:
                self._soft.recheck(component, record)
                others, weights = scored.get(component, ([], _NO_WEIGHTS))
                keep = [i for i, other in enumerate(others) if other in self._persons and other != component]
                self._soft.rescore_scored(
                    component, [others[i] for i in keep], weights[keep], self._unique_values, record, now
                )
        made = dropped = moved = kept = 0
        for component in chosen:
            old, new = before[component], self._soft.link_of(component)
            if old is None:
                made += new is not None
            elif new is None:
                dropped += 1
            elif new.target != old.target:
                moved += 1
            else:
                kept += 1
        if states is not None:
            self._journal.note(states, self._soft)
        self._flush_households("", change)
        return Relinked(len(chosen), made, dropped, moved, kept)

    def begin_model_change(self, change: ModelChange, now: float) -> None:
        """A promote begins: its relink journals what it replaces from here on."""
        self._journal.begin(change, now, fresh=True)

    def restore_links(self, change: ModelChange, now: float) -> list[int] | None:
        """A rollback (`change`): put back the links the model change it undoes replaced (see
        `linkage.softlinks.restore_links`). The components to score again with the restored
        model, or None when the journal is not of that change (score every one again)."""
        self._now = now
        persons = self._persons
        again = restore_links(
            self._soft,
            self._journal,
            change,
            exists=lambda c: c in persons,
            anonymous=lambda c: c in persons and not persons[c].uniques,
            fits=lambda c, target: self._soft.fits(c, target, self._unique_values),
            record=self._soft_change_recorder("", change),
            now=now,
        )
        self._flush_households("", change)
        return again

    def lift_suppression(self, keys: Iterable[str]) -> int:
        """Let these identifier keys in again (a person back with fresh consent); how many were
        suppressed. The erased person's old event ids stay refused: their data stays erased."""
        lifted = 0
        for key in keys:
            digest = self._policy.erasure_digest("identifier", key)
            if digest in self._suppressed:
                self._suppressed.discard(digest)
                self._lifted.append(digest)
                lifted += 1
        return lifted

    def audit(self, now: float, principal: str, action: str, subject: str = "", detail: str = "") -> None:
        """Record an audited operation; written with the next commit."""
        self._pending_audit.append(AuditEntry(self._next_audit, now, principal, action, subject, detail))
        self._next_audit += 1

    def forget(self, now: float, person_id: int | None = None, key: str | None = None) -> Erasure:
        """Erase a person's own hard-linked component, found by id or alias or by one of its
        identifier keys: its identifiers, aliases, evidence and customer records go, and so do
        the soft links from or to it (a soft-linked component stays, a person of its own).
        The id and aliases are kept as erased, never reused; the store deletes the rest."""
        if key is not None:
            state = self._identifiers.get(key)
            if state is None:
                raise NotFound(f"no person holds this {split_key(key)[0]} identifier")
            component = state.person_id
        elif person_id is not None:
            component = self.survivor(person_id)
        else:
            raise ValueError("give person_id or key")
        self._now = now
        person = self._persons.pop(component)
        ids = (component, *person.aliases)
        self._soft.forget(component, self._soft_change_recorder(""))
        self._flush_households("")
        self._journal.forget(set(ids))
        keys = tuple(person.keys)
        # A shared identifier (a family tablet's, claimed by two authenticated persons) is not
        # the erased person's alone: it is erased here but not refused for the others later.
        personal = tuple(k for k in keys if not self._identifiers[k].shared)
        index = self._customers.index
        records = [k for k in keys if index.fingerprint(k) is not None]
        for k in records:
            index.remove(k)
        erased_keys = set(keys)
        self._pending_customer_records = [r for r in self._pending_customer_records if r.key not in erased_keys]
        for k in keys:
            del self._identifiers[k]
        self._dirty_identifiers.update(keys)
        for alias in person.aliases:
            self._merged_into.pop(alias, None)
        self._erased.update(ids)
        self._dirty_persons.update(ids)
        self._pending_changes.append(Change(self._take_sequence(), now, ChangeKind.PERSON_ERASED, component))
        self._suppress(component, now, personal, ids)
        erasure = Erasure(component, ids, keys, len(records))
        self._pending_erasures.append(erasure)
        return erasure

    def _suppress(self, component: int, now: float, keys: Iterable[str], ids: tuple[int, ...]) -> None:
        """Remember the erased identifier keys, and the ids of the events that resolved to the
        person, by their erasure digests only."""
        digest = self._policy.erasure_digest
        gone = set(ids)
        rows = [SuppressionRow(digest("identifier", k), "identifier", component, now) for k in keys]
        rows += [SuppressionRow(d, "event", component, now) for d in self._events.digests_of(gone)]
        self._suppressed.update(row.digest for row in rows)
        self._pending_suppressions.extend(rows)
        if self._lifted:
            # Lifted earlier in this very commit: the store deletes lifted digests after writing
            # new ones, so a lift of what is suppressed again here must not reach it.
            again = {row.digest for row in rows}
            self._lifted = [d for d in self._lifted if d not in again]

    def forget_events(self, event_ids: Iterable[str]) -> None:
        """The store deleted these events with an erased person: they are unknown again."""
        self._events.discard(event_ids)

    # -- committing ----------------------------------------------------------------------

    def drain(self) -> CommitBatch:
        """The rows the next commit must write; resets the pending marks."""
        batch = CommitBatch(
            events=self._pending_events,
            changes=self._pending_changes,
            customer_records=self._pending_customer_records,
            erasures=self._pending_erasures,
            suppressions=self._pending_suppressions,
            lifted_suppressions=self._lifted,
            audit=self._pending_audit,
        )
        for key in self._dirty_identifiers:
            state = self._identifiers.get(key)
            if state is None:
                batch.removed_identifiers.append(key)
                continue
            namespace, value = split_key(key)
            batch.identifiers.append(
                IdentifierRow(key, namespace, value, state.person_id, state.first_seen, state.last_seen, state.shared)
            )
        for person_id in self._dirty_persons:
            if person_id in self._erased:
                batch.persons.append(PersonRow(person_id, 0.0, 0.0, None, (), erased=True))
                continue
            merged_into = self._merged_into.get(person_id)
            if merged_into is not None:
                batch.persons.append(PersonRow(person_id, 0.0, 0.0, merged_into, ()))
                continue
            p = self._persons[person_id]
            batch.persons.append(PersonRow(person_id, p.first_seen, p.last_seen, None, p.channels))
        batch.soft_links, batch.removed_soft_links = self._soft.drain()
        batch.household_links, batch.removed_household_links = self._soft.households.drain()
        batch.model_change, batch.replaced_links = self._journal.drain()
        self._dirty_identifiers = set()
        self._dirty_persons = set()
        self._pending_events = []
        self._pending_changes = []
        self._pending_customer_records = []
        self._pending_erasures = []
        self._pending_suppressions = []
        self._lifted = []
        self._pending_audit = []
        return batch


def _event_row(signal: PreparedSignal, person_id: int, received_at: float, digest: str) -> EventRow:
    ctx = signal.context
    return EventRow(
        event_id=signal.event_id,
        timestamp=signal.timestamp,
        received_at=received_at,
        channel=signal.channel,
        person_id=person_id,
        identifier_keys=tuple(item.key for item in signal.identifiers),
        ip=ctx.ip,
        country=ctx.geo.country.upper(),
        city=ctx.geo.city,
        latitude=ctx.geo.latitude,
        longitude=ctx.geo.longitude,
        user_agent=ctx.user_agent,
        digest=digest,
    )

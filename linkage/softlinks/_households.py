"""Household links: a visitor the model places among a few persons without saying whose it is.

When the shared probability of every candidate person is below the threshold but that of the
best few together is above it (a couple's phones of one model on one home address), the visitor
is linked to those persons as a household. A household is every person reached through such
links; its id is its oldest person's. A visitor holds a soft link or a household link, never
both: a soft link made later replaces the household link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..store._rows import HouseholdLinkRow
from ._link import FloatArray, IntArray

# A household answer names at most this many persons: summing the small shares of many
# (the colleagues behind one office address) says nothing about a household.
MAX_HOUSEHOLD_PERSONS = 4


@dataclass(frozen=True, slots=True)
class HouseholdLink:
    component: int
    persons: tuple[int, ...]  # root components at link time, ascending
    probability: float  # that the component is one of theirs: their shares summed
    model_version: str
    linked_at: float

    def row(self) -> HouseholdLinkRow:
        return HouseholdLinkRow(self.component, self.persons, self.probability, self.model_version, self.linked_at)

    @classmethod
    def from_row(cls, row: HouseholdLinkRow) -> HouseholdLink:
        return cls(row.component, row.persons, row.probability, row.model_version, row.linked_at)


@dataclass(frozen=True, slots=True)
class HouseholdEvent:
    """A household link made (`linked`) or dropped, with the household as it stands after."""

    component: int
    linked: bool
    household_id: int
    persons: tuple[int, ...]
    probability: float
    reason: str


def household_rows(probabilities: FloatArray, threshold: float) -> IntArray | None:
    """The rows (of `person_shares`) of the fewest persons, two to `MAX_HOUSEHOLD_PERSONS`,
    whose shares together reach `threshold`; None when one alone does or none together do."""
    order = np.argsort(-probabilities, kind="stable")[:MAX_HOUSEHOLD_PERSONS]
    if len(order) < 2 or probabilities[order[0]] >= threshold:
        return None
    reached = np.flatnonzero(np.cumsum(probabilities[order]) >= threshold)
    if not len(reached):
        return None
    chosen: IntArray = order[: int(reached[0]) + 1]
    return chosen


class PersonsOf(Protocol):
    """Where the soft links put a component: its root, the root's members, its person id."""

    def root_of(self, component: int) -> int: ...

    def members(self, root: int) -> set[int]: ...

    def person_of(self, component: int, min_probability: float | None = None) -> int: ...


class Households:
    """The household links of the graph, and the households they make."""

    def __init__(self, persons: PersonsOf) -> None:
        self._persons = persons
        self._links: dict[int, HouseholdLink] = {}
        self._by_person: dict[int, set[int]] = {}  # person component -> components linked to it
        self._dirty: set[int] = set()
        self.events: list[HouseholdEvent] = []

    def load(self, rows: Iterable[HouseholdLinkRow]) -> None:
        for row in rows:
            self._put(HouseholdLink.from_row(row))

    def link_of(self, component: int) -> HouseholdLink | None:
        return self._links.get(component)

    def links(self) -> Mapping[int, HouseholdLink]:
        return self._links

    def changed(self) -> set[int]:
        """The components whose household link changed since the last `drain`."""
        return self._dirty

    def add(self, link: HouseholdLink) -> None:
        self.drop(link.component, "a better match")  # its household link to other persons, if any
        self._put(link)
        self._dirty.add(link.component)
        found = self.household(link.persons)
        assert found is not None  # the link just made reaches its own persons
        self.events.append(HouseholdEvent(link.component, True, found[0], found[1], link.probability, ""))

    def drop(self, component: int, reason: str) -> None:
        link = self._links.get(component)
        if link is None:
            return
        before = self.household(link.persons)
        self._pop(component)
        self._dirty.add(component)
        self._dropped(link, before, link.persons, reason)

    def person_moved(self, old: int, new: int | None, reason: str) -> None:
        """Person component `old` merged into `new` (or was erased: None): the links naming it
        follow; one left with fewer than two persons is dropped (the model decides again)."""
        affected = sorted(self._by_person.get(old, set()))
        # Each dropped link's household as it stood, and what is left of it once every link
        # naming `old` has followed (never the erased or merged person itself).
        before = {component: self.household(self._links[component].persons) for component in affected}
        dropped: list[tuple[HouseholdLink, tuple[int, ...]]] = []
        for component in affected:
            link = self._links[component]
            kept = {p for p in link.persons if p != old}
            persons = tuple(sorted(kept if new is None else kept | {new}))
            self._pop(component)
            self._dirty.add(component)
            if self._collapsed(component, persons):
                dropped.append((link, persons))
            else:
                self._put(HouseholdLink(component, persons, link.probability, link.model_version, link.linked_at))
        for link, persons in dropped:
            self._dropped(link, before[link.component], persons, reason)

    def person_linked(self, component: int, reason: str) -> None:
        """Component `component` was soft-linked to a person: a link naming it that now names
        fewer than two persons, or its own visitor's, is dropped (the model decides again)."""
        for linked in sorted(self._by_person.get(component, set())):
            if self._collapsed(linked, self._links[linked].persons):
                self.drop(linked, reason)

    def _collapsed(self, component: int, persons: Iterable[int]) -> bool:
        roots = {self._persons.root_of(p) for p in persons}
        return len(roots) < 2 or self._persons.root_of(component) in roots

    def _dropped(
        self, link: HouseholdLink, before: tuple[int, tuple[int, ...]] | None, left: Iterable[int], reason: str
    ) -> None:
        after = self.household(left)
        hid = before[0] if before is not None else self._persons.person_of(min(link.persons))
        self.events.append(
            HouseholdEvent(link.component, False, hid, after[1] if after else (), link.probability, reason)
        )

    def household(self, start: Iterable[int]) -> tuple[int, tuple[int, ...]] | None:
        """The household reached from these person components: its id (its oldest person id)
        and its person ids, ascending; None if no household link reaches them."""
        roots, links = self._reach(start)
        if not links:
            return None
        persons = tuple(sorted({self._persons.person_of(root) for root in roots}))
        return persons[0], persons

    def household_links(self, start: Iterable[int]) -> tuple[set[int], list[HouseholdLink]]:
        """The household of these person components: its roots and its links, by component."""
        roots, links = self._reach(start)
        return roots, [self._links[c] for c in sorted(links)]

    def _reach(self, start: Iterable[int]) -> tuple[set[int], set[int]]:
        persons = self._persons
        seen_roots: set[int] = set()
        seen_links: set[int] = set()
        frontier = [persons.root_of(p) for p in start]
        while frontier:
            root = frontier.pop()
            if root in seen_roots:
                continue
            seen_roots.add(root)
            for part in (root, *persons.members(root)):
                for component in self._by_person.get(part, ()):
                    if component not in seen_links:
                        seen_links.add(component)
                        frontier.extend(persons.root_of(p) for p in self._links[component].persons)
        return seen_roots, seen_links

    def drain(self) -> tuple[list[HouseholdLinkRow], list[int]]:
        rows = [self._links[c].row() for c in self._dirty if c in self._links]
        removed = [c for c in self._dirty if c not in self._links]
        self._dirty = set()
        return rows, removed

    def _put(self, link: HouseholdLink) -> None:
        self._links[link.component] = link
        for person in link.persons:
            self._by_person.setdefault(person, set()).add(link.component)

    def _pop(self, component: int) -> None:
        link = self._links.pop(component, None)
        if link is None:
            return
        for person in link.persons:
            linked = self._by_person.get(person)
            if linked is not None:
                linked.discard(component)
                if not linked:
                    del self._by_person[person]

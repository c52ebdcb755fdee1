"""What a model change replaced, so that a rollback puts it back.

A promote (or a rollback) scores every anonymous visitor again with the model it puts in
force. For each component that changes, the journal keeps its soft link and household link as
they were before, once: the first state the model change met. Only the last model change is
kept; a rollback reads it, puts those links back, and journals what it replaced in turn, so
that rolling back again is exact too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..store._rows import ReplacedLinkRow
from ._households import HouseholdLink, Households
from ._link import Record, SoftLink

# The soft and household links of every component at one moment (shallow copies).
LinkStates = tuple[dict[int, SoftLink], dict[int, HouseholdLink]]


@dataclass(frozen=True, slots=True)
class ModelChange:
    """A visitor model put in force in place of another ("none": no model)."""

    replaced: str
    in_force: str

    @property
    def label(self) -> str:
        return f"{self.replaced} -> {self.in_force}"

    def undone(self) -> ModelChange:
        """The change a rollback of this one makes."""
        return ModelChange(self.in_force, self.replaced)


class JournalledLinks(Protocol):
    """The link state a model change reads and changes (`linkage.visitor.SoftLinks`)."""

    households: Households

    def links(self) -> Mapping[int, SoftLink]: ...

    def link_of(self, component: int) -> SoftLink | None: ...

    def members(self, root: int) -> set[int]: ...

    def attach(self, link: SoftLink, record: Record) -> None: ...

    def detach(self, component: int, record: Record, reason: str) -> None: ...

    def changed(self) -> set[int]: ...


def link_states(state: JournalledLinks) -> LinkStates:
    return dict(state.links()), dict(state.households.links())


class LinkJournal:
    """The links the last model change replaced, by component (see the module)."""

    def __init__(self) -> None:
        self.change = ""  # the `ModelChange.label` of the journal's change
        self.since = 0.0  # when it began
        self._before: dict[int, ReplacedLinkRow] = {}
        self._pending: list[ReplacedLinkRow] = []
        self._began = False

    def load(self, change: str, since: float, rows: Iterable[ReplacedLinkRow]) -> None:
        self.change, self.since = change, since
        for row in rows:
            self._before[row.component] = row

    def begin(self, change: ModelChange, now: float, fresh: bool = False) -> None:
        """Journal `change` from now on; the journal of another change is dropped (of any, if
        `fresh`: a model change beginning)."""
        if change.label == self.change and not fresh:
            return
        self.change, self.since = change.label, now
        self._before.clear()
        self._pending.clear()
        self._began = True

    def entries(self) -> list[ReplacedLinkRow]:
        return [self._before[c] for c in sorted(self._before)]

    def note(self, before: LinkStates, state: JournalledLinks) -> int:
        """Journal the components whose links differ from `before` (taken before the step that
        changed them); how many were new to the journal."""
        soft_before, household_before = before
        added = 0
        for component in sorted(state.changed()):
            if component in self._before:
                continue
            soft, household = soft_before.get(component), household_before.get(component)
            if soft is state.link_of(component) and household is state.households.link_of(component):
                continue
            row = ReplacedLinkRow(
                component,
                self.change,
                soft.row() if soft is not None else None,
                household.row() if household is not None else None,
            )
            self._before[component] = row
            self._pending.append(row)
            added += 1
        return added

    def forget(self, components: set[int]) -> None:
        """Erased components: what names them goes (the store deletes its rows too)."""
        for component, row in list(self._before.items()):
            if row.names_any(components):
                del self._before[component]

    def drain(self) -> tuple[tuple[str, float] | None, list[ReplacedLinkRow]]:
        """(the change and its time if one began: the stored journal is emptied first, the rows
        to add)."""
        drained = ((self.change, self.since) if self._began else None), self._pending
        self._began, self._pending = False, []
        return drained


def restore_links(
    state: JournalledLinks,
    journal: LinkJournal,
    change: ModelChange,
    exists: Callable[[int], bool],
    anonymous: Callable[[int], bool],
    fits: Callable[[int, int], bool],
    record: Record,
    now: float,
) -> list[int] | None:
    """Undo the journal's model change; `change` is the rollback, whose `undone()` must be the
    journal's change (else None: nothing is known to put back).

    Every journalled component still anonymous gets its links from before; so does one that
    holds a unique identifier (a soft link made before a login stays while the login does not
    contradict it) when `fits(component, target)` says its person's unique identifiers do not
    clash with it. A link that cannot be put back (its person is gone, or linked elsewhere
    since) and every link the rolled-back model made after its promote are dropped instead, and
    the anonymous components returned: the restored model scores them again. The journal
    becomes the rollback's own."""
    if journal.change != change.undone().label:
        return None
    entries = [
        e
        for e in journal.entries()
        if anonymous(e.component)
        or (e.soft_link is not None and exists(e.component) and fits(e.component, e.soft_link.target))
    ]
    since = journal.since
    before = link_states(state)
    journal.begin(change, now)
    reason = f"model change {change.label}"
    for entry in entries:
        state.detach(entry.component, record, reason)
        state.households.drop(entry.component, reason)

    def is_root(component: int) -> bool:
        return exists(component) and state.link_of(component) is None

    again: set[int] = set()
    for entry in entries:
        soft = entry.soft_link
        if soft is None:
            continue
        known = not anonymous(entry.component)
        if (
            is_root(soft.target)
            and not state.members(entry.component)
            and (not known or fits(entry.component, soft.target))
        ):
            state.attach(SoftLink.from_row(soft), record)
        elif not known:
            again.add(entry.component)
    for entry in entries:
        household = entry.household_link
        if household is None or not anonymous(entry.component):
            continue
        if is_root(entry.component) and all(is_root(p) for p in household.persons):
            state.households.add(HouseholdLink.from_row(household))
        else:
            again.add(entry.component)
    journalled = {e.component for e in entries}
    made_since = {
        c for c, link in state.links().items() if link.model_version == change.replaced and link.linked_at >= since
    }
    made_since |= {
        c
        for c, link in state.households.links().items()
        if link.model_version == change.replaced and link.linked_at >= since
    }
    for component in sorted(made_since - journalled):
        if anonymous(component):
            state.detach(component, record, reason)
            state.households.drop(component, reason)
            again.add(component)
    journal.note(before, state)
    return sorted(again)

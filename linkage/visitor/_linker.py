"""Soft links: components joined to a person by the visitor model, under the hard rules.

A soft link joins one component to a root component; roots are never soft-linked themselves,
so a person is a root and the components linked to it (a star). Soft links never join
components holding different values of a unique namespace, and a link that hard evidence
later contradicts is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from .._types import Context
from ..identifiers import clash
from ..softlinks import HouseholdLink, Households, Record, SoftLink, UniquesOf, household_rows, person_shares
from ..store._rows import SoftLinkRow
from ._encoded_table import EncodedTable
from ._encoding import EncodedProfiles
from ._index import VisitorIndex
from ._model import VisitorModel
from ._scorer import Waterfall

FloatArray = NDArray[np.float64]

# An unlinked component is scored again after this many signals without a new address: its
# evidence sharpens slowly, and scoring on every signal of a busy visitor costs for nothing.
RESCORE_EVERY = 4
# A relink scores its pairs in batches of about this many (`SoftLinks.rescore_each`).
_PAIRS_PER_BATCH = 16_384
# Match weights are far below this; the cap only keeps 2 ** w finite.
_MAX_WEIGHT = 1000.0


class SoftLinks:
    """The soft-link state of the graph, the visitor evidence, and the model that links."""

    def __init__(self, model: VisitorModel | None, candidate_limit: int = 300) -> None:
        self.model = model
        self.index = VisitorIndex(
            tf_population=model.tf_population if model is not None else None,
            agent_frequencies=model is not None and "user_agent" in model.scorer.term_frequencies_read,
        )
        self._candidate_limit = candidate_limit
        self._links: dict[int, SoftLink] = {}
        self._members: dict[int, set[int]] = {}
        # Encodings live as rows of one table (candidates are a take); `_fresh` are the rows
        # still current.
        self._table = EncodedTable()
        self._fresh: set[int] = set()
        self._dirty: set[int] = set()
        self._scored_at: dict[int, int] = {}  # component -> observations when last scored
        self.households = Households(self)

    # -- state -----------------------------------------------------------------------------

    def adopt_index(self, index: VisitorIndex) -> bool:
        """Use evidence rebuilt elsewhere (the evidence cache) if made with this index's settings."""
        if index.settings != self.index.settings or len(self.index):
            return False
        self.index = index
        return True

    def load(self, rows: list[SoftLinkRow]) -> None:
        for row in rows:
            link = SoftLink.from_row(row)
            self._links[link.component] = link
            self._members.setdefault(link.target, set()).add(link.component)

    def link_of(self, component: int) -> SoftLink | None:
        return self._links.get(component)

    def links(self) -> Mapping[int, SoftLink]:
        return self._links

    def changed(self) -> set[int]:
        """The components whose soft or household link changed since the last `drain`."""
        return self._dirty | self.households.changed()

    def members(self, root: int) -> set[int]:
        return self._members.get(root, set())

    def root_of(self, component: int) -> int:
        link = self._links.get(component)
        return component if link is None else link.target

    def person_of(self, component: int, min_probability: float | None = None) -> int:
        """The person id at a confidence: the oldest component of the group that holds.

        None means every soft link counts (they all passed the model's threshold)."""
        link = self._links.get(component)
        if link is not None:
            if min_probability is not None and link.probability < min_probability:
                return component
            component = link.target
        group = [component]
        for member in self._members.get(component, ()):
            if min_probability is None or self._links[member].probability >= min_probability:
                group.append(member)
        return min(group)

    def drain(self) -> tuple[list[SoftLinkRow], list[int]]:
        rows = [self._links[c].row() for c in self._dirty if c in self._links]
        removed = [c for c in self._dirty if c not in self._links]
        self._dirty = set()
        return rows, removed

    # -- evidence --------------------------------------------------------------------------

    def observe(self, component: int, timestamp: float, context: Context, record: Record) -> bool:
        """Add evidence; True when it brought a new address or settled the visitor on one (worth
        re-scoring for: a home is what a household answer rests on)."""
        self._forget_encoding(component)
        new_address, settled, changed_others = self.index.observe(component, timestamp, context)
        self._fresh.difference_update(changed_others)
        if new_address:
            users = self.index.users(context.ip)
            if len(users) >= 4 and len(users) & (len(users) - 1) == 0:
                self._revalidate(users, record)
        if (component in self._links or component in self._members) and (
            new_address or self.index.observations(component) % RESCORE_EVERY == 0
        ):
            self.recheck(component, record)
        return new_address or settled

    def recheck(self, component: int, record: Record) -> None:
        """Score again the links at `component` (its own, and those of its members) and drop
        those that no longer pass: evidence that came later can contradict a link, e.g. a
        browser thought to follow another seen in use at the same time as it."""
        model = self.model
        if model is None:
            return
        link = self._links.get(component)
        pairs = [(component, link.target)] if link is not None else []
        pairs += [(member, component) for member in sorted(self._members.get(component, ()))]
        for member, target in pairs:
            left, right = self._encode(member), self._encode(target)
            if left is None or right is None:
                continue
            if float(model.scorer.score(left, right).match_probability[0]) < model.threshold:
                self._drop(member, record, "weaker evidence: later activity contradicts it")

    def _revalidate(self, components: set[int], record: Record) -> None:
        """An address just doubled its visitors: its term frequency grew, so links made on it
        when it looked rare are scored again and dropped if they no longer pass."""
        model = self.model
        if model is None:
            return
        for component in components:
            self._forget_encoding(component)
        for component in sorted(components):
            link = self._links.get(component)
            if link is None:
                continue
            left, right = self._encode(component), self._encode(link.target)
            if left is None or right is None:
                self._drop(component, record, "no evidence left")
                continue
            probability = float(model.scorer.score(left, right).match_probability[0])
            if probability < model.threshold:
                self._drop(component, record, "weaker evidence: its address turned out to be shared widely")

    # -- rules -----------------------------------------------------------------------------

    def merged(self, loser: int, winner: int, uniques_of: UniquesOf, record: Record) -> None:
        """A hard merge: the loser's own link goes, its members follow the winner's root."""
        self.index.merge(loser, winner)
        self._scored_at.pop(loser, None)
        self._forget_encoding(loser)
        self._forget_encoding(winner)
        self._table.drop(loser)
        if loser in self._links:
            self._drop(loser, record, "hard merge")
        if winner in self._links and loser in self._members:
            # The winner becomes a root of the loser's members; it cannot also be a member.
            self._drop(winner, record, "hard merge")
        root = self.root_of(winner)
        for member in sorted(self._members.pop(loser, set())):
            old = self._links.pop(member)
            self._dirty.add(member)
            if member == winner:
                continue
            if clash(uniques_of(member), self._group_uniques(root, uniques_of)) is not None:
                record(member, old.target, None, "contradicted by hard evidence")
                continue
            moved = SoftLink(
                member, root, old.probability, old.match_weight, old.model_version, old.weights, old.linked_at
            )
            self._set(moved)
        # Last, on the soft links as they now stand: which persons are one is settled.
        self.households.drop(loser, "hard merge")
        self.households.person_moved(loser, winner, "its persons proved one")

    def forget(self, component: int, record: Record) -> None:
        """An erased component: its own soft link and those of its members go (the members stay,
        as persons of their own), and so do its evidence and encoding."""
        if component in self._links:
            self._drop(component, record, "person erased")
        for member in sorted(self._members.get(component, set())):
            self._drop(member, record, "person erased")
        self.households.drop(component, "person erased")
        self.households.person_moved(component, None, "person erased")
        self.index.remove(component)
        self._scored_at.pop(component, None)
        self._forget_encoding(component)
        self._table.drop(component)

    def check(self, component: int, uniques_of: UniquesOf, record: Record) -> None:
        """After hard evidence reached `component`: drop the soft links it contradicts."""
        link = self._links.get(component)
        if link is not None:
            others = self._group_uniques(link.target, uniques_of, leave_out=component)
            if clash(uniques_of(component), others) is not None:
                self._drop(component, record, "contradicted by hard evidence")
            return
        mine = uniques_of(component)
        if not mine:
            return
        # A household link says "one of these, not known whose": a visitor that now holds a
        # unique identifier (a login) is known, whoever it turns out to be.
        self.households.drop(component, "a known person now: it holds a unique identifier")
        for member in sorted(self._members.get(component, set())):
            if clash(uniques_of(member), mine) is not None:
                self._drop(member, record, "contradicted by hard evidence")

    def due(self, component: int, new_address: bool) -> bool:
        """Whether `rescore` is worth running after a signal of `component`."""
        if new_address:
            return True
        if component in self._links:
            return False
        last = self._scored_at.get(component)
        return last is None or self.index.observations(component) - last >= RESCORE_EVERY

    def rescore(self, component: int, uniques_of: UniquesOf, record: Record, now: float) -> SoftLink | None:
        """Score an anonymous component against its candidates and link it to the best person
        above the threshold (or move it there); returns its link afterwards."""
        model = self.model
        if model is None or uniques_of(component) or self._members.get(component):
            return self._links.get(component)
        current = self._links.get(component)
        self._scored_at[component] = self.index.observations(component)
        if not self._ensure_row(component):
            return current
        rows = self._scorable_candidates(component)
        if not rows:
            return current
        # Candidate component -> its root; scoring members too finds a person by any of its parts.
        links = self._links
        roots = {other: other if (link := links.get(other)) is None else link.target for other in rows}
        candidates = self._table.take(rows)
        # Probed in place, after the candidates' rows are put (a put may move the table).
        scores = model.scorer.score(model.scorer.probe(*self._table.located(component)), candidates)
        candidate_ids = scores.candidate_ids.tolist()
        return self._decide(
            component, candidate_ids, scores.match_weight, roots, lambda row: model.scorer.waterfall(scores, row),
            uniques_of, record, now,
        )  # fmt: skip

    def rescore_each(self, components: Sequence[int], uniques_of: UniquesOf, record: Record, now: float) -> None:
        """`recheck`, then `rescore`, each of `components` in turn (a relink), with the same
        result: a pair's score depends only on the evidence, which this does not change, so
        every pair is scored first in a few batches (`VisitorScorer.pair_weights`) and only
        the decisions, which depend on the links made before them, run one by one. A
        component with no link to keep or move, whose candidate persons together cannot reach
        the threshold, is left as it is: the rules would change nothing."""
        model = self.model
        if model is None:
            return
        weights: dict[int, tuple[list[int], FloatArray]] = {}
        pending: list[tuple[int, list[int]]] = []
        size = 0
        for component in components:
            if uniques_of(component) or not self._ensure_row(component):
                continue
            others = self._scorable_candidates(component)
            if others:
                pending.append((component, others))
                size += len(others)
            if size >= _PAIRS_PER_BATCH:
                self._score_pairs(pending, weights)
                pending, size = [], 0
        self._score_pairs(pending, weights)
        # Every candidate person together holds at most sum(o) / (1 + sum(o)) (see person_probabilities).
        threshold = model.threshold
        bounded = 0.0 < threshold < 1.0
        odds_needed = threshold / (1.0 - threshold) * (1.0 - 1e-9) if bounded else 0.0
        for component in components:
            self.recheck(component, record)
            scored = weights.get(component)
            if scored is None or component in self._links or not bounded:
                self.rescore(component, uniques_of, record, now)  # nothing to score, or a link at stake
                continue
            others, match_weights = scored
            if self._members.get(component):
                continue  # a root now: rescore leaves it as it is
            self._scored_at[component] = self.index.observations(component)
            if float(np.exp2(np.minimum(match_weights, _MAX_WEIGHT)).sum()) < odds_needed:
                continue
            roots = {other: self.root_of(other) for other in others}
            waterfall = partial(self._candidate_waterfall, component, others)
            self._decide(component, others, match_weights, roots, waterfall, uniques_of, record, now)

    def _scorable_candidates(self, component: int) -> list[int]:
        """The component's candidates from blocking that have evidence, their rows put."""
        fresh = self._fresh  # most candidates' rows are current: skip the call for them
        return [c for c in self.index.candidates(component, self._candidate_limit) if c in fresh or self._ensure_row(c)]

    def _score_pairs(self, pending: list[tuple[int, list[int]]], into: dict[int, tuple[list[int], FloatArray]]) -> None:
        """Score each component of `pending` against its candidates, in one batch."""
        if not pending:
            return
        assert self.model is not None
        table = self._table
        sizes = [len(others) for _, others in pending]
        lefts = np.repeat(table.rows((component for component, _ in pending), len(pending)), sizes)
        rights = table.rows(chain.from_iterable(others for _, others in pending), len(lefts))
        match_weights = self.model.scorer.pair_weights(table.take_rows(lefts), table.take_rows(rights))
        start = 0
        for component, others in pending:
            into[component] = (others, match_weights[start : start + len(others)])
            start += len(others)

    def _candidate_waterfall(self, component: int, others: Sequence[int], row: int) -> Waterfall:
        return self._pair_waterfall(component, others[row])

    def _pair_waterfall(self, component: int, other: int) -> Waterfall:
        """The waterfall of one pair, as the online scorer computes it."""
        assert self.model is not None
        scorer = self.model.scorer
        if not self._ensure_row(component) or not self._ensure_row(other):
            raise LookupError(f"component {component} or {other} has no visitor evidence")
        pair = scorer.score(scorer.probe(*self._table.located(component)), self._table.take([other]))
        return scorer.waterfall(pair, 0)

    def rescore_scored(
        self,
        component: int,
        others: Sequence[int],
        match_weights: FloatArray,
        uniques_of: UniquesOf,
        record: Record,
        now: float,
    ) -> SoftLink | None:
        """`rescore` with the candidates and their match weights given (scored elsewhere, by
        Splink under this model): the same decision. A link made gets its waterfall from the
        online scorer, which computes the same weights."""
        model = self.model
        if model is None or uniques_of(component) or self._members.get(component):
            return self._links.get(component)
        current = self._links.get(component)
        roots = {other: self.root_of(other) for other in others}
        if not roots or not self._ensure_row(component):
            return current

        def waterfall(row: int) -> Waterfall:
            return self._pair_waterfall(component, others[row])

        return self._decide(component, list(others), match_weights, roots, waterfall, uniques_of, record, now)

    def _decide(
        self,
        component: int,
        candidate_ids: list[int],
        match_weights: FloatArray,
        roots: Mapping[int, int],
        waterfall_of: Callable[[int], Waterfall],
        uniques_of: UniquesOf,
        record: Record,
        now: float,
    ) -> SoftLink | None:
        """Link `component` to the best person among its scored candidates, under the rules."""
        model = self.model
        assert model is not None
        current = self._links.get(component)
        mine = uniques_of(component)
        persons = [roots[candidate] for candidate in candidate_ids]
        rows_by_person, probabilities = person_shares(match_weights, persons)
        if current is None:
            household = household_rows(probabilities, model.threshold)
            if household is not None:
                best = [candidate_ids[int(rows_by_person[at])] for at in household]
                if self._share_a_home(component, best):
                    self._link_household(
                        component, [roots[c] for c in best], float(probabilities[household].sum()), now
                    )
                    return None
        for at in np.argsort(-probabilities, kind="stable"):
            probability = float(probabilities[at])
            if probability < model.threshold:
                break
            row = int(rows_by_person[at])
            root = roots[candidate_ids[row]]
            if clash(mine, self._group_uniques(root, uniques_of)) is not None:
                continue
            if current is not None and current.target == root:
                return current
            if current is not None and current.probability >= probability:
                return current
            waterfall = waterfall_of(row)
            link = SoftLink(
                component=component,
                target=root,
                probability=probability,
                match_weight=waterfall.match_weight,
                model_version=model.version,
                weights=(
                    ("prior", waterfall.prior_match_weight),
                    *((s.comparison, s.match_weight) for s in waterfall.steps),
                ),
                linked_at=now,
            )
            if current is not None:
                self._drop(component, record, "a better match")
            self.households.drop(component, "linked to a person")
            self._set(link)
            record(component, root, link, "")
            return link
        return current

    def _share_a_home(self, component: int, others: list[int]) -> bool:
        """Whether each of `others` lives on a home `component` was on (settled there or not yet:
        a browser's next cookie): a household answer is about one home's persons, not a few
        visitors of one café or office."""
        mine = self.index.record(component)
        if mine is None or not mine.homes_seen:
            return False
        homes = set(mine.homes_seen)
        for other in others:
            theirs = self.index.record(other)
            if theirs is None or not homes.intersection(theirs.homes or ()):
                return False
        return True

    def _link_household(self, component: int, persons: list[int], probability: float, now: float) -> None:
        """Link to the household of these persons, unless already linked to the same ones."""
        assert self.model is not None
        chosen = tuple(sorted(set(persons)))
        held = self.households.link_of(component)
        if held is not None and {self.root_of(p) for p in held.persons} == set(chosen):
            return
        self.households.add(HouseholdLink(component, chosen, probability, self.model.version, now))

    def attach(self, link: SoftLink, record: Record) -> None:
        """Link a component that another model matched (customer records), replacing its link."""
        if link.component in self._members:
            raise ValueError("a root of soft links cannot be soft-linked itself")
        if link.component in self._links:
            self._drop(link.component, record, "a better match")
        self.households.drop(link.component, "linked to a person")
        self._set(link)
        record(link.component, link.target, link, "")

    def detach(self, component: int, record: Record, reason: str) -> None:
        if component in self._links:
            self._drop(component, record, reason)

    def group_uniques(self, root: int, uniques_of: UniquesOf) -> dict[str, str]:
        return self._group_uniques(root, uniques_of)

    # -- helpers ---------------------------------------------------------------------------

    def _encode(self, component: int) -> EncodedProfiles | None:
        """The component's current encoding as a one-row table; None if it has no evidence."""
        return self._table.take([component]) if self._ensure_row(component) else None

    def _ensure_row(self, component: int) -> bool:
        """Put the component's current encoding in the table; False if it has no evidence."""
        if component in self._fresh:
            return True
        record = self.index.record(component)
        if record is None:
            return False
        self._table.put_record(component, record)
        self._fresh.add(component)
        return True

    def _forget_encoding(self, component: int) -> None:
        self._fresh.discard(component)

    def forget_encodings(self) -> None:
        """Encode every profile again when next scored. A row goes stale without evidence of its
        own: other visitors settling on its address join homes, or push the address past the
        home and place limits. Online that only misses a match now and then; a relink scores
        every visitor as it now stands, like Splink on a snapshot."""
        self._fresh.clear()

    def fits(self, component: int, target: int, uniques_of: UniquesOf) -> bool:
        """Whether `component` may be soft-linked to `target`'s person: no unique identifier of
        one clashes with the other's (a rollback putting a link back checks this)."""
        return clash(uniques_of(component), self._group_uniques(target, uniques_of, leave_out=component)) is None

    def _group_uniques(self, root: int, uniques_of: UniquesOf, leave_out: int | None = None) -> dict[str, str]:
        merged = dict(uniques_of(root))
        for member in self._members.get(root, ()):
            if member != leave_out:
                merged.update(uniques_of(member))
        return merged

    def _set(self, link: SoftLink) -> None:
        self._links[link.component] = link
        self._members.setdefault(link.target, set()).add(link.component)
        self._dirty.add(link.component)
        self.households.person_linked(link.component, "its persons were linked as one")

    def _drop(self, component: int, record: Record, reason: str) -> None:
        link = self._links.pop(component)
        members = self._members.get(link.target)
        if members is not None:
            members.discard(component)
            if not members:
                del self._members[link.target]
        self._dirty.add(component)
        record(component, link.target, None, reason)

"""What a soft link is, whichever model made it, and how candidate persons share one visitor.

A soft link joins one component to a root component; roots are never soft-linked themselves,
so a person is a root and the components linked to it (a star). The link state lives in
`linkage.visitor.SoftLinks`; the customer model links through the same state (`LinkState`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ..store._rows import SoftLinkRow

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

UniquesOf = Callable[[int], Mapping[str, str]]
# (component, root, link or None, reason): a link made (link set) or dropped (link None).
Record = Callable[[int, int, "SoftLink | None", str], None]


@dataclass(frozen=True, slots=True)
class SoftLink:
    component: int
    target: int  # the root component
    probability: float  # of this person among the candidates (`person_probabilities`)
    match_weight: float  # pairwise, against the target's best-scoring component
    model_version: str
    # The waterfall at link time: ("prior", w) then (comparison, weight incl. tf adjustment).
    weights: tuple[tuple[str, float], ...]
    linked_at: float

    def row(self) -> SoftLinkRow:
        return SoftLinkRow(
            self.component, self.target, self.probability, self.match_weight, self.model_version,
            tuple(n for n, _ in self.weights), tuple(w for _, w in self.weights), self.linked_at,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: SoftLinkRow) -> SoftLink:
        return cls(
            row.component, row.target, row.probability, row.match_weight, row.model_version,
            tuple(zip(row.weight_names, row.weights, strict=True)), row.linked_at,
        )  # fmt: skip


def person_probabilities(match_weights: FloatArray) -> FloatArray:
    """The probability that the component belongs to each of several candidate persons, given
    each person's best pairwise match weight: a component belongs to one person at most, so the
    hypotheses "person i" and "none of them" share one unit of probability. With pairwise odds
    o_i = 2^w_i that is o_i / (1 + sum of o_j); alone, it is the pairwise probability.

    Two persons that explain a visitor equally well (a couple's phones of one model on one home
    address) each get under one half, so neither is linked: the evidence is real but does not
    say whose it is."""
    top = float(match_weights.max(initial=0.0))
    odds = np.exp2(match_weights - top)  # scaled by 2^-top so that nothing overflows
    probabilities: FloatArray = odds / (np.exp2(-top) + odds.sum())
    return probabilities


def person_shares(match_weights: FloatArray, persons: Sequence[Hashable]) -> tuple[IntArray, FloatArray]:
    """For candidates scored against one visitor, `persons[i]` the person of candidate i: each
    person's best-scoring row (in order of first appearance) and its `person_probabilities`."""
    best: dict[Hashable, int] = {}
    for row, person in enumerate(persons):
        held = best.get(person)
        if held is None or match_weights[row] > match_weights[held]:
            best[person] = row
    rows: IntArray = np.fromiter(best.values(), dtype=np.intp, count=len(best))
    return rows, person_probabilities(match_weights.take(rows))


class LinkState(Protocol):
    """The soft-link state a linker reads and changes (`linkage.visitor.SoftLinks`)."""

    def link_of(self, component: int) -> SoftLink | None: ...

    def members(self, root: int) -> set[int]: ...

    def root_of(self, component: int) -> int: ...

    def group_uniques(self, root: int, uniques_of: UniquesOf) -> dict[str, str]: ...

    def attach(self, link: SoftLink, record: Record) -> None: ...

    def detach(self, component: int, record: Record, reason: str) -> None: ...

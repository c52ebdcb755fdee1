"""The online customer-record scorer, compiled from the Splink customer model's JSON.

`CustomerScorer.from_model` reads the file `linker.misc.save_model_to_json` writes for a model
built from `customer_settings()` through the shared compiler (`linkage.splinkjson`), every
level recognised as a `CustomerLevel` of the customer catalogue. `score` rates one record against its
blocked candidates with rapidfuzz and numpy; no SQL engine runs. Its match weights equal
Splink's `linker.inference.score_pairs` on the same records and term frequencies
(tests/test_customer_scorer.py).
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from .._errors import ModelError
from ..splinkjson import Catalogue, CompiledModel, TermFrequencyAdjustment, compile_model, probabilities_from_weights
from ._catalogue import ATTRIBUTE_COLUMNS, CustomerAttributes, CustomerLevel

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

TermFrequencies = Callable[[str, str], float | None]
"""`term_frequency(column, value)`: the share of records in the population holding `value` in
`column` (Splink's `tf_<column>`), or None when unknown."""

# rapidfuzz scorers per level kind; cdist runs them over all candidates in one call.
_SCORERS: Final[Mapping[str, Any]] = {
    "jaro_winkler": JaroWinkler.similarity,
    "levenshtein": Levenshtein.distance,
    "damerau_levenshtein": DamerauLevenshtein.distance,
}
_SIMILARITIES: Final = frozenset({"jaro_winkler"})
# From this many candidates on, levels are chosen a column at a time (one cdist call per
# column, a few numpy operations per level); below it pair by pair in Python, which costs
# less than those calls' fixed overhead (measured here on blocked candidates of a 200,000-row
# import: 5x less at 1 candidate, 2x less at ~15, even at ~40-50, 1.3x more at ~75).
_VECTORISE_FROM: Final = 40

# One comparison's level choice for single pairs: `read` takes the value the levels test from a
# record, and `choose(read(left), read(right))` is the position of the first level before ELSE
# that holds, or the number of those levels (ELSE).
_Read = Callable[[CustomerAttributes], Any]
_Choose = Callable[[Any, Any], int]


def _recognise(sql: object, comparison: str, position: int) -> CustomerLevel:
    level = CustomerLevel.parse(sql)
    if level is None:
        raise ModelError(f"comparison {comparison!r}, level {position}: sql_condition {sql!r} is not in the catalogue")
    return level


def _check_term_frequency(column: str, weight: float, minimum_u: float) -> None:
    if column not in ATTRIBUTE_COLUMNS:
        raise ValueError("not a customer attribute")


CUSTOMER_CATALOGUE: Final[Catalogue[CustomerLevel]] = Catalogue("customer catalogue", _recognise, _check_term_frequency)


@dataclass(slots=True, eq=False)
class CustomerScores:
    """One record scored against n candidates; row i is candidate i.

    `match_weight[i]` = the scorer's prior + the sum of row i of `comparison_weights`
    (n x comparisons, in `CustomerScorer.comparison_names` order). Each entry there is the
    level's weight plus its term-frequency adjustment; `tf_adjustments` holds the adjustment
    alone (Splink's `mw_<c>` is the difference, `mw_tf_adj_<c>` the adjustment). `gammas` are
    Splink's comparison vector values (-1 on a null level). Read-only by convention."""

    match_weight: FloatArray
    match_probability: FloatArray
    comparison_weights: FloatArray
    tf_adjustments: FloatArray
    gammas: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.match_weight)


class CustomerScorer:
    """The Splink customer model compiled for Python: scores one record against many.

    Build it with `from_model(json_dict_or_path)`; SQL outside the customer catalogue, or
    numbers Splink itself would refuse, raise `ModelError` naming the comparison and level.
    Immutable and safe to share between threads."""

    __slots__ = (
        "_adjusted",
        "_comparisons",
        "_cutoffs",
        "_level_gammas",
        "_level_weights",
        "_offsets",
        "_pair_choices",
        "_tests",
        "prior_match_weight",
        "probability_two_random_records_match",
        "version",
    )

    def __init__(self, model: CompiledModel[CustomerLevel]) -> None:
        """Prefer `from_model`; this takes a model already compiled."""
        comparisons = self._comparisons = model.comparisons
        self.version = model.version
        self.probability_two_random_records_match = model.probability_two_random_records_match
        self.prior_match_weight = model.prior_match_weight
        # The loosest distance threshold per (column, kind) is a safe score_cutoff for rapidfuzz
        # (it stops counting there). Not for similarities: cdist's similarity cutoff rejects a
        # score exactly at the threshold (Jaro-Winkler 0.8 read as 0), which SQL's >= accepts.
        cutoffs: dict[tuple[str, str], int] = {}
        for comparison in comparisons:
            for compiled in comparison.levels:
                level = compiled.level
                if level.kind in _SCORERS and level.kind not in _SIMILARITIES:
                    key = (level.column, level.kind)
                    cutoffs[key] = max(cutoffs.get(key, 0), int(level.value))
        self._cutoffs = cutoffs
        # Per comparison, its tests before ELSE in order (a pair no test holds for is on ELSE,
        # position len(tests)); weight and gamma of (comparison, level position) in one flat
        # table each, at offset comparison * widest; and the levels with a tf adjustment.
        self._tests = tuple(tuple(level.level for level in c.levels[:-1]) for c in comparisons)
        self._pair_choices = tuple(_pair_choice(tests) for tests in self._tests)
        self._level_weights = model.level_weights().ravel()
        self._level_gammas = model.level_gammas().ravel()
        self._offsets = (np.arange(len(comparisons), dtype=np.intp) * model.widest).reshape(-1, 1)
        self._adjusted = model.adjusted_levels()

    @classmethod
    def from_model(cls, model: Mapping[str, Any] | str | os.PathLike[str]) -> CustomerScorer:
        """Compile a Splink customer model: the dict `save_model_to_json` returns, or the path
        of the file it wrote. Raises ModelError on anything the customer catalogue does not
        know or Splink would not load."""
        return cls(compile_model(model, CUSTOMER_CATALOGUE))

    @property
    def comparison_names(self) -> tuple[str, ...]:
        """Comparison names in model order: the columns of `CustomerScores.comparison_weights`."""
        return tuple(c.name for c in self._comparisons)

    def score(
        self, left: CustomerAttributes, candidates: Sequence[CustomerAttributes], term_frequency: TermFrequencies
    ) -> CustomerScores:
        """Score `left` against every candidate as Splink would score each pair.

        `term_frequency(column, value)` is asked only for values on a level with a
        term-frequency adjustment where that level was chosen; None means unknown, and as in
        Splink a side without a frequency takes the other side's, and a pair with neither gets
        no adjustment. A frequency must be positive and finite (ValueError otherwise)."""
        n = len(candidates)
        if n < _VECTORISE_FROM:
            # Pair by pair: the adjustments too, in Python, as one array (a few numpy calls
            # less per small call).
            flat = self._choose_by_pair(left, candidates)
            chosen = np.array(flat, dtype=np.intp).reshape(len(self._pair_choices), n)
            values = [0.0] * len(flat)
            for c, i, adjustment in self._adjusted:
                start = c * n
                rows = [row for row in range(n) if flat[start + row] == i]
                if rows:
                    adjusted = _adjust(adjustment, left, candidates, rows, term_frequency)
                    for row, value in zip(rows, adjusted, strict=True):
                        values[start + row] = value
            adjustments = np.array(values).reshape(chosen.shape)
        else:
            chosen = self._choose_by_column(left, candidates)
            adjustments = np.zeros(chosen.shape)
            for c, i, adjustment in self._adjusted:
                found = (chosen[c] == i).nonzero()[0]
                if len(found):
                    adjustments[c, found] = _adjust(adjustment, left, candidates, found.tolist(), term_frequency)
        index = chosen + self._offsets
        weights = self._level_weights.take(index)
        gammas = self._level_gammas.take(index)
        weights += adjustments
        total = np.add.reduce(weights, axis=0)
        total += self.prior_match_weight
        return CustomerScores(total, probabilities_from_weights(total), weights.T, adjustments.T, gammas.T)

    def _choose_by_pair(self, left: CustomerAttributes, candidates: Sequence[CustomerAttributes]) -> list[int]:
        """Each pair's level position per comparison (comparisons x candidates, flat, row by
        row), pair by pair with tests compiled from the catalogue's scalar ones
        (`_pair_choice`): cheaper than numpy's per-call cost for a few."""
        n = len(candidates)
        chosen: list[int] = []
        for read, choose in self._pair_choices:
            chosen.extend(map(choose, repeat(read(left), n), map(read, candidates)))
        return chosen

    def _choose_by_column(self, left: CustomerAttributes, candidates: Sequence[CustomerAttributes]) -> IntArray:
        """As `_choose_by_pair`, a column at a time: rapidfuzz's cdist and numpy masks."""
        columns = _Columns(left, candidates, self._cutoffs)
        chosen = np.empty((len(self._tests), len(candidates)), dtype=np.intp)
        for c, tests in enumerate(self._tests):
            # Splink's CASE takes the first level that holds: walking backwards, earlier
            # levels overwrite later ones.
            row = chosen[c]
            row.fill(len(tests))
            for i in range(len(tests) - 1, -1, -1):
                row[columns.holds(tests[i])] = i
        return chosen

    def waterfall(self, scores: CustomerScores, row: int) -> tuple[tuple[str, float], ...]:
        """Candidate `row`'s match weight taken apart: ("prior", prior weight), then
        (comparison name, level weight + term-frequency adjustment) per comparison. The
        weights sum to `scores.match_weight[row]` up to float rounding."""
        weights = scores.comparison_weights[row].tolist()
        return (("prior", self.prior_match_weight), *zip(self.comparison_names, weights, strict=True))

    def __repr__(self) -> str:
        return f"<CustomerScorer {self.version} {', '.join(self.comparison_names)}>"


class _Columns:
    """One scoring call's candidate values per column, with each column's string measures
    against the left value computed once however many levels test them."""

    __slots__ = ("_candidates", "_cutoffs", "_left", "_measures", "_n", "_present", "_values")

    def __init__(
        self,
        left: CustomerAttributes,
        candidates: Sequence[CustomerAttributes],
        cutoffs: Mapping[tuple[str, str], int],
    ) -> None:
        self._left = left
        self._candidates = candidates
        self._cutoffs = cutoffs
        self._n = len(candidates)
        self._values: dict[str, list[str | None]] = {}
        self._present: dict[str, BoolArray] = {}
        self._measures: dict[tuple[str, str], NDArray[Any]] = {}

    def values(self, column: str) -> list[str | None]:
        values = self._values.get(column)
        if values is None:
            values = self._values[column] = list(map(operator.attrgetter(column), self._candidates))
        return values

    def present(self, column: str) -> BoolArray:
        present = self._present.get(column)
        if present is None:
            present = self._present[column] = np.fromiter(
                map(operator.is_not, self.values(column), repeat(None)), dtype=np.bool_, count=self._n
            )
        return present

    def holds(self, level: CustomerLevel) -> BoolArray:
        """Where `level.holds(left, candidate)` for each candidate (SQL's NULL semantics)."""
        kind, column = level.kind, level.column
        if kind == "else":
            return np.ones(self._n, dtype=np.bool_)
        mine = self._left.value(column)
        if kind == "null":
            return np.ones(self._n, dtype=np.bool_) if mine is None else ~self.present(column)
        if mine is None:
            return np.zeros(self._n, dtype=np.bool_)
        if kind == "exact":  # None == mine is False, as in SQL
            return np.fromiter(map(operator.eq, self.values(column), repeat(mine)), dtype=np.bool_, count=self._n)
        if kind == "date_swapped":
            key = (mine[0:4], mine[8:10], mine[5:7])
            return np.array(
                [v is not None and (v[0:4], v[5:7], v[8:10]) == key for v in self.values(column)], dtype=np.bool_
            )
        if kind in _SCORERS:
            measure = self._measure(column, kind, mine)
            # In SQL a missing candidate value compares to nothing.
            within = measure >= level.value if kind in _SIMILARITIES else measure <= level.value
            result: BoolArray = within & self.present(column)
            return result
        raise ModelError(f"level kind {kind!r} has no evaluation")

    def _measure(self, column: str, kind: str, mine: str) -> NDArray[Any]:
        key = (column, kind)
        measure = self._measures.get(key)
        if measure is None:
            # float64 so a similarity compares with the threshold exactly as the scalar
            # function (and DuckDB) gives it; float32, cdist's default, would round it.
            # A missing value scores as "" here; `holds` masks it out.
            options: dict[str, Any] = (
                {"dtype": np.float64}
                if kind in _SIMILARITIES
                else {"dtype": np.int32, "score_cutoff": self._cutoffs[key]}
            )
            measure = self._measures[key] = process.cdist(
                [mine], [v or "" for v in self.values(column)], scorer=_SCORERS[kind], workers=1, **options
            )[0]
        return measure


def _pair_choice(tests: tuple[CustomerLevel, ...]) -> tuple[_Read, _Choose]:
    """The level choice of `CustomerLevel.holds` over `tests` in order, compiled once.

    On one column (every comparison of the catalogue) the SQL NULL rules are settled first: a
    pair with a value missing is on the first null level (no other level holds for it), a pair
    with both values on the first other level that holds. The exact level is one comparison, and
    consecutive levels on one string measure (Jaro-Winkler 0.92, then 0.8) share one call to
    it, compared with each threshold in turn as `holds` compares it."""
    otherwise = len(tests)
    columns = {level.column for level in tests}
    if len(columns) != 1:  # levels reading several columns: each its own test, in order

        def choose_any(left: CustomerAttributes, right: CustomerAttributes) -> int:
            for i, level in enumerate(tests):
                if level.holds(left.value(level.column), right.value(level.column)):
                    return i
            return otherwise

        return _whole_record, choose_any

    null_at = next((i for i, level in enumerate(tests) if level.kind == "null"), otherwise)
    others = [(i, level) for i, level in enumerate(tests) if level.kind != "null"]
    exact_at = -1
    if others and others[0][1].kind == "exact":
        exact_at = others[0][0]
        others = others[1:]
    steps = tuple(_steps(others))

    def choose(left: str | None, right: str | None) -> int:
        if left is None or right is None:
            return null_at
        if exact_at >= 0 and left == right:
            return exact_at
        for step in steps:
            position = step(left, right)
            if position >= 0:
                return position
        return otherwise

    return operator.attrgetter(columns.pop()), choose


def _whole_record(record: CustomerAttributes) -> CustomerAttributes:
    return record


def _steps(levels: list[tuple[int, CustomerLevel]]) -> list[Callable[[str, str], int]]:
    """Tests of non-null levels on two present values, each giving the position of the level
    that holds or -1; a run of levels on one string measure is one test."""
    steps: list[Callable[[str, str], int]] = []
    k = 0
    while k < len(levels):
        position, level = levels[k]
        kind = level.kind
        if kind in _SCORERS:
            ladder: list[tuple[float, int]] = []
            while k < len(levels) and levels[k][1].kind == kind:
                ladder.append((levels[k][1].value, levels[k][0]))
                k += 1
            steps.append(_measure_step(_SCORERS[kind], kind in _SIMILARITIES, tuple(ladder)))
            continue
        steps.append(_level_step(level, position))
        k += 1
    return steps


def _measure_step(
    measure: Callable[[str, str], float], similarity: bool, ladder: tuple[tuple[float, int], ...]
) -> Callable[[str, str], int]:
    if similarity:

        def at_least(left: str, right: str) -> int:
            score = measure(left, right)
            for threshold, position in ladder:
                if score >= threshold:
                    return position
            return -1

        return at_least

    def at_most(left: str, right: str) -> int:
        distance = measure(left, right)
        for threshold, position in ladder:
            if distance <= threshold:
                return position
        return -1

    return at_most


def _level_step(level: CustomerLevel, position: int) -> Callable[[str, str], int]:
    if level.kind == "exact":
        return lambda left, right: position if left == right else -1
    if level.kind == "date_swapped":
        return lambda left, right: (
            position if left[0:4] == right[0:4] and left[5:7] == right[8:10] and left[8:10] == right[5:7] else -1
        )
    return lambda left, right: position if level.holds(left, right) else -1


def _adjust(
    adjustment: TermFrequencyAdjustment,
    left: CustomerAttributes,
    candidates: Sequence[CustomerAttributes],
    rows: Sequence[int],
    term_frequency: TermFrequencies,
) -> list[float]:
    """The adjustment for the candidates in `rows` (all at the adjusted level)."""
    column = adjustment.column
    known: dict[str, float | None] = {}

    def lookup(value: str | None) -> float | None:
        if value is None:
            return None
        if value not in known:
            tf = term_frequency(column, value)
            if tf is not None and not (math.isfinite(tf) and tf > 0.0):
                raise ValueError(f"term frequency of a {column} value must be positive and finite, got {tf!r}")
            known[value] = tf
        return known[value]

    mine = lookup(left.value(column))
    out = [0.0] * len(rows)
    for k, row in enumerate(rows):
        theirs = lookup(candidates[row].value(column))
        sides = [tf for tf in (mine, theirs) if tf is not None]
        if sides:  # Splink: no adjustment where coalesce(tf_l, tf_r) is NULL
            greatest = max(*sides, adjustment.minimum_u)
            out[k] = adjustment.weight * (adjustment.log2_u_exact - math.log2(greatest))
    return out

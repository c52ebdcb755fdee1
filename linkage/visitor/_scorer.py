"""The online Fellegi-Sunter scorer, compiled from a Splink model JSON.

`VisitorScorer.from_model` reads the file `splink.Linker` saves (`linker.misc.save_model_to_json`)
through the shared compiler (`linkage.splinkjson`), every level recognised as a kind of the
visitor catalogue. `score` then rates one encoded profile against many with numpy alone; its
match weights equal Splink's `linker.inference.score_pairs` on the same records
(tests/test_scorer_parity.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

from .._errors import ModelError
from ..splinkjson import Catalogue, CompiledComparison, CompiledLevel, CompiledModel, compile_model
from ..splinkjson import probabilities_from_weights as probabilities_from_weights
from ._catalogue import Else, Level, TermFrequency, recognise_level
from ._encoding import BoolArray, EncodedProfiles, FloatArray, IntArray, encode_profiles
from ._profile import ProfileRecord
from ._test_plan import Always, Probe, RarerThan, TestPlan, atoms_of

# More tests per comparison make the (comparison, pattern) tables too large to be worth it: at
# 14, 16,384 patterns a comparison, 128 KiB of level table each (sized to the widest in use).
_MAX_SLOTS: Final = 14

ModelLevel: TypeAlias = CompiledLevel[Level]
ModelComparison: TypeAlias = CompiledComparison[Level]


def _check_term_frequency(column: str, weight: float, minimum_u: float) -> None:
    TermFrequency(column, weight=weight, minimum_u=minimum_u)


def _recognise(sql: object, comparison: str, position: int) -> Level:
    return recognise_level(sql, comparison=comparison, position=position)


VISITOR_CATALOGUE: Final[Catalogue[Level]] = Catalogue("catalogue", _recognise, _check_term_frequency, tf_prefix="tf_")


@dataclass(slots=True, eq=False)
class Scores:
    """One left profile scored against n candidates; row i is candidate i.

    `match_weight` = prior + the sum of row i of `comparison_weights` (n x comparisons, in
    `VisitorScorer.comparison_names` order); each entry is the level's weight plus its
    term-frequency adjustment, the latter also alone in `tf_adjustments` (Splink's `mw_<c>` is
    the difference, `mw_tf_adj_<c>` the adjustment). `tf_adjustments`, `gammas` (Splink's
    comparison vector values) and `levels` (the position of the level in its comparison's model
    list) are derived when asked: serving reads them only for the pair it links. So is
    `match_probability`: serving ranks candidates by weight and reads a probability only for the
    pair it links. Read-only by convention (not frozen: building a frozen dataclass costs more
    than some scoring calls)."""

    left_id: int
    candidate_ids: IntArray
    match_weight: FloatArray
    comparison_weights: FloatArray
    patterns: IntArray  # (comparisons, n): each pair's row of the scorer's level table
    level_table: IntArray  # the scorer's: pattern row -> level
    level_gammas: NDArray[np.int8]  # (comparisons, most levels): the gamma of each level
    # Per adjusted level: (comparison, adjustment per pair, the pairs it applies to).
    tf_parts: tuple[tuple[int, FloatArray, BoolArray], ...]
    _match_probability: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.candidate_ids)

    @property
    def match_probability(self) -> FloatArray:
        """Splink's match probability of each pair, from `match_weight` (computed once, when
        first read)."""
        if self._match_probability is None:
            self._match_probability = probabilities_from_weights(self.match_weight)
        return self._match_probability

    @property
    def tf_adjustments(self) -> FloatArray:
        """The term-frequency part of each entry of `comparison_weights`, (n, comparisons)."""
        adjustments = np.zeros(self.comparison_weights.shape)
        for c, adjustment, applies in self.tf_parts:
            np.copyto(adjustments[:, c], adjustment, where=applies)
        return adjustments

    @property
    def levels(self) -> IntArray:
        """The level of each pair in each comparison, (n, comparisons)."""
        levels: IntArray = self.level_table.take(self.patterns).T
        return levels

    @property
    def gammas(self) -> NDArray[np.int8]:
        """Splink's comparison vector values, (n, comparisons)."""
        comparisons = np.arange(self.levels.shape[1])
        gammas: NDArray[np.int8] = self.level_gammas[comparisons, self.levels]
        return gammas


@dataclass(frozen=True, slots=True)
class WaterfallStep:
    """One comparison's part in a pair's match weight."""

    comparison: str
    level_label: str
    comparison_vector_value: int
    level_weight: float  # log2(m / u) of the level, 0 for a null level
    tf_adjustment: float

    @property
    def match_weight(self) -> float:
        return self.level_weight + self.tf_adjustment


@dataclass(frozen=True, slots=True)
class Waterfall:
    """Why a pair scored what it did: the prior plus one step per comparison gives
    `match_weight` (up to float rounding), as in Splink's waterfall chart."""

    model_version: str
    left_id: int
    right_id: int
    prior_match_weight: float
    steps: tuple[WaterfallStep, ...]
    match_weight: float
    match_probability: float


class VisitorScorer:
    """A Splink visitor model compiled for numpy: scores one profile against many candidates.

    Build it with `from_model(json_dict_or_path)`; a model with SQL outside the catalogue, or
    numbers Splink itself would refuse, raises `ModelError`. Encode profiles once with
    `encode` (cache the result with the profile; it does not depend on the model), then
    `score(left, candidates)` is pure numpy. Immutable and safe to share between threads.
    """

    __slots__ = (
        "_combine",
        "_level_gammas",
        "_level_table",
        "_plan",
        "_rare_columns",
        "_tf_at_level",
        "_tf_steps",
        "_weight_table",
        "comparisons",
        "prior_match_weight",
        "probability_two_random_records_match",
        "settings_json",
        "version",
    )

    def __init__(self, model: CompiledModel[Level]) -> None:
        """Prefer `from_model`; this takes a model already compiled."""
        self.version = model.version
        self.settings_json = model.settings_json  # the Splink model it was compiled from
        self.comparisons = comparisons = model.comparisons
        self.probability_two_random_records_match = model.probability_two_random_records_match
        self.prior_match_weight = model.prior_match_weight

        # A level holds where any of its tests holds (a test being one atomic test or a
        # conjunction of them), and Splink's CASE picks the first level that holds. So each
        # comparison reads a few atomic tests; with its i-th atom worth 2**i, one matrix product
        # of the test rows gives each pair's pattern of atoms that hold, per comparison (exact in
        # float32), and tables built here map (comparison, pattern) to the level it decides.
        # Conjunctions cost nothing at scoring time: they are in the tables. The plan's Always
        # row adds each comparison's offset into the flat tables in the same product, and one
        # more row of the product, that offset alone, picks the prior from the end of the
        # weight table: one reduction of the weights taken then adds the comparisons in order
        # and the prior last, as a separate add of the prior did.
        level_tests = [
            [level.level.tests() if not isinstance(level.level, Else) else () for level in c.levels]
            for c in comparisons
        ]
        atoms = [
            list(dict.fromkeys(atom for tests in levels for test in tests for atom in atoms_of(test)))
            for levels in level_tests
        ]
        for comparison, used in zip(comparisons, atoms, strict=True):
            if len(used) > _MAX_SLOTS:
                raise ModelError(
                    f"comparison {comparison.name!r}: {len(used)} tests before ELSE, the scorer takes {_MAX_SLOTS}"
                )
            if Always() in used:  # only ELSE always holds, and it is not read
                raise ModelError(f"comparison {comparison.name!r}: a level before ELSE always holds")
        self._plan = TestPlan(atom for used in atoms for atom in used)
        self._rare_columns = frozenset(
            atom.column.removeprefix("tf_") for used in atoms for atom in used if isinstance(atom, RarerThan)
        )
        patterns = 1 << max(len(used) for used in atoms)
        # float32: sums of at most _MAX_SLOTS powers of two plus the table offsets are exact
        # integers far below 2**24, and sgemm on this size is about twice as fast as dgemm.
        combine = np.zeros((len(comparisons) + 1, self._plan.height), dtype=np.float32)
        combine[:, self._plan.row(Always())] = np.arange(len(comparisons) + 1) * patterns
        level_table = np.zeros((len(comparisons), patterns), dtype=np.int64)
        for c, used in enumerate(atoms):
            for bit, atom in enumerate(used):
                combine[c, self._plan.row(atom)] += float(1 << bit)
            bits = {atom: 1 << bit for bit, atom in enumerate(used)}
            else_level = len(comparisons[c].levels) - 1
            for pattern in range(patterns):
                level_table[c, pattern] = next(
                    (
                        i
                        for i, tests in enumerate(level_tests[c])
                        if any(all(pattern & bits[atom] for atom in atoms_of(test)) for test in tests)
                    ),
                    else_level,
                )
        weights = model.level_weights()
        self._combine = combine
        self._level_table = level_table.ravel()
        self._level_gammas = model.level_gammas()
        weight_table = [weights[c, i] for c, row in enumerate(level_table) for i in row]
        self._weight_table = np.array([*weight_table, self.prior_match_weight])

        tf_steps: list[tuple[int, int, str, float, float, float]] = []
        for c, i, tf in model.adjusted_levels():
            log2_minimum = math.log2(tf.minimum_u) if tf.minimum_u > 0.0 else -math.inf
            tf_steps.append((c, i, f"tf_{tf.column}", tf.weight, tf.log2_u_exact, log2_minimum))
        self._tf_steps = tuple(tf_steps)
        # Per tf step, the patterns that choose its level: a take instead of a level comparison.
        self._tf_at_level = tuple(
            np.array([c_row == c and level == i for c_row in range(len(comparisons)) for level in level_table[c_row]])
            for c, i, *_ in tf_steps
        )

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_model(cls, model: Mapping[str, Any] | str | os.PathLike[str]) -> VisitorScorer:
        """Compile a Splink model: the dict `save_model_to_json` returns, or the path of the
        file it wrote. Raises ModelError (naming the comparison and level) on anything the
        catalogue does not know or Splink would not load."""
        return cls(compile_model(model, VISITOR_CATALOGUE))

    # -- scoring ----------------------------------------------------------------------------

    @property
    def term_frequency_columns(self) -> frozenset[str]:
        """The record columns this model adjusts by term frequency (`top_ip`, `user_agent`)."""
        return frozenset(name.removeprefix("tf_") for _, _, name, *_ in self._tf_steps)

    @property
    def term_frequencies_read(self) -> frozenset[str]:
        """The record columns whose term frequencies this model reads: those it adjusts, and
        those a `Rare` level tests (the online index must count who sends each value)."""
        return self.term_frequency_columns | self._rare_columns

    @property
    def comparison_names(self) -> tuple[str, ...]:
        """Comparison names in model order: the columns of `Scores.comparison_weights`."""
        return tuple(c.name for c in self.comparisons)

    @staticmethod
    def encode(records: Iterable[ProfileRecord]) -> EncodedProfiles:
        """Encode profiles for `score` (see `encode_profiles`); independent of the model."""
        return encode_profiles(records)

    def probe(self, encoded: EncodedProfiles, row: int = 0) -> Probe:
        """Profile `row` of `encoded` prepared as the left side of `score`, with only what this
        model reads."""
        return self._plan.probe(encoded, row)

    def score(self, left: Probe | EncodedProfiles, candidates: EncodedProfiles) -> Scores:
        """Score one profile against every row of `candidates`: match weights, match
        probabilities and the per-comparison weights, as Splink computes them for the same
        pairs. `left` is a `Probe` (`probe(encoded, row)`, cheapest when one profile meets
        several batches) or an encoding of exactly one record."""
        if not isinstance(left, Probe):
            if len(left) != 1:
                raise ValueError(f"the left side is one profile, got {len(left)}")
            left = self._plan.probe(left)
        tests = self._plan.evaluate(left, candidates)  # (test, candidate), bool
        # The bool rows go straight into the product: numpy converts them inside dot, cheaper
        # than an astype first (and dot is cheaper than matmul at this size). Row c is
        # comparison c's flat table index; the last, the prior's.
        index = self._combine.dot(tests).astype(np.intp)
        weights = self._weight_table.take(index)
        tf_parts = []
        for step, at_level in zip(self._tf_steps, self._tf_at_level, strict=True):
            applies = at_level.take(index[step[0]])
            # Often no pair is at the level (the bundled model's: the same top IP): then skip it.
            if np.count_nonzero(applies):
                tf_parts.append(_tf_adjustment(step, left, candidates, applies, weights))
        total = np.add.reduce(weights, axis=0)  # what .sum() does, without its Python wrapper
        return Scores(
            left_id=left.unique_id,
            candidate_ids=candidates.unique_ids,
            match_weight=total,
            comparison_weights=weights[:-1].T,
            patterns=index[:-1],
            level_table=self._level_table,
            level_gammas=self._level_gammas,
            tf_parts=tuple(tf_parts),
        )

    def pair_weights(self, left: EncodedProfiles, right: EncodedProfiles) -> FloatArray:
        """The match weight of each pair (row i of `left`, row i of `right`): what `score`
        gives each left profile against its candidates, equal to the last bit, for a batch
        of many left profiles in one pass (a relink scores every anonymous visitor)."""
        tests = self._plan.evaluate_pairs(left, right)
        index = self._combine.dot(tests).astype(np.intp)
        weights = self._weight_table.take(index)
        for step, at_level in zip(self._tf_steps, self._tf_at_level, strict=True):
            applies = at_level.take(index[step[0]])
            if np.count_nonzero(applies):
                _tf_adjustment_pairs(step, left, right, applies, weights)
        total: FloatArray = np.add.reduce(weights, axis=0)
        return total

    def waterfall(self, scores: Scores, row: int) -> Waterfall:
        """The waterfall (prior, then each comparison's level and weight) of candidate `row`."""
        steps = []
        for c, comparison in enumerate(self.comparisons):
            level = comparison.levels[int(scores.levels[row, c])]
            tf = float(scores.tf_adjustments[row, c])
            steps.append(
                WaterfallStep(
                    comparison=comparison.name,
                    level_label=level.label,
                    comparison_vector_value=level.comparison_vector_value,
                    level_weight=level.match_weight,
                    tf_adjustment=tf,
                )
            )
        return Waterfall(
            model_version=self.version,
            left_id=scores.left_id,
            right_id=int(scores.candidate_ids[row]),
            prior_match_weight=self.prior_match_weight,
            steps=tuple(steps),
            match_weight=float(scores.match_weight[row]),
            match_probability=float(scores.match_probability[row]),
        )

    def __repr__(self) -> str:
        return f"<VisitorScorer {self.version} {', '.join(self.comparison_names)}>"


def _tf_adjustment(
    step: tuple[int, int, str, float, float, float],
    left: Probe,
    right: EncodedProfiles,
    at_level: BoolArray,
    weights: FloatArray,
) -> tuple[int, FloatArray, BoolArray]:
    """Splink's adjustment where the level was chosen and a tf value exists on either side:
    weight · (log2 u_exact - log2 greatest(coalesce(l, r), coalesce(r, l), minimum_u)).
    log2 of the greatest is the greatest of the log2s (log2 is monotonic), so the encoding's
    per-record log2 serves. Adds it to `weights`; returns it for `Scores.tf_parts`."""
    c, _, column, _, _, log2_minimum = step
    theirs = right.log2_tf[column]
    mine = left.log2_tf(column)
    if math.isnan(mine):
        # Only the candidate's value, where it has one; elsewhere no adjustment.
        log2_tf = np.maximum(theirs, log2_minimum)
        at_level &= ~np.isnan(theirs)
    else:
        # fmax skips NaN: a candidate without a value takes the left's.
        log2_tf = np.fmax(theirs, max(mine, log2_minimum))
    return c, _add_adjustment(step, log2_tf, at_level, weights), at_level


def _tf_adjustment_pairs(
    step: tuple[int, int, str, float, float, float],
    left: EncodedProfiles,
    right: EncodedProfiles,
    at_level: BoolArray,
    weights: FloatArray,
) -> None:
    """`_tf_adjustment` for pairs: the left's value is a row too."""
    _, _, column, _, _, log2_minimum = step
    theirs = right.log2_tf[column]
    mine = left.log2_tf[column]
    without = np.isnan(mine)
    # Where the left has no value only the candidate's counts, and only where it has one.
    at_level &= ~(without & np.isnan(theirs))
    floor = np.where(without, log2_minimum, np.maximum(mine, log2_minimum))
    _add_adjustment(step, np.fmax(theirs, floor), at_level, weights)


def _add_adjustment(
    step: tuple[int, int, str, float, float, float], log2_tf: FloatArray, at_level: BoolArray, weights: FloatArray
) -> FloatArray:
    """weight · (log2 u_exact - log2_tf), added to comparison c's weights where `at_level`;
    computed in `log2_tf`'s place, and returned."""
    c, _, _, weight, log2_u_exact, _ = step
    adjustment = np.subtract(log2_u_exact, log2_tf, out=log2_tf)
    if weight != 1.0:
        adjustment *= weight
    np.add(weights[c], adjustment, out=weights[c], where=at_level)
    return adjustment

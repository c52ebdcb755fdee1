"""The one compiler from a Splink model file to the numbers a numpy scorer runs on.

It resolves a model the way Splink does when it loads the same file: every level recognised
by the model's catalogue, Splink's gamma numbering, default m/u for levels training never
observed, m and u clamped at 1e-300, the prior as log2 odds, and each term-frequency
adjustment measured from the u of its comparison's exact-match level. What a catalogue adds is
how its levels are recognised and which term-frequency columns its records carry; how pairs
are put on levels (a test plan for profiles, string measures for customer records) stays with
each scorer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from .._errors import ModelError
from ._model_file import check_names, comparison_shape, read_model

FloatArray = NDArray[np.float64]

# Splink's floor for m and u (splink.internals.comparison_level.M_U_CLAMP_MIN): it refuses a
# smaller value on load and clamps at it when taking the log.
M_U_FLOOR: Final = 1e-300
# What Splink writes for a level training never saw (splink.internals.constants) and the
# probability it reads that as.
_LEVEL_NOT_OBSERVED: Final = "level not observed in training dataset"
_NOT_OBSERVED_PROBABILITY: Final = 1e-6

# The probability's constants as 0-d arrays: a ufunc converts a Python float on every call.
_MAX_EXPONENT: Final = np.array(1023.0)
_ONE: Final = np.array(1.0)
_MAX_EXPONENT.setflags(write=False)
_ONE.setflags(write=False)


class CatalogueLevel(Protocol):
    """What the compiler needs of a level a catalogue recognised."""

    @property
    def is_else(self) -> bool: ...

    def label(self) -> str: ...

    def exact_match_column(self) -> str | None: ...


L = TypeVar("L", bound=CatalogueLevel)


@dataclass(frozen=True, slots=True)
class Catalogue(Generic[L]):
    """A model family's part in compiling: `recognise(sql_condition, comparison, position)`
    returns the level or raises ModelError naming both; `check_term_frequency(column, weight,
    minimum_u)` raises ValueError where the records cannot carry that adjustment; `tf_prefix`,
    when set, is the only `term_frequency_adjustment_column_prefix` the records are named with."""

    name: str
    recognise: Callable[[object, str, int], L]
    check_term_frequency: Callable[[str, float, float], None]
    tf_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class TermFrequencyAdjustment:
    """Splink's adjustment on a level where a value's frequency is known on either side:
    weight · (log2 u_exact - log2 greatest(tf_l, tf_r, minimum_u)), a side without a frequency
    taking the other's; u_exact is the u of the comparison's exact-match level on `column`."""

    column: str
    weight: float
    minimum_u: float
    log2_u_exact: float


@dataclass(frozen=True, slots=True)
class CompiledLevel(Generic[L]):
    """One level with the numbers Splink would use for it.

    `comparison_vector_value` is Splink's gamma: -1 for a null level, else counting down from
    the first level to 0 for the last. `term_frequency` is set only where Splink adjusts (not
    on null or else levels, not with weight 0)."""

    level: L
    label: str
    comparison_vector_value: int
    is_null_level: bool
    m_probability: float | None
    u_probability: float | None
    match_weight: float  # log2(m / u), 0 on a null level
    term_frequency: TermFrequencyAdjustment | None = None


@dataclass(frozen=True, slots=True)
class CompiledComparison(Generic[L]):
    """A comparison: its name (Splink's `output_column_name`, so its weights are `mw_<name>`
    and `mw_tf_adj_<name>` in Splink's output) and its levels in model order."""

    name: str
    levels: tuple[CompiledLevel[L], ...]


@dataclass(frozen=True, slots=True)
class CompiledModel(Generic[L]):
    """A model file resolved: comparisons in model order, the prior, and the model's version."""

    comparisons: tuple[CompiledComparison[L], ...]
    probability_two_random_records_match: float
    version: str
    settings_json: str = ""  # the model file as JSON (canonical: sorted keys), for Splink to run

    @property
    def prior_match_weight(self) -> float:
        p = self.probability_two_random_records_match
        return math.log2(p / (1.0 - p))

    @property
    def comparison_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.comparisons)

    @property
    def widest(self) -> int:
        return max(len(c.levels) for c in self.comparisons)

    def level_weights(self) -> FloatArray:
        """(comparisons, widest): the match weight of level i of comparison c, 0 past its end."""
        weights = np.zeros((len(self.comparisons), self.widest))
        for c, comparison in enumerate(self.comparisons):
            weights[c, : len(comparison.levels)] = [level.match_weight for level in comparison.levels]
        return weights

    def level_gammas(self) -> NDArray[np.int8]:
        """(comparisons, widest): Splink's comparison vector value of each level, 0 past its end."""
        gammas = np.zeros((len(self.comparisons), self.widest), dtype=np.int8)
        for c, comparison in enumerate(self.comparisons):
            gammas[c, : len(comparison.levels)] = [level.comparison_vector_value for level in comparison.levels]
        return gammas

    def adjusted_levels(self) -> tuple[tuple[int, int, TermFrequencyAdjustment], ...]:
        """(comparison, level position, adjustment) of every level with a term-frequency adjustment."""
        return tuple(
            (c, i, level.term_frequency)
            for c, comparison in enumerate(self.comparisons)
            for i, level in enumerate(comparison.levels)
            if level.term_frequency is not None
        )


def compile_model(model: Mapping[str, Any] | str | os.PathLike[str], catalogue: Catalogue[L]) -> CompiledModel[L]:
    """Resolve a Splink model (the dict `save_model_to_json` returns, or the path of the file it
    wrote) against `catalogue`. Raises ModelError, naming the comparison and level, on anything
    the catalogue does not know or Splink would not load."""
    file = read_model(model, catalogue.name)
    if catalogue.tf_prefix is not None:
        tf_prefix = file.model.get("term_frequency_adjustment_column_prefix", "tf_")
        if tf_prefix != catalogue.tf_prefix:
            raise ModelError(
                f"term_frequency_adjustment_column_prefix {tf_prefix!r}: the records have {catalogue.tf_prefix}<column>"
            )
    comparisons = tuple(_compile_comparison(raw, i, catalogue) for i, raw in enumerate(file.comparisons))
    check_names([c.name for c in comparisons])
    settings_json = json.dumps(file.model, sort_keys=True, separators=(",", ":"))
    return CompiledModel(comparisons, file.prior, model_version(file.model), settings_json)


def model_version(model: Mapping[str, Any]) -> str:
    """A model's version: the first 12 hex digits of the SHA-256 of its canonical JSON (sorted
    keys, no whitespace), so the same model has the same version however it was written."""
    try:
        canonical = json.dumps(model, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ModelError(f"the model is not plain JSON: {e}") from e
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def probabilities_from_weights(match_weight: FloatArray) -> FloatArray:
    """Splink's match probability for each match weight w: 1 / (1 + 2^-w), with -w capped so
    that 2^-w never overflows. Splink's own value for w >= 0; below it writes 2^w / (1 + 2^w),
    the same up to a rounding (and, below w = -1023, a difference under 1e-307)."""
    power = np.negative(match_weight)
    np.minimum(power, _MAX_EXPONENT, out=power)
    np.exp2(power, out=power)
    power += _ONE
    probability: FloatArray = np.reciprocal(power, out=power)
    return probability


def _compile_comparison(raw: object, index: int, catalogue: Catalogue[L]) -> CompiledComparison[L]:
    name, raw_levels = comparison_shape(raw, index)
    levels = [catalogue.recognise(raw_level.get("sql_condition"), name, p) for p, raw_level in enumerate(raw_levels)]
    # Without a final ELSE Splink's CASE leaves some pairs NULL and their match weight NULL.
    if not levels[-1].is_else or any(level.is_else for level in levels[:-1]):
        raise ModelError(f"comparison {name!r}: ELSE must be the last level, and only the last")

    is_null = [_flag(raw_level, "is_null_level", name, p) for p, raw_level in enumerate(raw_levels)]
    non_null = sum(not n for n in is_null)
    if non_null < 2:
        raise ModelError(f"comparison {name!r}: needs at least two levels that are not null levels")
    # Splink's numbering: null levels -1, the others from non_null - 1 down to 0 in order.
    gammas: list[int] = []
    counter = non_null - 1
    for null in is_null:
        gammas.append(-1 if null else counter)
        counter -= 0 if null else 1
    default_m, default_u = _default_m_u(non_null)

    m_values: list[float | None] = []
    u_values: list[float | None] = []
    for position, raw_level in enumerate(raw_levels):
        if is_null[position]:
            m_values.append(None)
            u_values.append(None)
            continue
        gamma = gammas[position]
        m_values.append(_probability(raw_level, "m_probability", default_m[gamma], name, position))
        u_values.append(_probability(raw_level, "u_probability", default_u[gamma], name, position))

    compiled: list[CompiledLevel[L]] = []
    for position, raw_level in enumerate(raw_levels):
        level = levels[position]
        m, u = m_values[position], u_values[position]
        weight = 0.0 if m is None or u is None else math.log2(max(m, M_U_FLOOR) / max(u, M_U_FLOOR))
        label = raw_level.get("label_for_charts")
        compiled.append(
            CompiledLevel(
                level=level,
                label=label if isinstance(label, str) and label else level.label(),
                comparison_vector_value=gammas[position],
                is_null_level=is_null[position],
                m_probability=m,
                u_probability=u,
                match_weight=weight,
                term_frequency=_term_frequency(raw_level, position, levels, is_null, u_values, name, catalogue),
            )
        )
    return CompiledComparison(name=name, levels=tuple(compiled))


def _flag(raw_level: Mapping[str, Any], key: str, comparison: str, position: int) -> bool:
    value = raw_level.get(key, False)
    if not isinstance(value, bool):
        raise ModelError(f"comparison {comparison!r}, level {position}: {key} must be true or false, got {value!r}")
    return value


def _default_m_u(levels: int) -> tuple[list[float], list[float]]:
    """Splink's starting m and u for a comparison of `levels` non-null levels, by gamma (what
    it uses when the model file has no value: a level training did not estimate)."""
    m = [(1 - 0.95) / (levels - 1)] * (levels - 1) + [0.95]
    if levels == 2:
        weights = [-5.0]
    else:
        step = (3.0 - -5.0) / (levels - 2)
        weights = [-5.0 + i * step for i in range(levels - 1)]
    weights.append(10.0)
    u = [mi / 2**w for mi, w in zip(m, weights, strict=True)]
    return m, u


def _probability(raw_level: Mapping[str, Any], key: str, default: float, comparison: str, position: int) -> float:
    value = raw_level.get(key)
    if value is None:
        return default
    if value == _LEVEL_NOT_OBSERVED:
        return _NOT_OBSERVED_PROBABILITY
    if isinstance(value, bool) or not isinstance(value, int | float) or not M_U_FLOOR <= value <= 1.0:
        raise ModelError(f"comparison {comparison!r}, level {position}: {key} must be in [1e-300, 1], got {value!r}")
    return float(value)


def _term_frequency(
    raw_level: Mapping[str, Any],
    position: int,
    levels: list[L],
    is_null: list[bool],
    u_values: list[float | None],
    comparison: str,
    catalogue: Catalogue[L],
) -> TermFrequencyAdjustment | None:
    column = raw_level.get("tf_adjustment_column")
    if column is None:
        return None
    where = f"comparison {comparison!r}, level {position}"
    # Splink saves no tf_adjustment_weight of 0 and reads a missing one as 1.
    weight = raw_level.get("tf_adjustment_weight", 1.0)
    minimum_u = raw_level.get("tf_minimum_u_value", 0.0)
    for key, value in (("tf_adjustment_weight", weight), ("tf_minimum_u_value", minimum_u)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ModelError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
    if not isinstance(column, str) or not column:
        raise ModelError(f"{where}: tf_adjustment_column must be a non-empty string, got {column!r}")
    try:
        catalogue.check_term_frequency(column, float(weight), float(minimum_u))
    except ValueError as e:
        raise ModelError(f"{where}: term-frequency adjustment on {column!r}: {e}") from None
    # Splink makes no adjustment on null and else levels, nor with weight 0.
    if is_null[position] or levels[position].is_else or weight == 0:
        return None
    if _flag(raw_level, "disable_tf_exact_match_detection", comparison, position):
        exact = position
    else:
        # Splink measures from the u of the first exact-match level on the column.
        found = [i for i, level in enumerate(levels) if level.exact_match_column() == column.lower()]
        if not found:
            raise ModelError(f"{where}: term-frequency adjustment on {column!r} but no exact-match level on it")
        exact = found[0]
    u_exact = u_values[exact]
    if u_exact is None:
        raise ModelError(f"{where}: term-frequency adjustment measured from level {exact}, a null level without u")
    return TermFrequencyAdjustment(column, float(weight), float(minimum_u), math.log2(u_exact))

"""The catalogue of comparison levels that training and the online scorer both understand.

A Splink model is a list of comparisons, each an ordered list of levels whose `sql_condition`
decides, first true wins, which level a pair of records falls in. Splink executes that SQL; the
online path must not. So every level the visitor model uses is a *kind* from this catalogue,
and each kind can

- render its `sql_condition` (DuckDB dialect, columns as `"col_l"` / `"col_r"`): training puts
  that string into the Splink settings, so it ends up verbatim in the model JSON;
- be recognised back from a model's `sql_condition` (`recognise_level`): a strict pattern
  extracts the parameters, and the level is accepted only if rendering them gives back the
  very same string; anything else is a `ModelError`;
- be evaluated in numpy, one profile against many: a level names the atomic `Test`s it holds
  on, and a `TestPlan` (`linkage._test_plan`) evaluates all the tests of a model in a few
  vectorised calls on profiles encoded once by `encode_profiles` (`linkage._profile_encoding`),
  with SQL's NULL semantics (a condition that would be NULL in SQL is not true).

The catalogue produces SQL plans; only Splink executes SQL; the scorer executes numpy.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Final

import numpy as np

from .._errors import ModelError
from ._encoding import (
    COLUMNS,
    LIST_TYPES,
    LIST_WIDTHS,
    POINTS,
    SPANS,
    BoolArray,
    ColumnType,
    EncodedProfiles,
    require_column,
)
from ._test_plan import (
    AllOf,
    Always,
    ArcCosineAtLeast,
    EndsBefore,
    Equal,
    IsNull,
    JaccardAtLeast,
    RarerThan,
    Shares,
    Test,
    TestPlan,
    atoms_of,
)

# Splink's own mean Earth radius (splink.internals.comparison_level_sql).
EARTH_RADIUS_KM: Final = 6371.0


# --------------------------------------------------------------------------------------------
# The level kinds

_NAME = r"([a-z][a-z0-9_]*)"


class Level(ABC):
    """A comparison-level kind: SQL for Splink, a recogniser for model files, tests for numpy."""

    is_null_level: ClassVar[bool] = False
    _pattern: ClassVar[re.Pattern[str]]

    @abstractmethod
    def sql(self) -> str:
        """The `sql_condition` Splink runs (DuckDB dialect)."""

    @abstractmethod
    def label(self) -> str:
        """A short label for charts and waterfalls."""

    @abstractmethod
    def tests(self) -> tuple[Test, ...]:
        """The level holds exactly where any of these tests holds (where its SQL is TRUE)."""

    @property
    def is_else(self) -> bool:
        """Whether this is the ELSE level (every other pair)."""
        return False

    def exact_match_column(self) -> str | None:
        """The column if this level is a plain exact match (what Splink's TF adjustment looks
        for to find "the u of the exact match level"), else None."""
        return None

    def holds(self, left: EncodedProfiles, right: EncodedProfiles) -> BoolArray:
        """Where the level's condition is TRUE for `left` (one profile) against each of
        `right`. For tests and inspection; the scorer evaluates all levels at once."""
        if len(left) != 1:
            raise ValueError(f"the left side is one profile, got {len(left)}")
        tests = self.tests()
        plan = TestPlan(tests)
        rows = [plan.row(test) for test in tests]
        held: BoolArray = np.logical_or.reduce(plan.evaluate(plan.probe(left), right)[rows], axis=0)
        return held

    @classmethod
    @abstractmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        """Build the level from its pattern's groups; ValueError if they make no sense."""

    @classmethod
    def parse(cls, sql: str) -> Level | None:
        """The level of this kind whose rendering is exactly `sql`, else None.

        Raises ValueError when the text has this kind's shape but parameters the catalogue
        refuses (an unknown column, a threshold out of range)."""
        match = cls._pattern.fullmatch(sql)
        if match is None:
            return None
        level = cls._from_match(match)
        return level if level.sql() == sql else None


@dataclass(frozen=True, slots=True)
class NullLevel(Level):
    """Either side is NULL in any of `column_names`: no evidence, match weight 0.

    For a list column NULL is "no evidence"; an empty list is not NULL (the schema never has one)."""

    column_names: tuple[str, ...]
    is_null_level: ClassVar[bool] = True
    _pattern: ClassVar[re.Pattern[str]] = re.compile(
        rf'"{_NAME}_l" IS NULL OR "\1_r" IS NULL(?: OR "{_NAME}_l" IS NULL OR "\2_r" IS NULL)*'
    )

    def __post_init__(self) -> None:
        if not self.column_names or len(set(self.column_names)) != len(self.column_names):
            raise ValueError("a null level needs one or more distinct columns")
        for column in self.column_names:
            require_column(column)

    def sql(self) -> str:
        return " OR ".join(f'"{c}_l" IS NULL OR "{c}_r" IS NULL' for c in self.column_names)

    def label(self) -> str:
        return f"{' or '.join(self.column_names)} missing"

    def tests(self) -> tuple[Test, ...]:
        return tuple(IsNull(c) for c in self.column_names)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        # A repeated group keeps only its last capture, so read the columns off the text.
        return cls(tuple(re.findall(rf'"{_NAME}_l" IS NULL', match.group(0))))


@dataclass(frozen=True, slots=True)
class ExactMatch(Level):
    """The two values of a string column are equal (NULL equals nothing).

    A model level may add a term-frequency adjustment (`TermFrequency`); that is a property of
    the level in the model, not of its SQL."""

    column: str
    _pattern: ClassVar[re.Pattern[str]] = re.compile(rf'"{_NAME}_l" = "\1_r"')

    def __post_init__(self) -> None:
        require_column(self.column, ColumnType.STRING)

    def sql(self) -> str:
        return f'"{self.column}_l" = "{self.column}_r"'

    def label(self) -> str:
        return f"same {self.column}"

    def tests(self) -> tuple[Test, ...]:
        return (Equal(self.column),)

    def exact_match_column(self) -> str | None:
        return self.column

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls(match.group(1))


@dataclass(frozen=True, slots=True)
class ListOverlap(Level):
    """The two lists share at least `at_least` (>= 1) elements.

    At least 1, because DuckDB's list_intersect(x, NULL) is an empty list, not NULL: with a
    threshold of 0 a NULL right side would pass. From 1 up, a NULL on either side fails."""

    column: str
    at_least: int
    _pattern: ClassVar[re.Pattern[str]] = re.compile(rf'len\(list_intersect\("{_NAME}_l", "\1_r"\)\) >= ([1-9][0-9]*)')

    def __post_init__(self) -> None:
        require_column(self.column, *LIST_TYPES)
        if isinstance(self.at_least, bool) or not isinstance(self.at_least, int):
            raise ValueError(f"at_least must be an int, got {self.at_least!r}")
        if not 1 <= self.at_least <= LIST_WIDTHS[self.column]:
            raise ValueError(f"at_least must be in 1..{LIST_WIDTHS[self.column]}, got {self.at_least}")

    def sql(self) -> str:
        return f'len(list_intersect("{self.column}_l", "{self.column}_r")) >= {self.at_least}'

    def label(self) -> str:
        return f"{self.at_least}+ shared {self.column}"

    def tests(self) -> tuple[Test, ...]:
        return (Shares(self.column, self.at_least),)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls(match.group(1), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class ListJaccard(Level):
    """Jaccard similarity of the two lists (as sets) is at least `at_least`, a fraction p/q.

    Tested in integers, q·|l∩r| >= p·(|l| + |r| - |l∩r|), so no float rounding sits at the
    threshold (1/5 is not a double; 1·5 >= 1·5 is exact)."""

    column: str
    at_least: Fraction
    _pattern: ClassVar[re.Pattern[str]] = re.compile(
        rf'([1-9][0-9]*) \* len\(list_intersect\("{_NAME}_l", "\2_r"\)\) >= ([1-9][0-9]*) \* '
        rf'\(len\("\2_l"\) \+ len\("\2_r"\) - len\(list_intersect\("\2_l", "\2_r"\)\)\)'
    )

    def __post_init__(self) -> None:
        require_column(self.column, *LIST_TYPES)
        if not isinstance(self.at_least, Fraction) or not 0 < self.at_least <= 1:
            raise ValueError(f"at_least must be a Fraction in (0, 1], got {self.at_least!r}")
        if self.at_least.denominator > 1000:
            raise ValueError(f"at_least {self.at_least} is finer than 1/1000")

    def sql(self) -> str:
        c, p, q = self.column, self.at_least.numerator, self.at_least.denominator
        intersection = f'len(list_intersect("{c}_l", "{c}_r"))'
        return f'{q} * {intersection} >= {p} * (len("{c}_l") + len("{c}_r") - {intersection})'

    def label(self) -> str:
        return f"{self.column} Jaccard >= {self.at_least}"

    def tests(self) -> tuple[Test, ...]:
        return (JaccardAtLeast(self.column, self.at_least.numerator, self.at_least.denominator),)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls(match.group(2), Fraction(int(match.group(3)), int(match.group(1))))


@dataclass(frozen=True, slots=True)
class WithinKm(Level):
    """The two points are at most `km` apart along a great circle (Earth radius 6371 km).

    The cosine of the central angle is the dot product of the two unit vectors, and the level
    holds where it is at least cos(km / R). Not the haversine: that needs sines of per-pair
    differences, which numpy's SIMD routines and DuckDB's libm may round differently, so a
    pair on the boundary could fall either way. Here each side's vector comes from its own
    sines and cosines (libm on both sides; the encoding precomputes them) and then only
    products and sums follow, which IEEE 754 makes identical on both sides. Resolution is well
    under a metre at the thresholds used; not meant for thresholds below 10 m."""

    latitude: str
    longitude: str
    km: float
    _pattern: ClassVar[re.Pattern[str]] = re.compile(
        rf'cos\(radians\("{_NAME}_l"\)\) \* cos\(radians\("{_NAME}_l"\)\) \* '
        rf'\(cos\(radians\("\1_r"\)\) \* cos\(radians\("\2_r"\)\)\) \+ '
        rf'cos\(radians\("\1_l"\)\) \* sin\(radians\("\2_l"\)\) \* '
        rf'\(cos\(radians\("\1_r"\)\) \* sin\(radians\("\2_r"\)\)\) \+ '
        rf'sin\(radians\("\1_l"\)\) \* sin\(radians\("\1_r"\)\) '
        rf">= cos\(([0-9]+\.[0-9]+) / 6371\.0\)"
    )

    def __post_init__(self) -> None:
        if (self.latitude, self.longitude) not in POINTS:
            raise ValueError(f"({self.latitude}, {self.longitude}) is not a point; points are {POINTS}")
        # Beyond half the circumference the cosine turns back up and the test means nothing.
        if not (isinstance(self.km, float) and 0.01 <= self.km <= math.pi * EARTH_RADIUS_KM):
            raise ValueError(f"km must be a float in [0.01, {math.pi * EARTH_RADIUS_KM:.0f}], got {self.km!r}")
        # DuckDB reads the literal as a DECIMAL; with at most 15 digits it converts exactly,
        # and cos(km / 6371.0) is then the same double on both sides.
        if len(repr(self.km).replace(".", "").strip("0")) > 15:
            raise ValueError(f"km {self.km!r} has more than 15 significant digits")

    @property
    def threshold(self) -> float:
        """cos(km / R) as DuckDB computes it: a correctly rounded quotient, then libm's cos."""
        return math.cos(self.km / EARTH_RADIUS_KM)

    def sql(self) -> str:
        def vector(side: str) -> tuple[str, str, str]:
            lat, lon = f'radians("{self.latitude}_{side}")', f'radians("{self.longitude}_{side}")'
            return f"cos({lat}) * cos({lon})", f"cos({lat}) * sin({lon})", f"sin({lat})"

        (xl, yl, zl), (xr, yr, zr) = vector("l"), vector("r")
        return f"{xl} * ({xr}) + {yl} * ({yr}) + {zl} * {zr} >= cos({self.km!r} / {EARTH_RADIUS_KM!r})"

    def label(self) -> str:
        return f"within {self.km:g} km"

    def tests(self) -> tuple[Test, ...]:
        return (ArcCosineAtLeast((self.latitude, self.longitude), self.threshold),)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls(match.group(1), match.group(2), float(match.group(3)))


@dataclass(frozen=True, slots=True)
class Successive(Level):
    """One span ended before the other began, and began at least `gap_seconds` after it did.

    On spans of whole seconds (first seen, last seen of a SPANS pair). Two cookies of one
    browser follow one another; a browser that drops its cookies after a fixed lifetime starts
    the next one at least that long after the last began. Two devices in use at once overlap."""

    first: str
    last: str
    gap_seconds: int
    _pattern: ClassVar[re.Pattern[str]] = re.compile(
        rf'"{_NAME}_l" < "{_NAME}_r" AND "\2_r" - "\2_l" >= ([0-9]+) OR "\1_r" < "\2_l" AND "\2_l" - "\2_r" >= \3'
    )

    def __post_init__(self) -> None:
        if (self.first, self.last) not in SPANS:
            raise ValueError(f"({self.first}, {self.last}) is not a span; spans are {SPANS}")
        if isinstance(self.gap_seconds, bool) or not isinstance(self.gap_seconds, int):
            raise ValueError(f"gap_seconds must be an int, got {self.gap_seconds!r}")
        if not 0 <= self.gap_seconds <= 10 * 366 * 86_400:
            raise ValueError(f"gap_seconds must be in 0..ten years, got {self.gap_seconds}")

    def sql(self) -> str:
        first, last, gap = self.first, self.last, self.gap_seconds
        return (
            f'"{last}_l" < "{first}_r" AND "{first}_r" - "{first}_l" >= {gap} OR '
            f'"{last}_r" < "{first}_l" AND "{first}_l" - "{first}_r" >= {gap}'
        )

    def label(self) -> str:
        if not self.gap_seconds:
            return "one after the other"
        days = self.gap_seconds / 86_400
        return (
            f"one after the other, {days:g}+ days apart"
            if days >= 1
            else f"one after the other, {self.gap_seconds}+ s apart"
        )

    def tests(self) -> tuple[Test, ...]:
        return (EndsBefore((self.first, self.last), self.gap_seconds),)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls(match.group(2), match.group(1), int(match.group(3)))


@dataclass(frozen=True, slots=True)
class Rare(Level):
    """The value is rare on both sides: its term frequency (`tf_<column>`, the share of
    profiles with it) is below `below` on each (NULL is not rare). Beside an exact match, a
    level of its own for rare values, estimated as one: unlike a term-frequency adjustment it
    says nothing about common values, which keep the weight of the plain match."""

    column: str  # the tf_ column
    below: float
    _pattern: ClassVar[re.Pattern[str]] = re.compile(rf'"(tf_{_NAME[1:-1]})_l" < ([0-9][0-9.e-]*) AND "\1_r" < \2')

    def __post_init__(self) -> None:
        require_column(self.column, ColumnType.TERM_FREQUENCY)
        if not (isinstance(self.below, float) and 0.0 < self.below < 1.0):
            raise ValueError(f"below must be a float in (0, 1), got {self.below!r}")

    def sql(self) -> str:
        return f'"{self.column}_l" < {self.below!r} AND "{self.column}_r" < {self.below!r}'

    def label(self) -> str:
        return f"rare {self.column.removeprefix('tf_')} (under {self.below:g} of profiles)"

    def tests(self) -> tuple[Test, ...]:
        return (RarerThan(self.column, math.log2(self.below)),)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls(match.group(1), float(match.group(2)))


@dataclass(frozen=True, slots=True)
class Both(Level):
    """Both levels hold (SQL's AND): e.g. the same user agent, used one after the other.

    The first part is a catalogue level of a single test, neither a null, else nor conjunction
    level; the second is one too, or another `Both`, so that three or more conditions chain:
    the same home, and the same user agent, used one after the other."""

    first: Level
    second: Level
    _pattern: ClassVar[re.Pattern[str]] = re.compile(r"\((.+)\) AND \((.+)\)")

    def __post_init__(self) -> None:
        for part, chains in ((self.first, False), (self.second, True)):
            if chains and isinstance(part, Both):
                continue
            if isinstance(part, NullLevel | Else | Both) or len(part.tests()) != 1:
                raise ValueError(f"a part of Both must be a single-test level, got {part!r}")

    def sql(self) -> str:
        return f"({self.first.sql()}) AND ({self.second.sql()})"

    def label(self) -> str:
        return f"{self.first.label()}, {self.second.label()}"

    def tests(self) -> tuple[Test, ...]:
        return (AllOf((self.first.tests()[0], *atoms_of(self.second.tests()[0]))),)

    @classmethod
    def parse(cls, sql: str) -> Level | None:
        # The split is ambiguous in a regular expression: try each ") AND (" in turn.
        if not (sql.startswith("(") and sql.endswith(")")):
            return None
        start = 0
        while (at := sql.find(") AND (", start)) >= 0:
            start = at + 1
            first, rest = sql[1:at], sql[at + 7 : -1]
            parts = [_single_level(first), _single_level(rest) or cls.parse(rest)]
            if parts[0] is not None and parts[1] is not None:
                level = cls(parts[0], parts[1])
                if level.sql() == sql:
                    return level
        return None

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        raise NotImplementedError  # parse is overridden


def _single_level(sql: str) -> Level | None:
    for kind in _PARTS:
        level = kind.parse(sql)
        if level is not None:
            return level
    return None


@dataclass(frozen=True, slots=True)
class Else(Level):
    """Every other pair. The last level of a comparison, and only the last."""

    _pattern: ClassVar[re.Pattern[str]] = re.compile("ELSE")

    @property
    def is_else(self) -> bool:
        return True

    def sql(self) -> str:
        return "ELSE"

    def label(self) -> str:
        return "all other"

    def tests(self) -> tuple[Test, ...]:
        return (Always(),)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> Level:
        return cls()


CATALOGUE: Final[tuple[type[Level], ...]] = (
    NullLevel,
    ExactMatch,
    ListOverlap,
    ListJaccard,
    WithinKm,
    Successive,
    Rare,
    Both,
    Else,
)
# The kinds a Both may join.
_PARTS: Final[tuple[type[Level], ...]] = (ExactMatch, ListOverlap, ListJaccard, WithinKm, Successive, Rare)


def recognise_level(sql: object, *, comparison: str, position: int) -> Level:
    """The catalogue level whose rendering is exactly `sql`.

    Raises ModelError naming the comparison and the level's position (0-based, in model order)
    when no kind renders that text, or when it has a known shape with parameters the catalogue
    refuses."""
    where = f"comparison {comparison!r}, level {position}"
    if not isinstance(sql, str):
        raise ModelError(f"{where}: sql_condition must be a string, got {sql!r}")
    for kind in CATALOGUE:
        try:
            level = kind.parse(sql)
        except ValueError as e:
            raise ModelError(f"{where}: {e} in sql_condition {sql!r}") from None
        if level is not None:
            return level
    raise ModelError(
        f"{where}: sql_condition {sql!r} is not a level the online scorer knows; "
        "build comparisons from the visitor catalogue (linkage.modelling) so that the scorer can evaluate them"
    )


@dataclass(frozen=True, slots=True)
class TermFrequency:
    """A term-frequency adjustment on a level, as Splink applies it.

    Where the level holds and a tf value exists on either side, the level's weight gains
    `weight · (log2(u_exact) - log2(max(tf_l, tf_r, minimum_u)))`, u_exact being the u of the
    comparison's exact-match level on `column` (a side without a tf takes the other side's)."""

    column: str
    weight: float = 1.0
    minimum_u: float = 0.0

    def __post_init__(self) -> None:
        if COLUMNS.get(f"tf_{self.column}") is not ColumnType.TERM_FREQUENCY:
            raise ValueError(f"column {self.column!r} has no tf_{self.column} term-frequency field in ProfileRecord")
        if not (math.isfinite(self.weight) and 0.0 <= self.weight <= 1.0):
            raise ValueError(f"tf weight must be in [0, 1], got {self.weight!r}")
        if not (math.isfinite(self.minimum_u) and 0.0 <= self.minimum_u < 1.0):
            raise ValueError(f"tf minimum u must be in [0, 1), got {self.minimum_u!r}")


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """One level as training declares it: a catalogue kind, an optional label and TF adjustment."""

    level: Level
    label: str | None = None
    term_frequency: TermFrequency | None = None

    def __post_init__(self) -> None:
        # Splink saves no tf_adjustment_weight of 0 and reads a missing one as 1: a model
        # trained with 0 would come back adjusting in full.
        if self.term_frequency is not None and self.term_frequency.weight == 0.0:
            raise ValueError("a term-frequency weight of 0 does not survive Splink's model file; drop the adjustment")
        if self.term_frequency is not None and isinstance(self.level, NullLevel | Else):
            raise ValueError("Splink makes no term-frequency adjustment on null and else levels")

    def settings(self) -> dict[str, Any]:
        """The Splink comparison-level dict (the JSON form of a level, before training)."""
        out: dict[str, Any] = {"sql_condition": self.level.sql(), "label_for_charts": self.label or self.level.label()}
        if self.level.is_null_level:
            out["is_null_level"] = True
        if self.term_frequency is not None:
            tf = self.term_frequency
            out["tf_adjustment_column"] = tf.column
            out["tf_adjustment_weight"] = tf.weight
            if tf.minimum_u:
                out["tf_minimum_u_value"] = tf.minimum_u
        return out


def comparison_settings(name: str, levels: Sequence[LevelPlan], description: str | None = None) -> dict[str, Any]:
    """A Splink comparison dict from catalogue levels; Splink names its weights `mw_<name>`.

    Splink 5 drops `comparison_description` for dict comparisons (it saves "CustomComparison");
    it is passed anyway for the day it does not."""
    if not re.fullmatch(_NAME, name):
        raise ValueError(f"comparison name {name!r}: use lower-case letters, digits and _")
    if not levels or not isinstance(levels[-1].level, Else):
        raise ValueError(f"comparison {name!r}: the last level must be Else()")
    if any(isinstance(plan.level, Else) for plan in levels[:-1]):
        raise ValueError(f"comparison {name!r}: Else() may only be the last level")
    exact = {plan.level.exact_match_column() for plan in levels}
    for plan in levels:
        # Splink measures the adjustment from the u of an exact-match level on the tf column.
        if plan.term_frequency is not None and plan.term_frequency.column not in exact:
            raise ValueError(
                f"comparison {name!r}: a TF adjustment on {plan.term_frequency.column!r} "
                "needs an exact-match level on it"
            )
    return {
        "output_column_name": name,
        "comparison_description": description or name,
        "comparison_levels": [plan.settings() for plan in levels],
    }

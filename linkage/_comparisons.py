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
  on, and a `TestPlan` evaluates all the tests of a model in a few vectorised calls on profiles
  encoded once by `encode_profiles`, with SQL's NULL semantics (a condition that would be NULL
  in SQL is not true).

The catalogue produces SQL plans; only Splink executes SQL; the scorer executes numpy.
"""

from __future__ import annotations

import hashlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from functools import lru_cache
from typing import Any, ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from ._errors import LinkageError
from ._profile_record import MAX_DAYS, MAX_HOMES, MAX_HOURS, MAX_IPS, MAX_PREFIXES, ProfileRecord

# Splink's own mean Earth radius (splink.internals.comparison_level_sql).
EARTH_RADIUS_KM: Final = 6371.0

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
MaskArray = NDArray[np.uint64]


class ModelError(LinkageError):
    """A model file the scorer cannot compile: SQL outside the catalogue, a column the profile
    record lacks, numbers Splink would refuse. The message names the comparison and level."""


# --------------------------------------------------------------------------------------------
# The columns: what each ProfileRecord field is, so kinds apply only where they make sense and
# the encoding knows how to store it.


class ColumnType(Enum):
    """How a `ProfileRecord` field is compared and encoded."""

    STRING = "string"  # compared for equality; a 64-bit key
    DEGREES = "degrees"  # latitude or longitude, one half of a point in POINTS
    TERM_FREQUENCY = "term frequency"  # tf_<column>: the share of profiles with that value; its log2
    STRING_LIST = "string list"  # a set of strings; padded 64-bit keys
    INT_LIST = "integer list"  # a set of integers; 64-bit masks of aligned 64-integer words
    SMALL_INT_LIST = "small-integer list"  # a set of integers 0..63; a 64-bit mask
    INSTANT = "instant"  # whole epoch seconds, one end of a span in SPANS


COLUMNS: Final[Mapping[str, ColumnType]] = {
    "top_ip": ColumnType.STRING,
    "tf_top_ip": ColumnType.TERM_FREQUENCY,
    "ips": ColumnType.STRING_LIST,
    "ip_prefixes": ColumnType.STRING_LIST,
    "city": ColumnType.STRING,
    "country": ColumnType.STRING,
    "latitude": ColumnType.DEGREES,
    "longitude": ColumnType.DEGREES,
    "user_agent_family": ColumnType.STRING,
    "device_kind": ColumnType.STRING,
    "active_hours": ColumnType.SMALL_INT_LIST,
    "active_days": ColumnType.INT_LIST,
    "user_agent": ColumnType.STRING,
    "agent_first_seen": ColumnType.INSTANT,
    "agent_last_seen": ColumnType.INSTANT,
    "homes": ColumnType.STRING_LIST,
}
LIST_WIDTHS: Final[Mapping[str, int]] = {
    "ips": MAX_IPS,
    "ip_prefixes": MAX_PREFIXES,
    "active_hours": MAX_HOURS,
    "active_days": MAX_DAYS,
    "homes": MAX_HOMES,
}
# (latitude, longitude) pairs: distances are measured between points, not single columns.
POINTS: Final[tuple[tuple[str, str], ...]] = (("latitude", "longitude"),)
# (first seen, last seen) pairs: both set or both NULL, first <= last.
SPANS: Final[tuple[tuple[str, str], ...]] = (("agent_first_seen", "agent_last_seen"),)
# Instants are validated into [0, _MAX_INSTANT): sums and differences of two stay in int64.
_MAX_INSTANT: Final = 2**52

_LIST_TYPES: Final = (ColumnType.STRING_LIST, ColumnType.INT_LIST, ColumnType.SMALL_INT_LIST)
# A schema change must be a conscious change here too, not a silent gap in the encoding.
if (
    set(COLUMNS) | {"unique_id"} != set(ProfileRecord.__slots__)
    or {c for c, t in COLUMNS.items() if t in _LIST_TYPES} != set(LIST_WIDTHS)
    or {c for c, t in COLUMNS.items() if t is ColumnType.DEGREES} != {c for p in POINTS for c in p}
    or {c for c, t in COLUMNS.items() if t is ColumnType.INSTANT} != {c for p in SPANS for c in p}
):
    raise RuntimeError("linkage._comparisons.COLUMNS is out of step with ProfileRecord")

_STRINGS: Final = tuple(c for c, t in COLUMNS.items() if t is ColumnType.STRING)
_STRING_ROWS: Final[Mapping[str, int]] = {c: j for j, c in enumerate(_STRINGS)}
_NULL_BIT: Final[Mapping[str, int]] = {name: 1 << i for i, name in enumerate(COLUMNS)}
_STRING_NULL_BITS: Final = sum(_NULL_BIT[c] for c in _STRINGS)
# Integer-list intersections are counted in uint8 (_WordLookup.counts).
if any(LIST_WIDTHS[c] > 255 for c, t in COLUMNS.items() if t is ColumnType.INT_LIST):
    raise RuntimeError("an integer list wider than 255 elements overflows _WordLookup.counts")
# Key lists are padded to whole uint64 words of match flags (see _ListTests.evaluate).
_STRIDES: Final[Mapping[str, int]] = {
    c: -(-w // 8) * 8 for c, w in LIST_WIDTHS.items() if COLUMNS[c] is ColumnType.STRING_LIST
}

# Sentinels of the 64-bit key space; real keys are moved off them. A NULL or a pad never equals
# a value, as SQL's NULL = x is never true.
_NULL_KEY: Final = -(2**63)
_PAD_KEY: Final = -(2**63) + 1
# The length of a NULL list: then the integer Jaccard test is false without a NULL mask.
_NULL_LENGTH: Final = 1 << 40
# A NULL span as (first, last): it began before and ended after every real instant, so neither
# "it ended before the other began" nor "the other ended before it began" holds for it.
_NULL_SPAN: Final = (-(2**62), 2**62)


def _require(column: str, *allowed: ColumnType) -> None:
    kind = COLUMNS.get(column)
    if kind is None:
        raise ValueError(f"unknown column {column!r}: not a ProfileRecord field")
    if allowed and kind not in allowed:
        wanted = " or ".join(a.value for a in allowed)
        raise ValueError(f"column {column!r} is a {kind.value} column; this level needs a {wanted} column")


# --------------------------------------------------------------------------------------------
# Encoded profiles


@dataclass(frozen=True, slots=True, eq=False)
class EncodedProfiles:
    """Profile records as numpy arrays, one row per record, ready for vectorised scoring.

    Independent of any model: cache it with its profile; it survives a model swap. Strings are
    64-bit keys (BLAKE2b of the UTF-8 text: stateless, stable across processes; a false match
    needs two compared values to collide in 64 bits). String lists are fixed-width rows of keys
    padded with a key that matches nothing; integer lists are 64-bit masks per aligned word of
    64 integers (a profile's recent days fit in one or two words); small-integer lists (hours)
    are one mask. A point is its unit vector, computed with Python's `math` (the libm DuckDB
    calls), so a distance test needs only products and sums per pair. Term frequencies are kept
    as log2. NULL is a flag in `nulls` and, in the arrays, a sentinel key, NaN, an empty mask or
    a huge list length.
    """

    unique_ids: IntArray  # (n,)
    null_bits: IntArray  # (n,): bit i set where column i of COLUMNS is NULL
    nulls: BoolArray  # (len(COLUMNS), n): the same, as rows of flags
    keys: IntArray  # (STRING columns, n): 64-bit keys
    log2_tf: Mapping[str, FloatArray]  # TERM_FREQUENCY columns, (n,)
    points: Mapping[tuple[str, str], FloatArray]  # POINTS, (3, n): x, y, z
    lists: Mapping[str, IntArray]  # STRING_LIST columns, (n, width rounded up to 8)
    masks: Mapping[str, MaskArray]  # SMALL_INT_LIST columns, (n,)
    words: Mapping[str, IntArray]  # INT_LIST columns, (n, k): value >> 6, ascending, then pads
    word_masks: Mapping[str, MaskArray]  # INT_LIST columns, (n, k): bit value & 63 of each word
    lengths: Mapping[str, IntArray]  # every list column, (n,)
    instants: Mapping[str, IntArray]  # INSTANT columns, (n,); NULL: see _NULL_SPAN

    def __len__(self) -> int:
        return len(self.unique_ids)

    def probe(self, row: int = 0) -> Probe:
        """Profile `row` prepared as the left side of scoring (see `Probe`)."""
        return Probe(self, row)

    def take(self, rows: Sequence[int] | IntArray) -> EncodedProfiles:
        """The profiles at `rows`, in that order (e.g. the candidates blocking found)."""
        index = np.asarray(rows, dtype=np.intp)
        return EncodedProfiles(
            unique_ids=self.unique_ids[index],
            null_bits=self.null_bits[index],
            nulls=self.nulls[:, index],
            keys=self.keys[:, index],
            log2_tf={k: v[index] for k, v in self.log2_tf.items()},
            points={k: v[:, index] for k, v in self.points.items()},
            lists={k: v[index] for k, v in self.lists.items()},
            masks={k: v[index] for k, v in self.masks.items()},
            words={k: v[index] for k, v in self.words.items()},
            word_masks={k: v[index] for k, v in self.word_masks.items()},
            lengths={k: v[index] for k, v in self.lengths.items()},
            instants={k: v[index] for k, v in self.instants.items()},
        )


@lru_cache(maxsize=1 << 16)
def _string_key(value: str) -> int:
    key = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little", signed=True)
    return key if key > _PAD_KEY else key + 2  # the two sentinels are the two smallest int64


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number or None, got {value!r}")
    return float(value)


@dataclass(slots=True)
class EncodedRow:
    """One profile record validated and encoded as Python values, ready to be written as a row
    of `EncodedProfiles` (`write_row`); NULLs are already the sentinels of the encoding."""

    unique_id: int
    null_bits: int
    keys: list[int]  # STRING columns in order
    log2_tf: dict[str, float]
    points: dict[tuple[str, str], tuple[float, float, float]]
    lists: dict[str, list[int]]  # STRING_LIST columns, padded to their stride
    masks: dict[str, int]
    words: dict[str, list[int]]  # INT_LIST columns: value >> 6, ascending
    word_masks: dict[str, list[int]]
    lengths: dict[str, int]
    instants: dict[str, int]


def encode_row(record: ProfileRecord, i: int = 0) -> EncodedRow:
    """Validate and encode one record (`i` names it in errors as records[i]); see `encode_profiles`."""
    bits = 0
    keys = [_NULL_KEY] * len(_STRINGS)
    row = EncodedRow(record.unique_id, 0, keys, {}, {}, {}, {}, {}, {}, {}, {})
    for column, kind in COLUMNS.items():
        value = getattr(record, column)
        where = f"records[{i}].{column}"
        if value is None:
            bits |= _NULL_BIT[column]
            if kind is ColumnType.TERM_FREQUENCY:
                row.log2_tf[column] = math.nan
            elif kind is ColumnType.STRING_LIST:
                row.lists[column] = [_PAD_KEY] * _STRIDES[column]
                row.lengths[column] = _NULL_LENGTH
            elif kind is ColumnType.SMALL_INT_LIST:
                row.masks[column] = 0
                row.lengths[column] = _NULL_LENGTH
            elif kind is ColumnType.INT_LIST:
                row.words[column], row.word_masks[column] = [], []
                row.lengths[column] = _NULL_LENGTH
        elif kind is ColumnType.STRING:
            if not isinstance(value, str):
                raise ValueError(f"{where}: expected a string or None, got {value!r}")
            keys[_STRING_ROWS[column]] = _string_key(value)
        elif kind is ColumnType.DEGREES:
            _number(value, where)
        elif kind is ColumnType.INSTANT:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_INSTANT:
                raise ValueError(f"{where}: expected whole seconds in [0, 2**52) or None, got {value!r}")
            row.instants[column] = value
        elif kind is ColumnType.TERM_FREQUENCY:
            share = _number(value, where)
            if share <= 0.0:
                raise ValueError(f"{where}: a term frequency must be above 0, got {share!r}")
            row.log2_tf[column] = math.log2(share)
        else:
            encoded, row.lengths[column] = _list(column, kind, value, where)
            if kind is ColumnType.STRING_LIST:
                row.lists[column] = encoded + [_PAD_KEY] * (_STRIDES[column] - len(encoded))
            elif kind is ColumnType.SMALL_INT_LIST:
                row.masks[column] = sum(1 << v for v in encoded)
            else:
                grouped: dict[int, int] = {}
                for v in encoded:
                    grouped[v >> 6] = grouped.get(v >> 6, 0) | 1 << (v & 63)
                row.words[column] = sorted(grouped)
                row.word_masks[column] = [grouped[w] for w in row.words[column]]
    for latitude, longitude in POINTS:
        if bits & (_NULL_BIT[latitude] | _NULL_BIT[longitude]):
            row.points[(latitude, longitude)] = (math.nan, math.nan, math.nan)
        else:
            # math.radians is x * (pi / 180), as DuckDB's radians(); sin and cos are libm's.
            phi = math.radians(getattr(record, latitude))
            lam = math.radians(getattr(record, longitude))
            row.points[(latitude, longitude)] = (
                math.cos(phi) * math.cos(lam),
                math.cos(phi) * math.sin(lam),
                math.sin(phi),
            )
    for first, last in SPANS:
        # A span is whole or absent, and ordered: then "one ended before the other began"
        # reads the same in SQL's three-valued logic and in the sentinels of _NULL_SPAN.
        nulls_here = (bits & _NULL_BIT[first] != 0, bits & _NULL_BIT[last] != 0)
        if nulls_here[0] != nulls_here[1]:
            raise ValueError(f"records[{i}]: {first} and {last} must both be set or both be None")
        if nulls_here[0]:
            row.instants[first], row.instants[last] = _NULL_SPAN
        elif getattr(record, first) > getattr(record, last):
            raise ValueError(f"records[{i}]: {first} is after {last}")
    row.null_bits = bits
    return row


def word_width(row: EncodedRow, column: str) -> int:
    """The words an INT_LIST column of the row needs (see `write_row`)."""
    return len(row.words[column])


def write_row(target: EncodedProfiles, i: int, row: EncodedRow) -> None:
    """Write every field of row `i` of `target` (in place). INT_LIST rows must be at least as
    wide as the row's words; the rest of them is padded."""
    target.unique_ids[i] = row.unique_id
    target.null_bits[i] = row.null_bits
    target.nulls[:, i] = [(row.null_bits >> k) & 1 for k in range(len(COLUMNS))]
    target.keys[:, i] = row.keys
    for column, value in row.log2_tf.items():
        target.log2_tf[column][i] = value
    for point, vector in row.points.items():
        target.points[point][:, i] = vector
    for column, keys in row.lists.items():
        target.lists[column][i] = keys
    for column, mask in row.masks.items():
        target.masks[column][i] = mask
    for column, words in row.words.items():
        width = target.words[column].shape[1]
        target.words[column][i] = words + [_PAD_KEY] * (width - len(words))
        target.word_masks[column][i] = row.word_masks[column] + [0] * (width - len(words))
    for column, length in row.lengths.items():
        target.lengths[column][i] = length
    for column, instant in row.instants.items():
        target.instants[column][i] = instant


def empty_profiles(n: int, word_width: int = 2) -> EncodedProfiles:
    """`n` rows to be written by `write_row` (their contents until then are not meaningful)."""
    return EncodedProfiles(
        unique_ids=np.zeros(n, dtype=np.int64),
        null_bits=np.zeros(n, dtype=np.int64),
        nulls=np.zeros((len(COLUMNS), n), dtype=np.bool_),
        keys=np.full((len(_STRINGS), n), _NULL_KEY, dtype=np.int64),
        log2_tf={c: np.full(n, np.nan) for c, t in COLUMNS.items() if t is ColumnType.TERM_FREQUENCY},
        points={p: np.full((3, n), np.nan) for p in POINTS},
        lists={c: np.full((n, w), _PAD_KEY, dtype=np.int64) for c, w in _STRIDES.items()},
        masks={c: np.zeros(n, dtype=np.uint64) for c, t in COLUMNS.items() if t is ColumnType.SMALL_INT_LIST},
        # At least two words: a 30-day window spans at most two 64-day blocks, so encodings of
        # single profiles share one width and concatenate without padding.
        words={
            c: np.full((n, max(2, word_width)), _PAD_KEY, dtype=np.int64)
            for c, t in COLUMNS.items()
            if t is ColumnType.INT_LIST
        },
        word_masks={
            c: np.zeros((n, max(2, word_width)), dtype=np.uint64)
            for c, t in COLUMNS.items()
            if t is ColumnType.INT_LIST
        },
        lengths={c: np.full(n, _NULL_LENGTH, dtype=np.int64) for c in LIST_WIDTHS},
        instants={c: np.full(n, _NULL_SPAN[j], dtype=np.int64) for p in SPANS for j, c in enumerate(p)},
    )


def encode_profiles(records: Iterable[ProfileRecord]) -> EncodedProfiles:
    """Encode profile records for scoring.

    Raises ValueError on a record Splink would read differently from the scorer: duplicate or
    too many list elements, NaN or infinite numbers, a term frequency not above zero, an hour
    outside 0..63."""
    rows = [encode_row(record, i) for i, record in enumerate(records)]
    width = max((word_width(row, c) for row in rows for c in row.words), default=0)
    encoded = empty_profiles(len(rows), width)
    for i, row in enumerate(rows):
        write_row(encoded, i, row)
    return encoded


def _list(column: str, kind: ColumnType, value: object, where: str) -> tuple[list[int], int]:
    if not isinstance(value, tuple | list):
        raise ValueError(f"{where}: expected a tuple or None, got {value!r}")
    if len(value) > LIST_WIDTHS[column]:
        raise ValueError(f"{where}: {len(value)} elements, at most {LIST_WIDTHS[column]}")
    # DuckDB's list_intersect returns distinct elements while len() counts duplicates, so
    # with a duplicate SQL and numpy would disagree; the schema holds sets, so refuse it.
    if len(set(value)) != len(value):
        raise ValueError(f"{where}: duplicate elements in {value!r}")
    if kind is ColumnType.STRING_LIST:
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: expected strings, got {value!r}")
        return [_string_key(v) for v in value], len(value)
    low, high = (0, 64) if kind is ColumnType.SMALL_INT_LIST else (-(2**62), 2**62)
    if not all(isinstance(v, int) and not isinstance(v, bool) and low <= v < high for v in value):
        raise ValueError(f"{where}: expected integers in [{low}, {high}), got {value!r}")
    return sorted(value), len(value)


# --------------------------------------------------------------------------------------------
# Tests: the atoms levels are made of, and their vectorised evaluation


@dataclass(frozen=True, slots=True)
class IsNull:
    """The column is NULL on either side."""

    column: str


@dataclass(frozen=True, slots=True)
class Always:
    """Holds for every pair (the else level)."""


@dataclass(frozen=True, slots=True)
class Equal:
    """The string column has the same value on both sides, neither NULL."""

    column: str


@dataclass(frozen=True, slots=True)
class Shares:
    """The two lists have at least `at_least` (>= 1) elements in common, neither NULL."""

    column: str
    at_least: int


@dataclass(frozen=True, slots=True)
class JaccardAtLeast:
    """q·|l∩r| >= p·(|l| + |r| - |l∩r|), neither list NULL."""

    column: str
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class ArcCosineAtLeast:
    """The cosine of the angle between the two points' unit vectors is at least `threshold`."""

    point: tuple[str, str]
    threshold: float


@dataclass(frozen=True, slots=True)
class EndsBefore:
    """One span ended before the other began, and began at least `gap` seconds after it:
    last_l < first_r AND first_r - first_l >= gap, or the same with l and r swapped."""

    span: tuple[str, str]
    gap: int


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every one of `tests` holds (SQL's AND: TRUE only where each part is TRUE)."""

    tests: tuple[Test, ...]


Test = IsNull | Always | Equal | Shares | JaccardAtLeast | ArcCosineAtLeast | EndsBefore | AllOf


# Key-list match flags (bytes 0 or 1) read eight at a time, as the words of _STRIDES.
_FLAG_WORDS: Final = np.dtype("<u8")
# Scalars meet candidate arrays as 0-d arrays, not Python numbers: a ufunc takes a 0-d array as
# it is, while a Python int or float costs it a conversion (about 0.4 µs a call at 1 x 100).
_NO_FLAGS: Final = np.zeros((), dtype=np.uint64)


class _KeyLookup:
    """Which elements of candidate key rows are among one profile's keys (a STRING_LIST)."""

    __slots__ = ("keys", "mask", "shift", "table")

    def __init__(self, row: IntArray, length: int) -> None:
        """`row` is the profile's padded key row, `length` its number of keys."""
        self.table: IntArray | None = None
        # A few keys: one comparison each is cheaper than a table.
        if length > 3 and self._tabulate(row[:length].tolist()):
            self.keys: list[IntArray] = []
        else:
            self.keys = [row[j, ...] for j in range(length)]  # 0-d views (see _NO_FLAGS)

    def _tabulate(self, keys: list[int]) -> bool:
        """Build the table of the keys if a choice of bits separates them (almost always)."""
        # A small direct-mapped table of the keys, at slots taken from bits of the key chosen so
        # that these keys do not collide; a candidate element is a member iff its slot holds it.
        # Empty slots hold the NULL key, which no list element is.
        bits = max(6, (4 * len(keys)).bit_length())
        mask = (1 << bits) - 1
        for shift in range(0, 64 - bits + 1, bits):
            slots = [(key >> shift) & mask for key in keys]
            if len(set(slots)) == len(slots):
                self.table = np.full(1 << bits, _NULL_KEY, dtype=np.int64)
                self.table[slots] = keys
                self.shift, self.mask = np.array(shift), np.array(mask)
                return True
        return False

    def flags(self, theirs: IntArray) -> BoolArray:
        """(n, stride) flags: candidate element j is one of the keys (pads never are)."""
        found: BoolArray
        if self.table is None:
            if not self.keys:
                return np.zeros(theirs.shape, dtype=np.bool_)
            found = theirs == self.keys[0]
            for key in self.keys[1:]:
                found |= theirs == key
            return found
        # Shift 0 is tried first and usually serves: then the mask alone gives the slots.
        index = theirs >> self.shift if self.shift else theirs & self.mask
        if self.shift:
            index &= self.mask
        found = self.table.take(index) == theirs
        return found


class _WordLookup:
    """One profile's INT_LIST as a table from 64-integer word to mask, over the span of its words."""

    __slots__ = ("low", "span", "table")

    def __init__(self, words: IntArray, masks: MaskArray) -> None:
        """`words` and `masks` are the profile's rows: its words ascending, then pads."""
        # Slot 0 and the slot past the span stay empty: a clipped take sends every word
        # outside the span (pads included, far below) to one of them.
        listed = words.tolist()
        used = len(listed) - listed.count(_PAD_KEY)
        low = listed[0] - 1 if used else 0
        self.low = np.array(low)  # 0-d: see _NO_FLAGS
        self.span = listed[used - 1] - low if used else 0
        self.table: MaskArray = np.zeros(self.span + 2, dtype=np.uint64)
        if self.span == used:  # consecutive words (a recent window, the usual case): one copy
            self.table[1 : used + 1] = masks[:used]
        else:
            self.table[[word - low for word in listed[:used]]] = masks[:used]

    def counts(self, words: IntArray, masks: MaskArray) -> NDArray[Any]:
        """|profile ∩ candidate| per candidate row of (words, masks)."""
        if not self.span:
            return np.zeros(len(words), dtype=np.int64)
        offsets = words - self.low
        common = self.table.take(offsets, mode="clip")
        common &= masks
        per_word = np.bitwise_count(common)  # uint8; a list holds at most MAX_DAYS < 256 integers
        # Two words is the usual width (see encode_profiles): one add, no reduction.
        two = per_word.shape[1] == 2
        counts: NDArray[Any] = per_word[:, 0] + per_word[:, 1] if two else np.add.reduce(per_word, axis=1)
        return counts


class Probe:
    """One encoded profile prepared as the left side of scoring: its values as Python scalars
    and column vectors, its lists as lookups (a key table, a word table, a mask).

    Build it once per left profile (`EncodedProfiles.probe`) and score it against any number
    of candidate batches. `lists` limits the list columns prepared (default: all); a
    `TestPlan` builds probes with only the columns its tests read (`TestPlan.probe`), which
    is what `VisitorScorer.score` does when handed a one-row encoding: preparing a lookup
    nothing reads is a good part of the cost of scoring one profile against a hundred.
    """

    __slots__ = ("encoded", "keys", "lookups", "masks", "null_bits", "nulls", "row", "unique_id", "words")

    def __init__(self, encoded: EncodedProfiles, row: int = 0, lists: Iterable[str] | None = None) -> None:
        # `.item` reads a Python scalar without making a numpy scalar first.
        self.unique_id = encoded.unique_ids.item(row)
        self.null_bits = null_bits = encoded.null_bits.item(row)
        # Views (columns, 1) that broadcast over candidates. A NULL key equals a NULL candidate
        # key here; TestPlan.evaluate clears those rows, as SQL's NULL = NULL is not true.
        self.nulls = encoded.nulls[:, row : row + 1]
        self.keys = encoded.keys[:, row : row + 1]
        # Scalars are read when a test asks (`instant`, `vector`, ...): most tests read none.
        self.encoded, self.row = encoded, row
        columns = LIST_WIDTHS if lists is None else lists
        # A NULL list is never looked up (tests on it are false at once), so it gets no lookup.
        self.lookups: dict[str, _KeyLookup] = {}
        self.masks: dict[str, MaskArray] = {}
        self.words: dict[str, _WordLookup] = {}
        for c in columns:
            if null_bits & _NULL_BIT[c]:
                continue
            kind = COLUMNS[c]
            if kind is ColumnType.STRING_LIST:
                self.lookups[c] = _KeyLookup(encoded.lists[c][row], encoded.lengths[c].item(row))
            elif kind is ColumnType.SMALL_INT_LIST:
                self.masks[c] = encoded.masks[c][row, ...]  # 0-d (see _NO_FLAGS)
            else:
                self.words[c] = _WordLookup(encoded.words[c][row], encoded.word_masks[c][row])

    def length(self, column: str) -> int:
        """The length of a list column (huge where NULL, see _NULL_LENGTH)."""
        length: int = self.encoded.lengths[column].item(self.row)
        return length

    def log2_tf(self, column: str) -> float:
        """The log2 of a term-frequency column, NaN where NULL."""
        value: float = self.encoded.log2_tf[column].item(self.row)
        return value

    def instant(self, column: str) -> IntArray:
        """An INSTANT column as a 0-d array (see _NO_FLAGS)."""
        value: IntArray = self.encoded.instants[column][self.row, ...]
        return value

    def vector(self, point: tuple[str, str]) -> FloatArray:
        """A point's unit vector as a (3, 1) column (x, y, z) that broadcasts; NaN where NULL."""
        vector: FloatArray = self.encoded.points[point][:, self.row : self.row + 1]
        return vector


class _ListTests:
    """The Shares and Jaccard tests on one list column: one count, then one comparison per kind."""

    __slots__ = (
        "any_only",
        "column",
        "jaccards",
        "kind",
        "null_bit",
        "numerators",
        "rows",
        "share_rows",
        "shares",
        "sums",
    )

    def __init__(self, column: str, row: int, shares: list[int], jaccards: list[tuple[int, int]]) -> None:
        self.column = column
        self.kind = COLUMNS[column]
        self.null_bit = _NULL_BIT[column]
        # uint8 like the counts (list widths are far below 256): a comparison without a cast.
        self.shares = np.array(shares, dtype=np.uint8).reshape(-1, 1) if shares else None
        self.share_rows = slice(row, row + len(shares))
        self.numerators = np.array([p for p, _ in jaccards], dtype=np.int64).reshape(-1, 1) if jaccards else None
        self.sums = np.array([p + q for p, q in jaccards], dtype=np.int64).reshape(-1, 1) if jaccards else None
        self.rows = slice(row, row + len(shares) + len(jaccards))
        self.jaccards = slice(row + len(shares), self.rows.stop)
        # Only "shares at least one" on 8-key rows: a nonzero word of match flags, no count.
        self.any_only = shares == [1] and not jaccards and _STRIDES.get(column) == 8

    def evaluate(self, left: Probe, right: EncodedProfiles, out: BoolArray) -> None:
        if left.null_bits & self.null_bit:
            out[self.rows] = False
            return
        column = self.column
        counts: NDArray[Any]
        if self.kind is ColumnType.SMALL_INT_LIST:
            counts = np.bitwise_count(right.masks[column] & left.masks[column])
        elif self.kind is ColumnType.INT_LIST:
            counts = left.words[column].counts(right.words[column], right.word_masks[column])
        elif self.any_only:
            flags = left.lookups[column].flags(right.lists[column])
            np.not_equal(flags.view(_FLAG_WORDS)[:, 0], _NO_FLAGS, out=out[self.rows.start])
            return
        else:
            # Each flag is a byte 0 or 1, so the set bits of a row's uint64 words are its matches.
            per_word = np.bitwise_count(left.lookups[column].flags(right.lists[column]).view(_FLAG_WORDS))
            counts = per_word[:, 0] if per_word.shape[1] == 1 else np.add.reduce(per_word, axis=1)
        if self.shares is not None:
            np.greater_equal(counts, self.shares, out=out[self.share_rows])
        if self.numerators is not None and self.sums is not None:
            # q·i >= p·(s - i)  <=>  (p + q)·i >= p·s, with s = |l| + |r|: exact integers. A NULL
            # candidate has i = 0 and s >= 2**40, so the test fails there as SQL's NULL does.
            total = right.lengths[column] + left.length(column)
            np.greater_equal(counts * self.sums, total * self.numerators, out=out[self.jaccards])


class TestPlan:
    """The distinct tests of a set of levels, evaluated for one profile against n candidates
    in about one numpy call per group: nulls, string equality, each list, each point.

    `evaluate` returns a (rows, n) bool array (bool, not float: numpy's comparisons write
    bool without a cast, about twice as fast at this size); `row(test)` says which row holds a test. The
    last row is `Always`, all true: a constant term for whoever combines the rows (the scorer's table
    offsets). Immutable once built; safe to share between threads.
    """

    __slots__ = ("_conjunctions", "_equal", "_list_columns", "_lists", "_points", "_rows", "_spans", "height")

    def __init__(self, tests: Iterable[Test]) -> None:
        given: list[Test] = [t for t in tests if not isinstance(t, Always)]
        # The parts of a conjunction get rows of their own, evaluated before it.
        parts: list[Test] = [part for t in given if isinstance(t, AllOf) for part in t.tests]
        distinct = list(dict.fromkeys(t for t in parts + given if not isinstance(t, Always)))
        rows: dict[Test, int] = {IsNull(c): i for i, c in enumerate(COLUMNS)}
        height = len(COLUMNS)
        self._equal = height if any(isinstance(t, Equal) for t in distinct) else -1
        if self._equal >= 0:
            rows.update({Equal(c): height + j for j, c in enumerate(_STRINGS)})
            height += len(_STRINGS)
        self._lists: list[_ListTests] = []
        for column in LIST_WIDTHS:
            shares = sorted({t.at_least for t in distinct if isinstance(t, Shares) and t.column == column})
            jaccards = sorted(
                {(t.numerator, t.denominator) for t in distinct if isinstance(t, JaccardAtLeast) and t.column == column}
            )
            if not shares and not jaccards:
                continue
            self._lists.append(_ListTests(column, height, shares, jaccards))
            for k in shares:
                rows[Shares(column, k)] = height
                height += 1
            for p, q in jaccards:
                rows[JaccardAtLeast(column, p, q)] = height
                height += 1
        self._points: list[tuple[tuple[str, str], int, slice, FloatArray]] = []
        for point in POINTS:
            thresholds = sorted({t.threshold for t in distinct if isinstance(t, ArcCosineAtLeast) and t.point == point})
            if not thresholds:
                continue
            bits = _NULL_BIT[point[0]] | _NULL_BIT[point[1]]
            block = slice(height, height + len(thresholds))
            self._points.append((point, bits, block, np.array(thresholds).reshape(-1, 1)))
            for threshold in thresholds:
                rows[ArcCosineAtLeast(point, threshold)] = height
                height += 1
        self._spans: list[tuple[tuple[str, str], slice, IntArray]] = []
        for span in SPANS:
            gaps = sorted({t.gap for t in distinct if isinstance(t, EndsBefore) and t.span == span})
            if not gaps:
                continue
            gap_column = np.array(gaps, dtype=np.int64).reshape(-1, 1)
            self._spans.append((span, slice(height, height + len(gaps)), gap_column))
            for gap in gaps:
                rows[EndsBefore(span, gap)] = height
                height += 1
        self._conjunctions: list[tuple[int, tuple[int, ...]]] = []
        for conjunction in distinct:
            if isinstance(conjunction, AllOf):
                if not all(part in rows for part in conjunction.tests):
                    raise ValueError(f"a conjunction of tests the plan cannot evaluate: {conjunction}")
                self._conjunctions.append((height, tuple(rows[part] for part in conjunction.tests)))
                rows[conjunction] = height
                height += 1
        unknown = [t for t in distinct if t not in rows]
        if unknown:
            raise ValueError(f"tests on columns the encoding does not hold: {unknown}")
        rows[Always()] = height
        height += 1
        self._rows = rows
        self._list_columns = tuple(tests.column for tests in self._lists)
        self.height = height

    def probe(self, encoded: EncodedProfiles, row: int = 0) -> Probe:
        """Profile `row` of `encoded` as a left side for this plan: only its lists the tests read."""
        return Probe(encoded, row, self._list_columns)

    def row(self, test: Test) -> int:
        """The row of `evaluate`'s result that holds `test`."""
        return self._rows[test]

    def evaluate(self, left: Probe, right: EncodedProfiles) -> BoolArray:
        """Every test for the `left` profile against each profile in `right`: (rows, n)."""
        out = np.empty((self.height, len(right)), dtype=np.bool_)
        out[-1] = True  # Always
        left_nulls = left.null_bits
        np.logical_or(right.nulls, left.nulls, out=out[: len(COLUMNS)])
        if self._equal >= 0:
            equal = out[self._equal : self._equal + len(_STRINGS)]
            np.equal(right.keys, left.keys, out=equal)
            if left_nulls & _STRING_NULL_BITS:  # NULL = NULL held above; in SQL it is not true
                for j, column in enumerate(_STRINGS):
                    if left_nulls & _NULL_BIT[column]:
                        equal[j] = False
        for tests in self._lists:
            tests.evaluate(left, right, out)
        for point, bits, block, thresholds in self._points:
            if left_nulls & bits:
                out[block] = False
                continue
            # x_l·x_r + y_l·y_r + z_l·z_r in the order WithinKm.sql spells it, so every IEEE
            # product and sum is the one DuckDB computes: the three products in one call, then
            # the two sums. NaN (a NULL side) compares false.
            products = right.points[point] * left.vector(point)
            cosine = np.add(products[0], products[1])
            cosine += products[2]
            np.greater_equal(cosine, thresholds, out=out[block])
        for (first, last), block, gaps in self._spans:
            if left_nulls & _NULL_BIT[first]:  # a span is whole or absent (encode_profiles)
                out[block] = False
                continue
            my_first, my_last = left.instant(first), left.instant(last)
            their_first, their_last = right.instants[first], right.instants[last]
            # "Theirs ended before mine began and began at least gap before mine, or the other
            # way round" is: the spans are disjoint, and their starts are at least gap apart
            # (the later one began after the earlier ended, so after it began). A NULL candidate
            # span (_NULL_SPAN) is disjoint from none; the sentinels stay far from overflow
            # (instants are below 2**52).
            disjoint = their_first > my_last
            disjoint |= their_last < my_first
            apart = np.subtract(their_first, my_first)
            np.absolute(apart, out=apart)
            held = np.greater_equal(apart, gaps, out=out[block])
            held &= disjoint
        for row, parts in self._conjunctions:
            np.logical_and(out[parts[0]], out[parts[1]], out=out[row])
            for part in parts[2:]:
                out[row] &= out[part]
        return out


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
        held: BoolArray = np.logical_or.reduce(plan.evaluate(left.probe(), right)[rows], axis=0)
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
            _require(column)

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
        _require(self.column, ColumnType.STRING)

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
        _require(self.column, *_LIST_TYPES)
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
        _require(self.column, *_LIST_TYPES)
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
class Both(Level):
    """Both levels hold (SQL's AND). Each part is a catalogue level of a single test, neither a
    null, else or conjunction level: e.g. the same user agent, used one after the other."""

    first: Level
    second: Level
    _pattern: ClassVar[re.Pattern[str]] = re.compile(r"\((.+)\) AND \((.+)\)")

    def __post_init__(self) -> None:
        for part in (self.first, self.second):
            if isinstance(part, NullLevel | Else | Both) or len(part.tests()) != 1:
                raise ValueError(f"a part of Both must be a single-test level, got {part!r}")

    def sql(self) -> str:
        return f"({self.first.sql()}) AND ({self.second.sql()})"

    def label(self) -> str:
        return f"{self.first.label()}, {self.second.label()}"

    def tests(self) -> tuple[Test, ...]:
        return (AllOf((self.first.tests()[0], self.second.tests()[0])),)

    @classmethod
    def parse(cls, sql: str) -> Level | None:
        # The split is ambiguous in a regular expression: try each ") AND (" in turn.
        if not (sql.startswith("(") and sql.endswith(")")):
            return None
        start = 0
        while (at := sql.find(") AND (", start)) >= 0:
            start = at + 1
            parts = [_single_level(sql[1:at]), _single_level(sql[at + 7 : -1])]
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
    Both,
    Else,
)
# The kinds a Both may join.
_PARTS: Final[tuple[type[Level], ...]] = (ExactMatch, ListOverlap, ListJaccard, WithinKm, Successive)


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
        "build comparisons from linkage._comparisons so that the scorer can evaluate them"
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

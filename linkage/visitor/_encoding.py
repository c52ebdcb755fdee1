"""Profiles encoded for numpy: each `ProfileRecord` column stored the way the test plan
(`linkage._test_plan`) compares it, with SQL's NULLs kept apart.

`COLUMNS` says what each field is (a string, a list, a point, an instant, ...), so that level
kinds apply only where they make sense; `encode_profiles` encodes many records at once,
`encode_row` and `write_row` one record into a preallocated table (`linkage._encoded_table`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ._profile import MAX_DAYS, MAX_HOMES, MAX_HOURS, MAX_IPS, MAX_PLACES, MAX_PREFIXES, ProfileRecord

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
MaskArray = NDArray[np.uint64]


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
    "places": ColumnType.STRING_LIST,
    "tf_user_agent": ColumnType.TERM_FREQUENCY,
    "homes_seen": ColumnType.STRING_LIST,
}
LIST_WIDTHS: Final[Mapping[str, int]] = {
    "ips": MAX_IPS,
    "ip_prefixes": MAX_PREFIXES,
    "active_hours": MAX_HOURS,
    "active_days": MAX_DAYS,
    "homes": MAX_HOMES,
    "places": MAX_PLACES,
    "homes_seen": MAX_HOMES,
}
# (latitude, longitude) pairs: distances are measured between points, not single columns.
POINTS: Final[tuple[tuple[str, str], ...]] = (("latitude", "longitude"),)
# (first seen, last seen) pairs: both set or both NULL, first <= last.
SPANS: Final[tuple[tuple[str, str], ...]] = (("agent_first_seen", "agent_last_seen"),)
# Instants are validated into [0, _MAX_INSTANT): sums and differences of two stay in int64.
_MAX_INSTANT: Final = 2**52

LIST_TYPES: Final = (ColumnType.STRING_LIST, ColumnType.INT_LIST, ColumnType.SMALL_INT_LIST)
# A schema change must be a conscious change here too, not a silent gap in the encoding.
if (
    set(COLUMNS) | {"unique_id"} != set(ProfileRecord.__slots__)
    or {c for c, t in COLUMNS.items() if t in LIST_TYPES} != set(LIST_WIDTHS)
    or {c for c, t in COLUMNS.items() if t is ColumnType.DEGREES} != {c for p in POINTS for c in p}
    or {c for c, t in COLUMNS.items() if t is ColumnType.INSTANT} != {c for p in SPANS for c in p}
):
    raise RuntimeError("linkage._profile_encoding.COLUMNS is out of step with ProfileRecord")

STRING_COLUMNS: Final = tuple(c for c, t in COLUMNS.items() if t is ColumnType.STRING)
_STRING_ROWS: Final[Mapping[str, int]] = {c: j for j, c in enumerate(STRING_COLUMNS)}
NULL_BIT: Final[Mapping[str, int]] = {name: 1 << i for i, name in enumerate(COLUMNS)}
STRING_NULL_BITS: Final = sum(NULL_BIT[c] for c in STRING_COLUMNS)
# Integer-list intersections are counted in uint8 (_WordLookup.counts).
if any(LIST_WIDTHS[c] > 255 for c, t in COLUMNS.items() if t is ColumnType.INT_LIST):
    raise RuntimeError("an integer list wider than 255 elements overflows _WordLookup.counts")
# Key lists are padded to whole uint64 words of match flags (see _ListTests.evaluate).
STRIDES: Final[Mapping[str, int]] = {
    c: -(-w // 8) * 8 for c, w in LIST_WIDTHS.items() if COLUMNS[c] is ColumnType.STRING_LIST
}

# Sentinels of the 64-bit key space; real keys are moved off them. A NULL or a pad never equals
# a value, as SQL's NULL = x is never true.
NULL_KEY: Final = -(2**63)
PAD_KEY: Final = -(2**63) + 1
# The length of a NULL list: then the integer Jaccard test is false without a NULL mask.
NULL_LENGTH: Final = 1 << 40
# A NULL span as (first, last): it began before and ended after every real instant, so neither
# "it ended before the other began" nor "the other ended before it began" holds for it.
NULL_SPAN: Final = (-(2**62), 2**62)


def require_column(column: str, *allowed: ColumnType) -> None:
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
    instants: Mapping[str, IntArray]  # INSTANT columns, (n,); NULL: see NULL_SPAN

    def __len__(self) -> int:
        return len(self.unique_ids)

    def take(self, rows: Sequence[int] | IntArray) -> EncodedProfiles:
        """The profiles at `rows`, in that order (e.g. the candidates blocking found)."""
        index = np.asarray(rows, dtype=np.intp)
        # `take` on an axis of a 2-D array is 2-3x faster than fancy indexing (1-D: slower);
        # every candidate lookup online copies these.
        return EncodedProfiles(
            unique_ids=self.unique_ids[index],
            null_bits=self.null_bits[index],
            nulls=self.nulls.take(index, axis=1),
            keys=self.keys.take(index, axis=1),
            log2_tf={k: v[index] for k, v in self.log2_tf.items()},
            points={k: v.take(index, axis=1) for k, v in self.points.items()},
            lists={k: v.take(index, axis=0) for k, v in self.lists.items()},
            masks={k: v[index] for k, v in self.masks.items()},
            words={k: v.take(index, axis=0) for k, v in self.words.items()},
            word_masks={k: v.take(index, axis=0) for k, v in self.word_masks.items()},
            lengths={k: v[index] for k, v in self.lengths.items()},
            instants={k: v[index] for k, v in self.instants.items()},
        )


@lru_cache(maxsize=1 << 16)
def _string_key(value: str) -> int:
    key = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little", signed=True)
    return key if key > PAD_KEY else key + 2  # the two sentinels are the two smallest int64


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
    keys = [NULL_KEY] * len(STRING_COLUMNS)
    row = EncodedRow(record.unique_id, 0, keys, {}, {}, {}, {}, {}, {}, {}, {})
    for column, kind in COLUMNS.items():
        value = getattr(record, column)
        where = f"records[{i}].{column}"
        if value is None:
            bits |= NULL_BIT[column]
            if kind is ColumnType.TERM_FREQUENCY:
                row.log2_tf[column] = math.nan
            elif kind is ColumnType.STRING_LIST:
                row.lists[column] = [PAD_KEY] * STRIDES[column]
                row.lengths[column] = NULL_LENGTH
            elif kind is ColumnType.SMALL_INT_LIST:
                row.masks[column] = 0
                row.lengths[column] = NULL_LENGTH
            elif kind is ColumnType.INT_LIST:
                row.words[column], row.word_masks[column] = [], []
                row.lengths[column] = NULL_LENGTH
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
                row.lists[column] = encoded + [PAD_KEY] * (STRIDES[column] - len(encoded))
            elif kind is ColumnType.SMALL_INT_LIST:
                row.masks[column] = sum(1 << v for v in encoded)
            else:
                grouped: dict[int, int] = {}
                for v in encoded:
                    grouped[v >> 6] = grouped.get(v >> 6, 0) | 1 << (v & 63)
                row.words[column] = sorted(grouped)
                row.word_masks[column] = [grouped[w] for w in row.words[column]]
    for latitude, longitude in POINTS:
        if bits & (NULL_BIT[latitude] | NULL_BIT[longitude]):
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
        # reads the same in SQL's three-valued logic and in the sentinels of NULL_SPAN.
        nulls_here = (bits & NULL_BIT[first] != 0, bits & NULL_BIT[last] != 0)
        if nulls_here[0] != nulls_here[1]:
            raise ValueError(f"records[{i}]: {first} and {last} must both be set or both be None")
        if nulls_here[0]:
            row.instants[first], row.instants[last] = NULL_SPAN
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
        target.words[column][i] = words + [PAD_KEY] * (width - len(words))
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
        keys=np.full((len(STRING_COLUMNS), n), NULL_KEY, dtype=np.int64),
        log2_tf={c: np.full(n, np.nan) for c, t in COLUMNS.items() if t is ColumnType.TERM_FREQUENCY},
        points={p: np.full((3, n), np.nan) for p in POINTS},
        lists={c: np.full((n, w), PAD_KEY, dtype=np.int64) for c, w in STRIDES.items()},
        masks={c: np.zeros(n, dtype=np.uint64) for c, t in COLUMNS.items() if t is ColumnType.SMALL_INT_LIST},
        # At least two words: a 30-day window spans at most two 64-day blocks, so encodings of
        # single profiles share one width and concatenate without padding.
        words={
            c: np.full((n, max(2, word_width)), PAD_KEY, dtype=np.int64)
            for c, t in COLUMNS.items()
            if t is ColumnType.INT_LIST
        },
        word_masks={
            c: np.zeros((n, max(2, word_width)), dtype=np.uint64)
            for c, t in COLUMNS.items()
            if t is ColumnType.INT_LIST
        },
        lengths={c: np.full(n, NULL_LENGTH, dtype=np.int64) for c in LIST_WIDTHS},
        instants={c: np.full(n, NULL_SPAN[j], dtype=np.int64) for p in SPANS for j, c in enumerate(p)},
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

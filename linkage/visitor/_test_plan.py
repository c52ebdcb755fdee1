"""The tests levels are made of, and their vectorised evaluation: a `TestPlan` evaluates all
the tests of a model for one `Probe` (the left profile) against many encoded profiles in a few
numpy calls, with SQL's NULL semantics (a condition that would be NULL in SQL is not true)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ._encoding import (
    COLUMNS,
    LIST_WIDTHS,
    NULL_BIT,
    NULL_KEY,
    PAD_KEY,
    POINTS,
    SPANS,
    STRIDES,
    STRING_COLUMNS,
    STRING_NULL_BITS,
    BoolArray,
    ColumnType,
    EncodedProfiles,
    FloatArray,
    IntArray,
    MaskArray,
)

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
class RarerThan:
    """A term-frequency column is below `2 ** log2_below` on both sides, neither NULL."""

    column: str
    log2_below: float


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every one of `tests` holds (SQL's AND: TRUE only where each part is TRUE)."""

    tests: tuple[Test, ...]


Test = IsNull | Always | Equal | Shares | JaccardAtLeast | ArcCosineAtLeast | EndsBefore | RarerThan | AllOf


def atoms_of(test: Test) -> tuple[Test, ...]:
    """The atomic tests a test is made of: the parts of a conjunction, else itself."""
    return test.tests if isinstance(test, AllOf) else (test,)


_COLUMN_ROW: Final[dict[str, int]] = {c: i for i, c in enumerate(COLUMNS)}
_STRING_NULL_ROWS: Final = np.array([_COLUMN_ROW[c] for c in STRING_COLUMNS], dtype=np.intp)

# Key-list match flags (bytes 0 or 1) read eight at a time, as the words of STRIDES.
_FLAG_WORDS: Final = np.dtype("<u8")
# Scalars meet candidate arrays as 0-d arrays, not Python numbers: a ufunc takes a 0-d array as
# it is, while a Python int or float costs it a conversion (about 0.4 µs a call at 1 x 100).
_NO_FLAGS: Final = np.zeros((), dtype=np.uint64)
_NO_FLAGS.setflags(write=False)


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
                self.table = np.full(1 << bits, NULL_KEY, dtype=np.int64)
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
        used = len(listed) - listed.count(PAD_KEY)
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
    """One encoded profile prepared as the left side of scoring: its values as 0-d arrays
    (numpy converts a Python number on every call) and column vectors, its lists as lookups
    (a key table, a word table, a mask).

    Build it once per left profile (`VisitorScorer.probe`) and score it against any number
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
            if null_bits & NULL_BIT[c]:
                continue
            kind = COLUMNS[c]
            if kind is ColumnType.STRING_LIST:
                self.lookups[c] = _KeyLookup(encoded.lists[c][row], encoded.lengths[c].item(row))
            elif kind is ColumnType.SMALL_INT_LIST:
                self.masks[c] = encoded.masks[c][row, ...]  # 0-d (see _NO_FLAGS)
            else:
                self.words[c] = _WordLookup(encoded.words[c][row], encoded.word_masks[c][row])

    def length(self, column: str) -> int:
        """The length of a list column (huge where NULL, see NULL_LENGTH)."""
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
        self.null_bit = NULL_BIT[column]
        # uint8 like the counts (list widths are far below 256): a comparison without a cast.
        self.shares = np.array(shares, dtype=np.uint8).reshape(-1, 1) if shares else None
        self.share_rows = slice(row, row + len(shares))
        self.numerators = np.array([p for p, _ in jaccards], dtype=np.int64).reshape(-1, 1) if jaccards else None
        self.sums = np.array([p + q for p, q in jaccards], dtype=np.int64).reshape(-1, 1) if jaccards else None
        self.rows = slice(row, row + len(shares) + len(jaccards))
        self.jaccards = slice(row + len(shares), self.rows.stop)
        # Only "shares at least one" on 8-key rows: a nonzero word of match flags, no count.
        self.any_only = shares == [1] and not jaccards and STRIDES.get(column) == 8

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

    def evaluate_pairs(
        self, left: EncodedProfiles, right: EncodedProfiles, left_null: BoolArray, out: BoolArray
    ) -> None:
        """`evaluate` for pairs: row i of `left` against row i of `right`; `left_null` where
        the left list is NULL."""
        column = self.column
        counts: NDArray[Any]
        if self.kind is ColumnType.SMALL_INT_LIST:
            counts = np.bitwise_count(right.masks[column] & left.masks[column])
        elif self.kind is ColumnType.INT_LIST:
            # Words are distinct and ascending on each side; pads carry empty masks, so a pad
            # meeting a pad adds nothing.
            same = right.words[column][:, :, None] == left.words[column][:, None, :]
            common = right.word_masks[column][:, :, None] & left.word_masks[column][:, None, :]
            common *= same
            counts = np.bitwise_count(common).sum(axis=(1, 2), dtype=np.int64)
        else:
            # As the probe's lookup counts them: the candidate's elements that are among the
            # left's keys, its first `length` elements. One column of left keys at a time, on
            # the rows that have that many: most lists are far shorter than their width.
            mine, theirs = left.lists[column], right.lists[column]
            lengths = np.where(left_null, 0, left.lengths[column])
            found = np.equal(theirs, mine[:, :1])
            found &= (lengths > 0)[:, None]
            for j in range(1, int(lengths.max(initial=0))):
                rows = np.flatnonzero(lengths > j)
                found[rows] |= theirs[rows] == mine[rows, j : j + 1]
            per_word = np.bitwise_count(found.view(_FLAG_WORDS))
            if self.any_only:
                np.not_equal(per_word[:, 0], 0, out=out[self.rows.start])
                out[self.rows, left_null] = False
                return
            counts = per_word[:, 0] if per_word.shape[1] == 1 else np.add.reduce(per_word, axis=1)
        if self.shares is not None:
            np.greater_equal(counts, self.shares, out=out[self.share_rows])
        if self.numerators is not None and self.sums is not None:
            total = right.lengths[column] + left.lengths[column]
            np.greater_equal(counts * self.sums, total * self.numerators, out=out[self.jaccards])
        out[self.rows, left_null] = False


class TestPlan:
    """The distinct tests of a set of levels, evaluated for one profile against n candidates
    in about one numpy call per group: nulls, string equality, each list, each point.

    `evaluate` returns a (rows, n) bool array (bool, not float: numpy's comparisons write
    bool without a cast, about twice as fast at this size); `row(test)` says which row holds a test. The
    last row is `Always`, all true: a constant term for whoever combines the rows (the scorer's table
    offsets). Immutable once built; safe to share between threads.
    """

    __slots__ = (
        "_conjunctions", "_equal", "_list_columns", "_lists", "_points", "_rare", "_rows", "_spans", "height",
    )  # fmt: skip

    def __init__(self, tests: Iterable[Test]) -> None:
        given: list[Test] = [t for t in tests if not isinstance(t, Always)]
        # The parts of a conjunction get rows of their own, evaluated before it.
        parts: list[Test] = [part for t in given if isinstance(t, AllOf) for part in t.tests]
        distinct = list(dict.fromkeys(t for t in parts + given if not isinstance(t, Always)))
        rows: dict[Test, int] = {IsNull(c): i for i, c in enumerate(COLUMNS)}
        height = len(COLUMNS)
        self._equal = height if any(isinstance(t, Equal) for t in distinct) else -1
        if self._equal >= 0:
            rows.update({Equal(c): height + j for j, c in enumerate(STRING_COLUMNS)})
            height += len(STRING_COLUMNS)
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
            bits = NULL_BIT[point[0]] | NULL_BIT[point[1]]
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
        self._rare: list[tuple[int, str, NDArray[np.float64]]] = []
        for rare in distinct:
            if isinstance(rare, RarerThan) and rare.column in COLUMNS:
                self._rare.append((height, rare.column, np.array(rare.log2_below)))
                rows[rare] = height
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
            equal = out[self._equal : self._equal + len(STRING_COLUMNS)]
            np.equal(right.keys, left.keys, out=equal)
            if left_nulls & STRING_NULL_BITS:  # NULL = NULL held above; in SQL it is not true
                for j, column in enumerate(STRING_COLUMNS):
                    if left_nulls & NULL_BIT[column]:
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
            _cosine_at_least(right.points[point], left.vector(point), thresholds, out[block])
        for (first, last), block, gaps in self._spans:
            if left_nulls & NULL_BIT[first]:  # a span is whole or absent (encode_profiles)
                out[block] = False
                continue
            mine = (left.instant(first), left.instant(last))
            _ends_before(mine, (right.instants[first], right.instants[last]), gaps, out[block])
        for row, column, log2_below in self._rare:
            # NaN (a NULL side) compares false, as NULL < x is not true in SQL.
            held = np.less(right.log2_tf[column], log2_below, out=out[row])
            if not left.log2_tf(column) < log2_below:
                held[:] = False
        self._conjoin(out)
        return out

    def evaluate_pairs(self, left: EncodedProfiles, right: EncodedProfiles) -> BoolArray:
        """Every test for the pairs (row i of `left`, row i of `right`): (rows, n), the same
        rows `evaluate` gives for each left profile against its candidates. What a batch of
        many left profiles costs in one pass (a relink), without a probe per profile."""
        if len(left) != len(right):
            raise ValueError(f"pairs need as many left rows as right rows, got {len(left)} and {len(right)}")
        out = np.empty((self.height, len(right)), dtype=np.bool_)
        out[-1] = True  # Always
        left_null = left.nulls
        np.logical_or(right.nulls, left_null, out=out[: len(COLUMNS)])
        if self._equal >= 0:
            equal = out[self._equal : self._equal + len(STRING_COLUMNS)]
            np.equal(right.keys, left.keys, out=equal)
            equal &= ~left_null[_STRING_NULL_ROWS]  # NULL = NULL is not true
        for tests in self._lists:
            tests.evaluate_pairs(left, right, left_null[_COLUMN_ROW[tests.column]], out)
        for point, _, block, thresholds in self._points:
            held = _cosine_at_least(right.points[point], left.points[point], thresholds, out[block])
            held &= ~(left_null[_COLUMN_ROW[point[0]]] | left_null[_COLUMN_ROW[point[1]]])
        for (first, last), block, gaps in self._spans:
            mine = (left.instants[first], left.instants[last])
            held = _ends_before(mine, (right.instants[first], right.instants[last]), gaps, out[block])
            held &= ~left_null[_COLUMN_ROW[first]]
        for row, column, log2_below in self._rare:
            held = np.less(right.log2_tf[column], log2_below, out=out[row])
            held &= left.log2_tf[column] < log2_below
        self._conjoin(out)
        return out

    def _conjoin(self, out: BoolArray) -> None:
        """The conjunctions' rows, from their parts' rows of `out`."""
        for row, parts in self._conjunctions:
            np.logical_and(out[parts[0]], out[parts[1]], out=out[row])
            for part in parts[2:]:
                out[row] &= out[part]


def _cosine_at_least(theirs: FloatArray, mine: FloatArray, thresholds: FloatArray, out: BoolArray) -> BoolArray:
    """Whether the cosine of two points' unit vectors (3, n) reaches each threshold, into `out`."""
    # x_l·x_r + y_l·y_r + z_l·z_r in the order WithinKm.sql spells it, so every IEEE product and
    # sum is the one DuckDB computes: the three products in one call, then the two sums. NaN (a
    # NULL side) compares false.
    products = theirs * mine
    cosine = np.add(products[0], products[1])
    cosine += products[2]
    held: BoolArray = np.greater_equal(cosine, thresholds, out=out)
    return held


def _ends_before(
    mine: tuple[IntArray, IntArray], theirs: tuple[IntArray, IntArray], gaps: IntArray, out: BoolArray
) -> BoolArray:
    """EndsBefore on (first, last) spans, into `out` (a row per gap)."""
    (my_first, my_last), (their_first, their_last) = mine, theirs
    # "Theirs ended before mine began and began at least gap before mine, or the other way
    # round" is: the spans are disjoint, and their starts are at least gap apart (the later one
    # began after the earlier ended, so after it began). A NULL candidate span (NULL_SPAN) is
    # disjoint from none; the sentinels stay far from overflow (instants are below 2**52).
    disjoint = their_first > my_last
    disjoint |= their_last < my_first
    apart = np.subtract(their_first, my_first)
    np.absolute(apart, out=apart)
    held: BoolArray = np.greater_equal(apart, gaps, out=out)
    held &= disjoint
    return held

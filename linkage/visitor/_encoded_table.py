"""Encoded profiles of many components, one row each: candidates are a `take`, not a concat."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._encoding import PAD_KEY, EncodedProfiles, EncodedRow, empty_profiles, encode_row, word_width, write_row
from ._profile import ProfileRecord

# Fields stored column-major, (columns, n); every other array is (n, ...).
_ROW_AXIS_1 = frozenset({"nulls", "keys", "points"})
# Padding of the day-word columns, whose rows can grow wider than any before.
_FILL = {"words": PAD_KEY, "word_masks": 0}


class EncodedTable:
    """Rows of `EncodedProfiles` kept in growable arrays, addressed by component id."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._backing: EncodedProfiles | None = None
        self._rows: dict[int, int] = {}
        self._free: list[int] = []

    def __contains__(self, component: int) -> bool:
        return component in self._rows

    def _row_of(self, component: int) -> int:
        """The component's row, given one (and room for it) if it has none."""
        assert self._backing is not None
        row = self._rows.get(component)
        if row is None:
            row = self._free.pop() if self._free else len(self._rows)
            if row >= len(self._backing.unique_ids):
                self._backing = _grow(self._backing, 2 * len(self._backing.unique_ids))
            self._rows[component] = row
        return row

    def put_row(self, component: int, row: EncodedRow) -> None:
        """Store an encoded record as the component's row (replacing any earlier one), written
        in place: no one-row encoding is built on the way."""
        if self._backing is None:
            self._backing = empty_profiles(self._capacity)
        index = self._row_of(component)
        backing = self._backing
        for column, words in backing.words.items():
            if word_width(row, column) > words.shape[1]:
                # A row wider than any before (a long run of active days): widen the columns.
                backing = _widen(backing, column, word_width(row, column))
        self._backing = backing
        write_row(backing, index, row)

    def put_record(self, component: int, record: ProfileRecord) -> None:
        """`put_row` of the record's encoding."""
        self.put_row(component, encode_row(record))

    def drop(self, component: int) -> None:
        row = self._rows.pop(component, None)
        if row is not None:
            self._free.append(row)

    def located(self, component: int) -> tuple[EncodedProfiles, int]:
        """The table's profiles and the component's row in them (valid until the next put):
        what a probe reads, without a one-row copy."""
        assert self._backing is not None
        return self._backing, self._rows[component]

    def rows(self, components: Iterable[int], count: int = -1) -> NDArray[np.intp]:
        """The table rows of `components` (every one put), for `take_rows`: valid until the
        next put. `count`, when known, saves a resize."""
        return np.fromiter(map(self._rows.__getitem__, components), dtype=np.intp, count=count)

    def take_rows(self, rows: NDArray[np.intp]) -> EncodedProfiles:
        """The profiles at these table rows (`rows`), in that order."""
        assert self._backing is not None
        return self._backing.take(rows)

    def take(self, components: Iterable[int]) -> EncodedProfiles:
        """The rows of `components`, in that order; every one must have been put."""
        assert self._backing is not None
        return self._backing.take([self._rows[c] for c in components])


def _each(profiles: EncodedProfiles) -> Iterable[tuple[str, Any]]:
    for f in fields(profiles):
        yield f.name, getattr(profiles, f.name)


def _grow(profiles: EncodedProfiles, capacity: int) -> EncodedProfiles:
    def grow(name: str, array: np.ndarray) -> np.ndarray:
        axis = 1 if name in _ROW_AXIS_1 else 0
        extra = capacity - array.shape[axis]
        if extra <= 0:
            return array
        shape = list(array.shape)
        shape[axis] = extra
        return np.concatenate([array, np.zeros(shape, dtype=array.dtype)], axis=axis)

    changes: dict[str, Any] = {}
    for name, value in _each(profiles):
        if isinstance(value, np.ndarray):
            changes[name] = grow(name, value)
        else:
            changes[name] = {k: grow(name, v) for k, v in value.items()}
    return replace(profiles, **changes)


def _widen(backing: EncodedProfiles, column: str, width: int) -> EncodedProfiles:
    """The backing with an INT_LIST column's word rows padded to `width`."""
    changes: dict[str, Any] = {}
    for name in ("words", "word_masks"):
        target = getattr(backing, name)
        array = target[column]
        pad = np.full((array.shape[0], width - array.shape[1]), _FILL[name], dtype=array.dtype)
        changes[name] = {**target, column: np.concatenate([array, pad], axis=1)}
    return replace(backing, **changes)

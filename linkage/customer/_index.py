"""The customer attributes the service matches on: one record per source key, blocking indexes
over them, and the term frequencies of their values."""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._catalogue import CUSTOMER_BLOCKING, TF_COLUMNS, CustomerAttributes

# (rule, value) for a one-column rule, (rule, (value, value, ...)) for a longer one.
_Block = tuple[int, object]
# Per blocking rule: its number, a getter of its columns' values, whether it has one column
# (attrgetter of one name gives the value, of several a tuple).
_RULES: tuple[tuple[int, Callable[[CustomerAttributes], Any], bool], ...] = tuple(
    (rule, operator.attrgetter(*columns), len(columns) == 1) for rule, columns in enumerate(CUSTOMER_BLOCKING)
)
_TF_VALUES = tuple((column, operator.attrgetter(column)) for column in TF_COLUMNS)


class CustomerIndex:
    """Attributes by source-key identifier, found again by any blocking rule they satisfy.

    Each block keeps its keys sorted, so candidates come in one deterministic order without
    sorting at every lookup; each key keeps its blocks, computed once when it is put."""

    def __init__(self, candidate_limit: int = 200, tf_population: int = 1) -> None:
        self._candidate_limit = candidate_limit
        self._tf_population = tf_population
        self._attributes: dict[str, CustomerAttributes] = {}
        self._fingerprints: dict[str, str] = {}
        self._blocks: dict[_Block, list[str]] = {}  # keys in sorted order
        self._blocks_of: dict[str, list[_Block]] = {}
        self._counts: dict[str, Counter[str]] = {column: Counter() for column in TF_COLUMNS}
        self._totals: dict[str, int] = dict.fromkeys(TF_COLUMNS, 0)

    def __len__(self) -> int:
        return len(self._attributes)

    def fingerprint(self, key: str) -> str | None:
        return self._fingerprints.get(key)

    def attributes(self, key: str) -> CustomerAttributes:
        return self._attributes[key]

    def put(self, key: str, attributes: CustomerAttributes, fingerprint: str) -> None:
        self.remove(key)
        self._attributes[key] = attributes
        self._fingerprints[key] = fingerprint
        blocks = self._blocks_of[key] = _blocks(attributes)
        index = self._blocks
        for block in blocks:
            keys = index.get(block)
            if keys is None:
                index[block] = [key]
                continue
            at = bisect_left(keys, key)
            if at == len(keys) or keys[at] != key:
                keys.insert(at, key)
        for column, get in _TF_VALUES:
            value = get(attributes)
            if value is not None:
                self._counts[column][value] += 1
                self._totals[column] += 1

    def remove(self, key: str) -> None:
        attributes = self._attributes.pop(key, None)
        self._fingerprints.pop(key, None)
        if attributes is None:
            return
        for block in self._blocks_of.pop(key):
            keys = self._blocks[block]
            at = bisect_left(keys, key)
            if at < len(keys) and keys[at] == key:
                del keys[at]
            if not keys:
                del self._blocks[block]
        for column, get in _TF_VALUES:
            value = get(attributes)
            if value is not None:
                counts = self._counts[column]
                counts[value] -= 1
                if counts[value] <= 0:
                    del counts[value]
                self._totals[column] -= 1

    def candidates(self, attributes: CustomerAttributes, leave_out: str) -> list[str]:
        """Keys sharing a blocking rule with `attributes`, the first rules' first (within a rule,
        in key order), at most the index's candidate limit."""
        blocks = self._blocks_of.get(leave_out) if self._attributes.get(leave_out) is attributes else None
        if blocks is None:
            blocks = _blocks(attributes)
        limit = self._candidate_limit
        # `leave_out` goes in first so it is never added, and comes off the front at the end:
        # the others keep the order they were found in. Found so far: len(found) - 1.
        found: dict[str, None] = {leave_out: None}
        index = self._blocks
        for block in blocks:
            keys = index.get(block)
            if keys is None:
                continue
            if len(found) + len(keys) <= limit + 1:  # the whole block fits under the limit
                found.update(dict.fromkeys(keys))
                if len(found) > limit:
                    break
                continue
            for key in keys:
                if key not in found:
                    found[key] = None
                    if len(found) > limit:
                        return list(found)[1:]
        return list(found)[1:]

    def term_frequency(self, column: str, value: str) -> float | None:
        """The share of records holding `value` in `column` (Splink's tf), None if unknown.

        The share is of at least `tf_population` records (the population the model was trained
        on): in a store that holds a handful of records every name is "common", and the model
        would refuse the matches it was trained to make."""
        counts = self._counts.get(column)
        if counts is None:
            return None
        count = counts.get(value, 0)
        return count / max(self._totals[column], self._tf_population) if count else None


def _blocks(attributes: CustomerAttributes) -> list[_Block]:
    blocks: list[_Block] = []
    for rule, get, single in _RULES:
        values = get(attributes)
        if single:
            if values is not None:
                blocks.append((rule, values))
        elif None not in values:
            blocks.append((rule, values))
    return blocks

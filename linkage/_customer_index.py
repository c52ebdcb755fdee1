"""The customer attributes the service matches on: one record per source key, blocking indexes
over them, and the term frequencies of their values."""

from __future__ import annotations

from collections import Counter

from ._customer_catalogue import CUSTOMER_BLOCKING, TF_COLUMNS, CustomerAttributes

_Block = tuple[int, tuple[str, ...]]  # (rule, values)


class CustomerIndex:
    """Attributes by source-key identifier, found again by any blocking rule they satisfy."""

    def __init__(self, candidate_limit: int = 200, tf_population: int = 1) -> None:
        self._candidate_limit = candidate_limit
        self._tf_population = tf_population
        self._attributes: dict[str, CustomerAttributes] = {}
        self._fingerprints: dict[str, str] = {}
        self._blocks: dict[_Block, set[str]] = {}
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
        for block in _blocks(attributes):
            self._blocks.setdefault(block, set()).add(key)
        for column in TF_COLUMNS:
            value = attributes.value(column)
            if value is not None:
                self._counts[column][value] += 1
                self._totals[column] += 1

    def remove(self, key: str) -> None:
        attributes = self._attributes.pop(key, None)
        self._fingerprints.pop(key, None)
        if attributes is None:
            return
        for block in _blocks(attributes):
            keys = self._blocks[block]
            keys.discard(key)
            if not keys:
                del self._blocks[block]
        for column in TF_COLUMNS:
            value = attributes.value(column)
            if value is not None:
                counts = self._counts[column]
                counts[value] -= 1
                if counts[value] <= 0:
                    del counts[value]
                self._totals[column] -= 1

    def candidates(self, attributes: CustomerAttributes, leave_out: str) -> list[str]:
        """Keys sharing a blocking rule with `attributes`, the first rules' first, at most the
        index's candidate limit."""
        found: dict[str, None] = {}
        for block in _blocks(attributes):
            for key in sorted(self._blocks.get(block, ())):
                if key != leave_out:
                    found[key] = None
                    if len(found) >= self._candidate_limit:
                        return list(found)
        return list(found)

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
    blocks = []
    for rule, columns in enumerate(CUSTOMER_BLOCKING):
        values = [value for c in columns if (value := attributes.value(c)) is not None]
        if len(values) == len(columns):
            blocks.append((rule, tuple(values)))
    return blocks

"""Precision, recall and F1 by threshold from labelled pairs, and the threshold we choose."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ThresholdMetrics:
    threshold: float  # match probability
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int

    @classmethod
    def from_counts(
        cls, threshold: float, true_positives: int, false_positives: int, positives: int
    ) -> ThresholdMetrics:
        """Precision over what was predicted (1.0 when nothing was), recall over `positives`."""
        predicted = true_positives + false_positives
        precision = true_positives / predicted if predicted else 1.0
        recall = true_positives / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(threshold, precision, recall, f1, true_positives, false_positives)


@dataclass(frozen=True, slots=True)
class Evaluation:
    positives: int  # labelled true pairs, found by blocking or not
    scored_pairs: int
    by_threshold: list[ThresholdMetrics]
    chosen: ThresholdMetrics
    min_precision: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9999)


def held_out_logins(labels: Sequence[str | None], seed: int, share: float) -> set[str]:
    """The logins whose devices are kept for evaluation: a stable `share` of them, by a hash
    of the seed and the login (the same logins for every model trained or shadowed)."""

    def held(label: str) -> bool:
        digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < share

    return {label for label in set(labels) if label is not None and held(label)}


def count_positive_pairs(labels: Sequence[str | None]) -> int:
    sizes = Counter(label for label in labels if label is not None)
    return sum(n * (n - 1) // 2 for n in sizes.values())


def evaluate(
    probabilities: np.ndarray,
    same_label: np.ndarray,
    positives: int,
    min_precision: float = 0.97,
) -> Evaluation:
    """Metrics of scored pairs whose both sides are labelled.

    Pairs that blocking never produced count as missed: recall is over all `positives`;
    `choose` picks the threshold.
    """
    rows = [metrics_at(probabilities, same_label, positives, t) for t in THRESHOLDS]
    return Evaluation(positives, len(probabilities), rows, choose(rows, min_precision), min_precision)


def metrics_at(probabilities: np.ndarray, same: np.ndarray, positives: int, threshold: float) -> ThresholdMetrics:
    """Metrics of scored pairs (`same`: both sides one entity) predicted at `threshold`."""
    predicted = probabilities >= threshold
    tp = int(np.sum(predicted & same))
    fp = int(np.sum(predicted & ~same))
    return ThresholdMetrics.from_counts(threshold, tp, fp, positives)


def choose(rows: Sequence[ThresholdMetrics], min_precision: float, min_true_positives: int = 20) -> ThresholdMetrics:
    """The threshold to serve at: the best F1 among thresholds whose precision reaches
    `min_precision` on at least `min_true_positives` right predictions; when none does, the most
    precise of those with that many (a precision of 1.0 over a handful of pairs measures little);
    when none has that many, the best F1 overall. Ties go to the lower threshold."""
    measured = [r for r in rows if r.true_positives >= min_true_positives]
    eligible = [r for r in measured if r.precision >= min_precision]
    if eligible:
        return max(eligible, key=lambda r: (r.f1, -r.threshold))
    if measured:
        return max(measured, key=lambda r: (r.precision, -r.threshold))
    return max(rows, key=lambda r: (r.f1, -r.threshold))

"""Precision, recall and F1 by threshold from labelled pairs, and the threshold we choose."""

from __future__ import annotations

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

    Pairs that blocking never produced count as missed: recall is over all `positives`.
    The chosen threshold has the best F1 among those with precision ≥ `min_precision`
    (the best F1 overall when none reaches it).
    """
    rows = []
    for t in THRESHOLDS:
        predicted = probabilities >= t
        tp = int(np.sum(predicted & same_label))
        fp = int(np.sum(predicted & ~same_label))
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ThresholdMetrics(t, precision, recall, f1, tp, fp))
    eligible = [r for r in rows if r.precision >= min_precision and r.true_positives] or rows
    chosen = max(eligible, key=lambda r: (r.f1, -r.threshold))
    return Evaluation(positives, len(probabilities), rows, chosen, min_precision)

"""Held-out evaluation as the service links, and the threshold training picks from it."""

from __future__ import annotations

import pytest

from linkage import BUNDLED_MODEL, VisitorModel
from linkage.visitor._profile import ProfileRecord
from training._evaluate import ThresholdMetrics, choose
from training._link_evaluation import evaluate_links

DAY = 86_400
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1"


def _row(threshold: float, tp: int, fp: int, positives: int = 1000) -> ThresholdMetrics:
    return ThresholdMetrics.from_counts(threshold, tp, fp, positives)


def test_a_perfect_precision_over_a_handful_is_not_enough() -> None:
    rows = [_row(0.5, 300, 60), _row(0.8, 60, 2), _row(0.95, 5, 0)]
    assert choose(rows, min_precision=0.97).threshold == 0.8


def test_without_enough_measured_precision_the_most_precise_measured_threshold_wins() -> None:
    rows = [_row(0.5, 300, 90), _row(0.8, 40, 4), _row(0.9, 19, 0)]
    assert choose(rows, min_precision=0.97).threshold == 0.8


def test_among_precise_enough_thresholds_the_best_f1_wins() -> None:
    rows = [_row(0.5, 300, 90), _row(0.7, 200, 5), _row(0.9, 50, 0)]
    assert choose(rows, min_precision=0.97).threshold == 0.7


def _device(uid: int, ip: str, first_day: int, last_day: int) -> ProfileRecord:
    start = 1_748_736_000 + first_day * DAY
    end = 1_748_736_000 + last_day * DAY
    days = tuple(range(start // DAY, end // DAY + 1))
    return ProfileRecord(
        uid, ip, 1e-4, (ip,), (ip.rsplit(".", 1)[0] + ".0/24",), "DE/Berlin", "DE", None, None,
        "ios/safari/phone", "phone", (19,), days, IPHONE, start, end,
    )  # fmt: skip


def test_links_are_right_wrong_or_unknown_by_the_label_of_the_person_linked_to() -> None:
    # A browser's cookie and its successor on each of three home addresses.
    records = [
        _device(1, "81.0.0.1", 0, 5), _device(2, "81.0.0.1", 8, 12),  # held-out login h1, both
        _device(3, "82.0.0.1", 0, 5), _device(4, "82.0.0.1", 8, 12),  # h2, and training login t1
        _device(5, "83.0.0.1", 0, 5), _device(6, "83.0.0.1", 8, 12),  # h3, and nobody's
    ]  # fmt: skip
    labels = ["h1", "h1", "h2", "t1", "h3", None]
    scorer = VisitorModel.load(BUNDLED_MODEL).scorer

    evaluation = evaluate_links(scorer, records, labels, held_out={"h1", "h2", "h3"}, min_precision=0.97)

    assert evaluation.positives == 2  # the two devices of h1 each have the other to find
    assert evaluation.scored_pairs == 4  # each of the four held-out devices met its one neighbour
    lowest = evaluation.by_threshold[0]
    assert (lowest.true_positives, lowest.false_positives) == (2, 1)  # h3's link is unknown
    assert lowest.precision == pytest.approx(2 / 3) and lowest.recall == 1.0

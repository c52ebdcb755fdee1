"""How a visitor's probability is shared among the candidate persons that could be it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from linkage.softlinks import MAX_HOUSEHOLD_PERSONS, household_rows, person_probabilities


def _pairwise(weight: float) -> float:
    return 1.0 / (1.0 + 2.0**-weight)


@pytest.mark.parametrize("weight", [-20.0, -1.0, 0.0, 3.5, 12.0])
def test_one_candidate_keeps_its_pairwise_probability(weight: float) -> None:
    assert person_probabilities(np.array([weight]))[0] == pytest.approx(_pairwise(weight), rel=1e-12)


def test_two_persons_that_explain_it_equally_well_each_get_under_a_half() -> None:
    both = person_probabilities(np.array([6.0, 6.0]))
    assert both[0] == pytest.approx(both[1])
    assert both[0] < 0.5 < _pairwise(6.0)
    assert both.sum() == pytest.approx(2**6 * 2 / (1 + 2**6 * 2))


def test_a_weak_rival_takes_little() -> None:
    strong, weak = person_probabilities(np.array([10.0, -5.0]))
    assert strong == pytest.approx(2**10 / (1 + 2**10 + 2**-5))
    assert strong > 0.99 and weak < 1e-4


def test_huge_weights_do_not_overflow() -> None:
    shares = person_probabilities(np.array([5000.0, 4999.0, -5000.0]))
    assert np.all(np.isfinite(shares))
    assert shares[0] == pytest.approx(2 / 3) and shares[1] == pytest.approx(1 / 3)
    assert math.isclose(float(shares.sum()), 1.0)


def test_two_persons_sure_together_but_neither_alone_are_a_household() -> None:
    shares = person_probabilities(np.array([6.0, 6.0, -4.0]))
    rows = household_rows(shares, threshold=0.8)
    assert rows is not None and sorted(rows.tolist()) == [0, 1]


def test_one_person_sure_alone_is_no_household() -> None:
    assert household_rows(person_probabilities(np.array([12.0, 1.0])), threshold=0.8) is None


def test_the_colleagues_behind_one_office_address_are_no_household() -> None:
    """300 persons each weakly like the visitor: together they reach the threshold, but no
    few of them do, and a household answer names at most a few."""
    shares = person_probabilities(np.full(300, 1.0))
    assert shares.sum() > 0.8
    assert household_rows(shares, threshold=0.8) is None
    assert MAX_HOUSEHOLD_PERSONS <= 6


def test_the_fewest_persons_that_reach_the_threshold_are_chosen() -> None:
    shares = np.array([0.5, 0.35, 0.1, 0.04])
    rows = household_rows(shares, threshold=0.8)
    assert rows is not None and rows.tolist() == [0, 1]

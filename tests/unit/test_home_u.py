"""The split of the two home levels' u by labelled household pairs (`training._home_u`)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from linkage import BUNDLED_MODEL
from linkage.modelling import Both, ExactMatch, ListOverlap, ProfileRecord, Successive
from training._home_u import split_home_u
from training._visitor_settings import HOME_AND_AGENT_LABEL, HOME_AND_PLACE_LABEL, HOME_LABEL, SEEN_HOME_AND_AGENT_LABEL

_SPAN = ("agent_first_seen", "agent_last_seen")


def _device(uid: int, places: tuple[str, ...], homes: tuple[str, ...] = ("home-1",)) -> ProfileRecord:
    ip = f"81.2.{uid}.7"  # every device its own address: no pair falls on the address levels
    return ProfileRecord(
        uid, ip, 0.001, (ip,), (f"81.2.{uid}.0/24",), "DE/berlin", "DE", None, None,
        "ios/safari/phone", "phone", (19,), (20000,), homes=homes, places=places, homes_seen=homes,
    )  # fmt: skip


def _home_u(model_path: Path) -> tuple[float, float]:
    model = json.loads(model_path.read_text())
    levels = {level.get("label_for_charts"): level for level in model["comparisons"][0]["comparison_levels"]}
    return levels[HOME_AND_PLACE_LABEL]["u_probability"], levels[HOME_LABEL]["u_probability"]


def test_the_home_levels_keep_their_total_u_and_divide_it_as_the_household_pairs_do(tmp_path: Path) -> None:
    model_path = tmp_path / "model.json"
    shutil.copy(BUNDLED_MODEL, model_path)
    both_before, home_before = _home_u(model_path)
    records = [
        _device(1, ("home-1", "gym")),  # a's phone
        _device(2, ("home-1", "gym", "office")),  # a's laptop: one person, not a household pair
        _device(3, ("home-1", "gym")),  # b, who goes to a's gym: the one household pair on both levels
        _device(4, ("home-1",)),  # b's tablet
        _device(5, ("home-1",)),  # c
        _device(6, ("home-2", "gym"), homes=("home-2",)),  # another home's: pairs with nobody here
        _device(7, ("home-1", "gym")),  # unlabelled: no evidence either way
    ]
    labels = ["a", "a", "b", "b", "c", "d", None]

    split = split_home_u(model_path, records, labels)

    assert split is not None
    # Non-matching labelled pairs of home-1: a x b (4), a x c (2), b x c (2). Those on "the same
    # home and another place": (1, 3) and (2, 3), which share home-1 and the gym.
    assert (split.household_pairs, split.pairs[HOME_AND_PLACE_LABEL]) == (8, 2)
    both, home = _home_u(model_path)
    others = sum(u for label, u in split.u.items() if label not in (HOME_AND_PLACE_LABEL, HOME_LABEL))
    assert both + home + others == pytest.approx(sum(split.u_before.values()), rel=1e-12)
    # Half a pair of smoothing on each of the model's home levels.
    levels = len(split.u)
    assert both / (both + home + others) == pytest.approx(2.5 / (8 + 0.5 * levels))
    assert split.u_before[HOME_AND_PLACE_LABEL] == both_before and split.u[HOME_AND_PLACE_LABEL] == both
    assert split.u_before[HOME_LABEL] == home_before


def test_without_labelled_household_pairs_the_model_is_left_alone(tmp_path: Path) -> None:
    model_path = tmp_path / "model.json"
    shutil.copy(BUNDLED_MODEL, model_path)
    before = model_path.read_bytes()

    assert split_home_u(model_path, [_device(1, ("home-1",)), _device(2, ("home-1",))], ["a", "a"]) is None
    assert model_path.read_bytes() == before


def test_a_third_home_level_takes_its_share_of_the_household_pairs(tmp_path: Path) -> None:
    """With "the same home and user agent, in turn" in the model (the bundled one has it), the
    household pairs on it get their share of the home levels' u too."""
    model = json.loads(BUNDLED_MODEL.read_text())
    levels = model["comparisons"][0]["comparison_levels"]
    in_turn = Both(ListOverlap("homes", 1), Both(ExactMatch("user_agent"), Successive(*_SPAN, 0)))
    assert [level["sql_condition"] for level in levels if level["label_for_charts"] == HOME_AND_AGENT_LABEL] == [
        in_turn.sql()
    ]
    model_path = tmp_path / "model.json"
    shutil.copy(BUNDLED_MODEL, model_path)
    day = 86_400
    records = [
        replace(_device(1, ("home-1",)), user_agent="UA", agent_first_seen=day, agent_last_seen=2 * day),  # a
        replace(_device(2, ("home-1",)), user_agent="UA", agent_first_seen=3 * day, agent_last_seen=4 * day),  # b
        replace(_device(3, ("home-1",)), user_agent="UA", agent_first_seen=day, agent_last_seen=4 * day),  # c
        _device(4, ("home-1", "gym")),  # a's laptop
        _device(5, ("home-1", "gym")),  # b's laptop
    ]
    split = split_home_u(model_path, records, ["a", "b", "c", "a", "b"])

    assert split is not None
    # Non-matching pairs: (1,2) in turn; (1,3), (2,3) at the same time: home only; (4,5) home
    # and the gym; (1,5), (2,4), (3,4), (3,5) home only.
    # No device here has only passed through the home: none on "on one home and user agent".
    assert split.pairs == {
        HOME_AND_PLACE_LABEL: 1,
        HOME_AND_AGENT_LABEL: 1,
        SEEN_HOME_AND_AGENT_LABEL: 0,
        HOME_LABEL: 6,
    }
    total = sum(split.u_before.values())
    # Half a pair of smoothing on each of the four home levels.
    assert split.u[HOME_AND_AGENT_LABEL] == pytest.approx(total * 1.5 / (8 + 0.5 * 4))
    assert sum(split.u.values()) == pytest.approx(total, rel=1e-12)


def test_a_home_one_side_only_passed_through_counts_for_the_split(tmp_path: Path) -> None:
    """A browser's next cookie that has not settled on its home yet shares it with the household
    all the same (`homes_seen`): its pairs with the other members are household pairs too, and
    with the same string in turn they fall on "on one home and user agent, in turn"."""
    model = json.loads(BUNDLED_MODEL.read_text())
    labels_in_model = [level["label_for_charts"] for level in model["comparisons"][0]["comparison_levels"]]
    assert SEEN_HOME_AND_AGENT_LABEL in labels_in_model
    model_path = tmp_path / "model.json"
    shutil.copy(BUNDLED_MODEL, model_path)
    day = 86_400
    records = [
        # a's phone, settled at home; b's new cookie of the same string, one day there so far.
        replace(_device(1, ("home-1",)), user_agent="UA", agent_first_seen=day, agent_last_seen=2 * day),
        replace(
            _device(2, (), homes=()),
            homes=None,
            places=None,
            homes_seen=("home-1",),
            user_agent="UA",
            agent_first_seen=9 * day,
            agent_last_seen=9 * day,
        ),
        _device(3, ("home-1",)),  # c's laptop
    ]
    split = split_home_u(model_path, records, ["a", "b", "c"])

    assert split is not None
    # (1,2): on one home, in turn, 8 days apart; (1,3): the same home; (2,3): b never settled
    # and the strings differ, so no home level.
    assert split.pairs[SEEN_HOME_AND_AGENT_LABEL] == 1 and split.pairs[HOME_LABEL] == 1
    assert split.household_pairs == 2

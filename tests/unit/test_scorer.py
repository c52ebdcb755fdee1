"""The online scorer and its level catalogue, without Splink: recognition, NULLs, TF, waterfalls.

Parity with Splink itself is tests/test_scorer_parity.py; here a hand-built model checks the
rules one at a time, fast.
"""

from __future__ import annotations

import copy
import math
import random
import subprocess
import sys
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from linkage.splinkjson import model_version
from linkage.visitor._catalogue import (
    EARTH_RADIUS_KM,
    Both,
    Else,
    ExactMatch,
    Level,
    LevelPlan,
    ListJaccard,
    ListOverlap,
    ModelError,
    NullLevel,
    Successive,
    TermFrequency,
    WithinKm,
    comparison_settings,
    recognise_level,
)
from linkage.visitor._encoded_table import EncodedTable
from linkage.visitor._encoding import encode_profiles
from linkage.visitor._profile import ProfileRecord
from linkage.visitor._scorer import VisitorScorer

TF_MINIMUM_U = 1e-5
U_EXACT_TOP_IP = 0.004


def _record(unique_id: int, **fields: Any) -> ProfileRecord:
    base: dict[str, Any] = {
        "top_ip": "10.0.0.1",
        "tf_top_ip": 0.01,
        "ips": ("10.0.0.1", "10.0.0.2"),
        "ip_prefixes": ("10.0.0.0/24",),
        "city": "DE/berlin",
        "country": "DE",
        "latitude": 52.52,
        "longitude": 13.405,
        "user_agent_family": "ios/safari/phone",
        "device_kind": "phone",
        "active_hours": (8, 9, 20),
        "active_days": (20000, 20001, 20005),
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_4 like Mac OS X)",
        "agent_first_seen": 1_728_000_000,
        "agent_last_seen": 1_728_100_000,
    }
    base.update(fields)
    return ProfileRecord(unique_id=unique_id, **base)


def _model() -> dict[str, Any]:
    """A trained-looking model in Splink's JSON shape, built from the catalogue."""
    comparisons = [
        comparison_settings(
            "ip",
            [
                LevelPlan(NullLevel(("ips",))),
                LevelPlan(ExactMatch("top_ip"), term_frequency=TermFrequency("top_ip", 1.0, TF_MINIMUM_U)),
                LevelPlan(ListOverlap("ips", 1)),
                LevelPlan(ListOverlap("ip_prefixes", 1)),
                LevelPlan(Else()),
            ],
        ),
        comparison_settings(
            "city",
            [
                LevelPlan(NullLevel(("country",))),
                LevelPlan(ExactMatch("city")),
                LevelPlan(ExactMatch("country")),
                LevelPlan(Else()),
            ],
        ),
        comparison_settings(
            "gps",
            [
                LevelPlan(NullLevel(("latitude", "longitude"))),
                LevelPlan(WithinKm("latitude", "longitude", 0.5)),
                LevelPlan(WithinKm("latitude", "longitude", 5.0)),
                LevelPlan(Else()),
            ],
        ),
        comparison_settings(
            "active_hours",
            [
                LevelPlan(NullLevel(("active_hours",))),
                LevelPlan(ListJaccard("active_hours", Fraction(1, 2))),
                LevelPlan(Else()),
            ],
        ),
        comparison_settings(
            "active_days",
            [
                LevelPlan(NullLevel(("active_days",))),
                LevelPlan(ListOverlap("active_days", 3)),
                LevelPlan(ListOverlap("active_days", 1)),
                LevelPlan(Else()),
            ],
        ),
    ]
    m_u = {
        "ip": [(0.6, U_EXACT_TOP_IP), (0.2, 0.01), (0.1, 0.05), (0.1, 0.936)],
        "city": [(0.8, 0.05), (0.15, 0.3), (0.05, 0.65)],
        "gps": [(0.7, 0.001), (0.2, 0.05), (0.1, 0.949)],
        "active_hours": [(0.6, 0.2), (0.4, 0.8)],
        "active_days": [(0.5, 0.01), (0.3, 0.1), (0.2, 0.89)],
    }
    for comparison in comparisons:
        trained = iter(m_u[comparison["output_column_name"]])
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                level["m_probability"], level["u_probability"] = next(trained)
    return {
        "link_type": "dedupe_only",
        "probability_two_random_records_match": 0.001,
        "sql_dialect": "duckdb",
        "comparisons": comparisons,
    }


@pytest.fixture(scope="module")
def scorer() -> VisitorScorer:
    return VisitorScorer.from_model(_model())


def _score_one(scorer: VisitorScorer, left: ProfileRecord, *right: ProfileRecord) -> Any:
    return scorer.score(encode_profiles([left]), encode_profiles(right))


def _column(scorer: VisitorScorer, name: str) -> int:
    return scorer.comparison_names.index(name)


# -- the catalogue ------------------------------------------------------------------------------

LEVELS: list[Level] = [
    NullLevel(("ips",)),
    NullLevel(("latitude", "longitude")),
    ExactMatch("top_ip"),
    ListOverlap("ips", 1),
    ListOverlap("active_days", 3),
    ListJaccard("active_hours", Fraction(1, 5)),
    ListJaccard("ip_prefixes", Fraction(2, 3)),
    WithinKm("latitude", "longitude", 0.5),
    WithinKm("latitude", "longitude", 12.25),
    Successive("agent_first_seen", "agent_last_seen", 0),
    Successive("agent_first_seen", "agent_last_seen", 604_800),
    Both(ExactMatch("user_agent"), Successive("agent_first_seen", "agent_last_seen", 604_800)),
    Both(ExactMatch("city"), ListOverlap("ips", 2)),
    Both(ListOverlap("homes", 1), Both(ExactMatch("user_agent"), Successive("agent_first_seen", "agent_last_seen", 0))),
    Else(),
]


@pytest.mark.parametrize("level", LEVELS, ids=lambda level: level.sql()[:40])
def test_every_kind_is_recognised_from_its_own_sql(level: Level) -> None:
    assert recognise_level(level.sql(), comparison="c", position=0) == level


@pytest.mark.parametrize(
    ("sql", "complaint"),
    [
        ('jaro_winkler_similarity("city_l", "city_r") >= 0.9', "not a level the online scorer knows"),
        ('"city_l"  = "city_r"', "not a level the online scorer knows"),  # not the exact rendering
        ('lower("city_l") = lower("city_r")', "not a level the online scorer knows"),
        ('"city_l" = "country_r"', "not a level the online scorer knows"),
        ('"name_l" = "name_r"', "unknown column 'name'"),
        ('"ips_l" = "ips_r"', "is a string list column"),
        (
            '4 * len(list_intersect("active_hours_l", "active_hours_r")) >= 2 * (len("active_hours_l") '
            '+ len("active_hours_r") - len(list_intersect("active_hours_l", "active_hours_r")))',
            "not a level the online scorer knows",
        ),  # 2/4 is rendered 1/2
        ('len(list_intersect("ips_l", "ips_r")) >= 0', "not a level the online scorer knows"),
        ('len(list_intersect("ips_l", "ips_r")) >= 9', "at_least must be in 1..8"),
        ("else", "not a level the online scorer knows"),
        (
            '("city_l" = "city_r") AND ("ips_l" IS NULL OR "ips_r" IS NULL)',
            "not a level the online scorer knows",
        ),  # a null level is not a part of a conjunction
        (
            '"agent_last_seen_l" < "agent_first_seen_r" AND "agent_first_seen_r" - "agent_first_seen_l" >= 5 OR '
            '"agent_last_seen_r" < "agent_first_seen_l" AND "agent_first_seen_l" - "agent_first_seen_r" >= 6',
            "not a level the online scorer knows",
        ),  # the two gaps must be one
    ],
)
def test_sql_outside_the_catalogue_is_refused_naming_comparison_and_level(sql: str, complaint: str) -> None:
    model = _model()
    model["comparisons"][1]["comparison_levels"][1]["sql_condition"] = sql
    with pytest.raises(ModelError, match=r"comparison 'city', level 1") as refused:
        VisitorScorer.from_model(model)
    assert complaint in str(refused.value)


def _broken(change: Any) -> dict[str, Any]:
    model = _model()
    change(model)
    return model


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        (_broken(lambda m: m["comparisons"][1]["comparison_levels"].pop()), "ELSE must be the last level"),
        (_broken(lambda m: m.update(probability_two_random_records_match=1.0)), "must be in \\(0, 1\\)"),
        (_broken(lambda m: m.update(sql_dialect="spark")), "sql_dialect 'spark'"),
        (_broken(lambda m: m["comparisons"][2]["comparison_levels"][1].update(m_probability=0.0)), "gps.*level 1"),
        (_broken(lambda m: m["comparisons"][2]["comparison_levels"][1].update(m_probability=1.5)), "gps.*level 1"),
        (_broken(lambda m: m["comparisons"][2]["comparison_levels"][2].update(colour="red")), "unknown keys"),
        (_broken(lambda m: m["comparisons"][0]["comparison_levels"][2].update(tf_adjustment_column="ips")), "tf_ips"),
    ],
)
def test_models_splink_would_read_differently_are_refused(model: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ModelError, match=complaint):
        VisitorScorer.from_model(model)


def test_a_tf_adjustment_needs_an_exact_match_level_on_its_column() -> None:
    model = _model()
    ip_levels = model["comparisons"][0]["comparison_levels"]
    ip_levels[2].update(tf_adjustment_column="top_ip")  # TF on "shares an IP", measured from the exact level
    VisitorScorer.from_model(model)
    del ip_levels[1]  # no exact-match level on top_ip left
    with pytest.raises(ModelError, match=r"comparison 'ip', level 1: .*no exact-match level"):
        VisitorScorer.from_model(model)


def test_missing_m_and_u_read_as_splinks_defaults() -> None:
    """Splink writes no m/u for a level training did not estimate and, loading the file,
    starts from defaults whose weights are -5 .. 3 evenly, then 10 for the top level."""
    model = _model()
    for level in model["comparisons"][4]["comparison_levels"]:  # active_days: 3 levels and null
        level.pop("m_probability", None)
        level.pop("u_probability", None)
    days = VisitorScorer.from_model(model).comparisons[4]
    assert [level.comparison_vector_value for level in days.levels] == [-1, 2, 1, 0]
    assert [level.match_weight for level in days.levels] == pytest.approx([0.0, 10.0, 3.0, -5.0])


def test_version_is_the_canonical_json() -> None:
    model = _model()
    reordered = dict(reversed(list(copy.deepcopy(model).items())))
    assert model_version(model) == model_version(reordered) == VisitorScorer.from_model(model).version
    model["comparisons"][0]["comparison_levels"][1]["m_probability"] = 0.61
    assert model_version(model) != model_version(reordered)


def test_comparison_settings_refuse_what_splink_would_not_round_trip() -> None:
    with pytest.raises(ValueError, match="last level must be Else"):
        comparison_settings("c", [LevelPlan(ExactMatch("city"))])
    with pytest.raises(ValueError, match="needs an exact-match level"):
        comparison_settings(
            "c", [LevelPlan(ListOverlap("ips", 1), term_frequency=TermFrequency("top_ip")), LevelPlan(Else())]
        )
    with pytest.raises(ValueError, match="weight of 0"):
        LevelPlan(ExactMatch("top_ip"), term_frequency=TermFrequency("top_ip", weight=0.0))


def test_the_scorer_imports_neither_splink_nor_grpc() -> None:
    code = (
        "import sys, linkage.visitor._scorer; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'splink', 'grpc'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- scoring ------------------------------------------------------------------------------------


def test_waterfall_steps_sum_to_the_match_weight(scorer: VisitorScorer) -> None:
    rng = random.Random(7)
    left = _record(0)
    right = [
        _record(
            i,
            top_ip=rng.choice(["10.0.0.1", "10.0.0.9", None]),
            tf_top_ip=rng.choice([0.2, 1e-4, None]),
            ips=rng.choice([("10.0.0.2",), ("10.0.1.5",), ("10.0.0.1", "10.0.0.7"), None]),
            ip_prefixes=rng.choice([("10.0.0.0/24",), ("10.0.1.0/24",), None]),
            city=rng.choice(["DE/berlin", "DE/hamburg", None]),
            latitude=52.52 + rng.uniform(-0.05, 0.05),
            active_hours=rng.choice([(8, 9, 20), (8, 9), (1, 2, 3, 4), None]),
            active_days=rng.choice([(20000, 20001, 20005), (20005, 20300), None]),
        )
        for i in range(1, 200)
    ]
    scores = _score_one(scorer, left, *right)
    assert len(scores) == len(right)
    for row in range(len(scores)):
        waterfall = scorer.waterfall(scores, row)
        parts = waterfall.prior_match_weight + sum(step.match_weight for step in waterfall.steps)
        assert parts == pytest.approx(waterfall.match_weight, abs=1e-9)
        assert math.isclose(waterfall.match_probability, 1 / (1 + 2**-waterfall.match_weight), rel_tol=1e-12)
        assert [s.comparison for s in waterfall.steps] == list(scorer.comparison_names)
    total = scorer.prior_match_weight + scores.comparison_weights.sum(axis=1)
    np.testing.assert_allclose(total, scores.match_weight, atol=1e-9)


def _ip_weight(scorer: VisitorScorer, left: ProfileRecord, right: ProfileRecord) -> tuple[float, float, int]:
    scores = _score_one(scorer, left, right)
    ip = _column(scorer, "ip")
    return float(scores.comparison_weights[0, ip]), float(scores.tf_adjustments[0, ip]), int(scores.gammas[0, ip])


def test_a_rarer_top_ip_is_stronger_evidence(scorer: VisitorScorer) -> None:
    home = _ip_weight(scorer, _record(1, tf_top_ip=1e-4), _record(2, tf_top_ip=1e-4))
    office = _ip_weight(scorer, _record(1, tf_top_ip=0.2), _record(2, tf_top_ip=0.2))
    assert home[2] == office[2] == 3  # both at the exact top-IP level
    assert home[0] > office[0] + 10
    # Splink's formula: log2(u_exact) - log2(greatest(tf_l, tf_r, minimum u)).
    assert home[1] == pytest.approx(math.log2(U_EXACT_TOP_IP) - math.log2(1e-4))
    assert office[1] == pytest.approx(math.log2(U_EXACT_TOP_IP) - math.log2(0.2))


def test_tf_takes_the_larger_side_the_present_side_and_the_floor(scorer: VisitorScorer) -> None:
    u = math.log2(U_EXACT_TOP_IP)
    assert _ip_weight(scorer, _record(1, tf_top_ip=1e-4), _record(2, tf_top_ip=0.1))[1] == pytest.approx(
        u - math.log2(0.1)
    )
    assert _ip_weight(scorer, _record(1, tf_top_ip=None), _record(2, tf_top_ip=0.1))[1] == pytest.approx(
        u - math.log2(0.1)
    )
    assert _ip_weight(scorer, _record(1, tf_top_ip=0.1), _record(2, tf_top_ip=None))[1] == pytest.approx(
        u - math.log2(0.1)
    )
    assert _ip_weight(scorer, _record(1, tf_top_ip=None), _record(2, tf_top_ip=None))[1] == 0.0
    floored = _ip_weight(scorer, _record(1, tf_top_ip=1e-9), _record(2, tf_top_ip=1e-8))[1]
    assert floored == pytest.approx(u - math.log2(TF_MINIMUM_U))
    # Not at the exact level, no adjustment, whatever the tf values.
    assert _ip_weight(scorer, _record(1, tf_top_ip=1e-4), _record(2, top_ip="10.0.0.2", tf_top_ip=1e-4))[1:] == (0.0, 2)


def test_nulls_fall_as_in_sql(scorer: VisitorScorer) -> None:
    ip, city, gps, days = (_column(scorer, c) for c in ("ip", "city", "gps", "active_days"))
    # A NULL on the left: the null level for every candidate, weight 0.
    scores = _score_one(scorer, _record(1, ips=None), _record(2), _record(3, ips=None))
    assert scores.gammas[:, ip].tolist() == [-1, -1]
    assert scores.comparison_weights[:, ip].tolist() == [0.0, 0.0]
    # Half a point is no point.
    scores = _score_one(scorer, _record(1), _record(2, longitude=None), _record(3, latitude=None, longitude=None))
    assert scores.gammas[:, gps].tolist() == [-1, -1]
    # NULL = NULL is not true: no top IP on either side falls through to "shares an IP".
    scores = _score_one(scorer, _record(1, top_ip=None), _record(2, top_ip=None))
    assert scores.gammas[0, ip] == 2
    # Same country, no city on either side: the country level, not the city level.
    scores = _score_one(scorer, _record(1, city=None), _record(2, city=None), _record(3))
    assert scores.gammas[:, city].tolist() == [1, 1]
    # A NULL list shares nothing (DuckDB's list_intersect(x, NULL) is [], not NULL: still < 1).
    left = encode_profiles([_record(1)])
    right = encode_profiles([_record(2, active_days=None), _record(3)])
    assert ListOverlap("active_days", 1).holds(left, right).tolist() == [False, True]
    assert ListOverlap("active_days", 1).holds(right.take([0]), left).tolist() == [False]
    assert _score_one(scorer, _record(1), _record(2, active_days=None)).gammas[0, days] == -1


def test_empty_lists_are_not_null_and_compare_as_sql_does() -> None:
    """The schema never has empty lists (None instead), but if one came, numpy would read it as
    DuckDB does: two empty sets have Jaccard 0/0 and `q·0 >= p·0` holds."""
    left = encode_profiles([_record(1, active_hours=())])
    right = encode_profiles([_record(2, active_hours=()), _record(3), _record(4, active_hours=None)])
    assert NullLevel(("active_hours",)).holds(left, right).tolist() == [False, False, True]
    assert ListJaccard("active_hours", Fraction(1, 2)).holds(left, right).tolist() == [True, False, False]
    assert ListOverlap("active_hours", 1).holds(left, right).tolist() == [False, False, False]


@pytest.mark.parametrize("column", ["ips", "ip_prefixes", "active_hours", "active_days"])
def test_list_overlaps_count_the_intersection(column: str) -> None:
    rng = random.Random(column)
    width = {"ips": 8, "ip_prefixes": 8, "active_hours": 6, "active_days": 30}[column]
    if column in ("ips", "ip_prefixes"):
        pool: list[Any] = [f"v{i}" for i in range(20)]
    elif column == "active_hours":
        pool = list(range(24))
    else:  # several 64-day words, on both sides of zero
        pool = list(range(-70, 40)) + list(range(19990, 20200, 3))
    records = [_record(i, **{column: tuple(rng.sample(pool, rng.randint(0, width))) or None}) for i in range(300)]
    encoded = encode_profiles(records)
    for i in range(0, 300, 10):
        left = encoded.take([i])
        mine = set(getattr(records[i], column) or ())
        for k in (1, 2, 3):
            if k > width:
                continue
            held = ListOverlap(column, k).holds(left, encoded)
            expected = [
                getattr(records[i], column) is not None
                and getattr(r, column) is not None
                and len(mine & set(getattr(r, column))) >= k
                for r in records
            ]
            assert held.tolist() == expected, (column, i, k)
        jaccard = ListJaccard(column, Fraction(1, 3)).holds(left, encoded)
        expected = [
            getattr(records[i], column) is not None
            and getattr(r, column) is not None
            and 3 * len(mine & set(getattr(r, column))) >= len(mine | set(getattr(r, column)))
            for r in records
        ]
        assert jaccard.tolist() == expected


def test_distance_levels_turn_at_the_threshold() -> None:
    def at(km: float) -> ProfileRecord:
        return _record(1, latitude=52.52 + math.degrees(km / EARTH_RADIUS_KM), longitude=13.405)

    left = encode_profiles([_record(0, latitude=52.52, longitude=13.405)])
    right = encode_profiles([at(0.4999), at(0.5001), at(4.999), at(5.001)])
    assert WithinKm("latitude", "longitude", 0.5).holds(left, right).tolist() == [True, False, False, False]
    assert WithinKm("latitude", "longitude", 5.0).holds(left, right).tolist() == [True, True, True, False]


def test_encoding_refuses_what_splink_would_read_differently() -> None:
    for bad in (
        {"ips": ("10.0.0.1", "10.0.0.1")},
        {"tf_top_ip": 0.0},
        {"latitude": float("nan")},
        {"active_hours": (24, 64)},
        {"ips": tuple(f"10.0.0.{i}" for i in range(9))},
        {"city": 7},
        {"agent_first_seen": None},  # half a span
        {"agent_first_seen": 200, "agent_last_seen": 100},
        {"agent_last_seen": -1},
    ):
        with pytest.raises(ValueError, match="records\\[0\\]"):
            encode_profiles([_record(0, **bad)])


def test_successive_spans_turn_at_each_end_and_at_the_gap() -> None:
    day = 86_400
    left = encode_profiles([_record(0, agent_first_seen=10 * day, agent_last_seen=12 * day)])

    def span(first: int, last: int) -> ProfileRecord:
        return _record(1, agent_first_seen=first, agent_last_seen=last)

    right = encode_profiles(
        [
            span(12 * day, 13 * day),  # begins the second mine ends: at the same time
            span(12 * day + 1, 13 * day),  # after mine, but 2 days after mine began
            span(17 * day - 1, 18 * day),  # a second short of 7 days after
            span(17 * day, 18 * day),  # 7 days after
            span(2 * day, 10 * day - 1),  # ended a second before mine began, began 8 days before
            span(3 * day + 1, 10 * day - 1),  # ... began a second short of 7 days before
            span(2 * day, 10 * day),  # ended the second mine began
            _record(2, agent_first_seen=None, agent_last_seen=None),
        ]
    )
    in_turn = Successive("agent_first_seen", "agent_last_seen", 0).holds(left, right).tolist()
    a_week = Successive("agent_first_seen", "agent_last_seen", 7 * day).holds(left, right).tolist()
    assert in_turn == [False, True, True, True, True, True, False, False]
    assert a_week == [False, False, False, True, True, False, False, False]
    nothing = encode_profiles([_record(0, agent_first_seen=None, agent_last_seen=None)])
    assert not Successive("agent_first_seen", "agent_last_seen", 0).holds(nothing, right).any()


def test_both_needs_both_parts() -> None:
    day = 86_400
    level = Both(ExactMatch("user_agent"), Successive("agent_first_seen", "agent_last_seen", 0))
    left = encode_profiles([_record(0, user_agent="UA 1", agent_first_seen=day, agent_last_seen=2 * day)])
    right = encode_profiles(
        [
            _record(1, user_agent="UA 1", agent_first_seen=3 * day, agent_last_seen=4 * day),
            _record(2, user_agent="UA 2", agent_first_seen=3 * day, agent_last_seen=4 * day),
            _record(3, user_agent="UA 1", agent_first_seen=day, agent_last_seen=4 * day),
            _record(4, user_agent=None, agent_first_seen=3 * day, agent_last_seen=4 * day),
        ]
    )
    assert level.holds(left, right).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="single-test level"):
        Both(NullLevel(("ips",)), ExactMatch("city"))


def test_a_chain_of_both_needs_every_part() -> None:
    day = 86_400
    in_turn = Both(ExactMatch("user_agent"), Successive("agent_first_seen", "agent_last_seen", 0))
    level = Both(ListOverlap("homes", 1), in_turn)
    left = encode_profiles([_record(0, homes=("h1",), user_agent="UA 1", agent_first_seen=day, agent_last_seen=day)])
    right = encode_profiles(
        [
            _record(1, homes=("h1",), user_agent="UA 1", agent_first_seen=3 * day, agent_last_seen=4 * day),
            _record(2, homes=("h2",), user_agent="UA 1", agent_first_seen=3 * day, agent_last_seen=4 * day),
            _record(3, homes=("h1",), user_agent="UA 2", agent_first_seen=3 * day, agent_last_seen=4 * day),
            _record(4, homes=("h1",), user_agent="UA 1", agent_first_seen=day, agent_last_seen=4 * day),
            _record(5, homes=None, user_agent="UA 1", agent_first_seen=3 * day, agent_last_seen=4 * day),
        ]
    )
    assert level.holds(left, right).tolist() == [True, False, False, False, False]
    assert level.label() == "1+ shared homes, same user_agent, one after the other"
    # Only the second part chains: one way of nesting, so a conjunction has one rendering.
    with pytest.raises(ValueError, match="single-test level"):
        Both(in_turn, ListOverlap("homes", 1))


def test_encodings_in_a_table_score_like_records(scorer: VisitorScorer) -> None:
    records = [
        _record(1),
        _record(2, active_days=(100, 900, 5000)),  # three 64-day words
        _record(3, active_days=None, ips=None),
        _record(4, top_ip="10.0.0.9"),
    ]
    left = encode_profiles([_record(0, active_days=(100, 5000))])
    whole = scorer.score(left, encode_profiles(records))
    # Rows put one at a time into the table the online path keeps, the widest (three day
    # words) after a narrower one, read back in another order and then in record order.
    table = EncodedTable(capacity=2)
    for i in (3, 0, 1, 2):
        table.put_record(i, records[i])
    again = scorer.score(left, table.take([0, 1, 2, 3]))
    np.testing.assert_array_equal(whole.match_weight, again.match_weight)
    np.testing.assert_array_equal(whole.gammas, again.gammas)
    # The same with records written in place, over rows of other records put before.
    for i in (3, 0, 1, 2):
        table.put_record(i, records[(i + 1) % 4])
    for i in (2, 3, 1, 0):
        table.put_record(i, records[i])
    table.put_record(4, records[1])
    written = scorer.score(left, table.take([0, 1, 2, 3]))
    np.testing.assert_array_equal(whole.match_weight, written.match_weight)
    np.testing.assert_array_equal(whole.gammas, written.gammas)
    fresh = EncodedTable(capacity=1)
    for i in (2, 0, 3, 1):
        fresh.put_record(i, records[i])
    np.testing.assert_array_equal(whole.match_weight, scorer.score(left, fresh.take([0, 1, 2, 3])).match_weight)
    empty = scorer.score(left, encode_profiles([]))
    assert len(empty) == 0
    assert empty.comparison_weights.shape == (0, len(scorer.comparison_names))
    with pytest.raises(ValueError, match="one profile"):
        scorer.score(encode_profiles(records), encode_profiles(records))

"""The visitor model's Splink settings: comparisons built from the linkage catalogue.

Every level is a `linkage._comparisons` kind, so the model JSON Splink saves after training
is one the online `VisitorScorer` can compile. Add a level here only if the catalogue has (or
gains) its kind; `VisitorScorer.from_model` refuses any other SQL.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from linkage._comparisons import (
    Else,
    ExactMatch,
    LevelPlan,
    ListJaccard,
    ListOverlap,
    NullLevel,
    TermFrequency,
    WithinKm,
    comparison_settings,
)

# A visitor's chance of being the same person as another visitor picked at random: roughly one
# over the number of profiles a person leaves (a handful) times the profiles in the graph. Only
# the starting point of training; EM does not move it, the caller may.
DEFAULT_PROBABILITY_TWO_RANDOM_RECORDS_MATCH = 1e-4

# A top IP shared by fewer than 1 in 100,000 profiles counts as that rare, no rarer: the
# adjustment log2(u_exact / tf) is capped instead of growing without bound for one-off addresses.
TOP_IP_TF_MINIMUM_U = 1e-5


def visitor_comparisons() -> list[dict[str, Any]]:
    """The visitor model's comparisons as Splink comparison dicts, in model order.

    - `ip`: no IPs / two or more shared IPs (home and office, or an old and a new home: rare
      between family members) / same top IP (term-frequency adjusted: a home IP is strong
      evidence, an office NAT or carrier CGNAT address almost none) / any shared IP / a shared
      /24 (/48) / else.
    - `city`: no country / same city / same country / else.
    - `gps`: no coordinates / within 0.5 km / within 5 km / else.
    - `user_agent`: no device kind / same os+browser+kind / same device kind / else.
    - `active_hours`: none / Jaccard ≥ 1/2 / ≥ 1/5 / else.
    - `active_days`: none / 3+ shared days / 1+ shared day / else.
    """
    return [
        comparison_settings(
            "ip",
            [
                LevelPlan(NullLevel(("ips",))),
                LevelPlan(ListOverlap("ips", 2), label="2+ shared IPs"),
                LevelPlan(
                    ExactMatch("top_ip"),
                    term_frequency=TermFrequency("top_ip", weight=1.0, minimum_u=TOP_IP_TF_MINIMUM_U),
                ),
                LevelPlan(ListOverlap("ips", 1), label="shared IP"),
                LevelPlan(ListOverlap("ip_prefixes", 1), label="shared IP prefix"),
                LevelPlan(Else()),
            ],
            "IP addresses",
        ),
        comparison_settings(
            "city",
            [
                LevelPlan(NullLevel(("country",))),
                LevelPlan(ExactMatch("city")),
                LevelPlan(ExactMatch("country")),
                LevelPlan(Else()),
            ],
            "Geo-IP city and country",
        ),
        comparison_settings(
            "gps",
            [
                LevelPlan(NullLevel(("latitude", "longitude"))),
                LevelPlan(WithinKm("latitude", "longitude", 0.5)),
                LevelPlan(WithinKm("latitude", "longitude", 5.0)),
                LevelPlan(Else()),
            ],
            "GPS centroid",
        ),
        comparison_settings(
            "user_agent",
            [
                LevelPlan(NullLevel(("device_kind",))),
                LevelPlan(ExactMatch("user_agent_family")),
                LevelPlan(ExactMatch("device_kind")),
                LevelPlan(Else()),
            ],
            "Device: os, browser and kind",
        ),
        comparison_settings(
            "active_hours",
            [
                LevelPlan(NullLevel(("active_hours",))),
                LevelPlan(ListJaccard("active_hours", Fraction(1, 2))),
                LevelPlan(ListJaccard("active_hours", Fraction(1, 5))),
                LevelPlan(Else()),
            ],
            "Hours of day with most activity",
        ),
        comparison_settings(
            "active_days",
            [
                LevelPlan(NullLevel(("active_days",))),
                LevelPlan(ListOverlap("active_days", 3), label="3+ shared days"),
                LevelPlan(ListOverlap("active_days", 1), label="1+ shared day"),
                LevelPlan(Else()),
            ],
            "Days with activity",
        ),
    ]


def prediction_blocking_rules() -> list[dict[str, Any]]:
    """Candidate pairs for `predict` (batch relink): any shared IP, or a shared IP prefix in
    the same city. The online path blocks the same way from its own indexes."""
    return [
        {"blocking_rule": "l.ips = r.ips", "arrays_to_explode": ["ips"]},
        {"blocking_rule": "l.ip_prefixes = r.ip_prefixes AND l.city = r.city", "arrays_to_explode": ["ip_prefixes"]},
    ]


def training_blocking_rules() -> list[str]:
    """Blocking rules for the EM passes, one pass each.

    Splink holds fixed the comparisons whose columns a pass blocks on, so the passes are
    chosen to leave every comparison free in at least one: the first (same top IP) trains all
    but `ip`; the second (same city and device family) trains `ip`, `gps`, the activity ones.
    """
    return [
        "l.top_ip = r.top_ip",
        "l.city = r.city AND l.user_agent_family = r.user_agent_family",
    ]


def visitor_settings(
    probability_two_random_records_match: float = DEFAULT_PROBABILITY_TWO_RANDOM_RECORDS_MATCH,
) -> dict[str, Any]:
    """Settings for `splink.Linker` over `ProfileRecord.as_row()` rows: dedupe of one table of
    profiles keyed by `unique_id`, the visitor comparisons, prediction blocking rules, and the
    matching and intermediate columns kept so that waterfall charts work."""
    if not 0.0 < probability_two_random_records_match < 1.0:
        raise ValueError(
            f"probability_two_random_records_match must be in (0, 1), got {probability_two_random_records_match}"
        )
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": probability_two_random_records_match,
        "comparisons": visitor_comparisons(),
        "blocking_rules_to_generate_predictions": prediction_blocking_rules(),
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": True,
    }

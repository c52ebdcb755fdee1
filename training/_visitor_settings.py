"""The visitor model's Splink settings: comparisons built from the linkage catalogue.

Every level is a `linkage.visitor._catalogue` kind, so the model JSON Splink saves after training
is one the online `VisitorScorer` can compile. Add a level here only if the catalogue has (or
gains) its kind; `VisitorScorer.from_model` refuses any other SQL.
"""

from __future__ import annotations

from typing import Any

from linkage.modelling import (
    Both,
    Else,
    ExactMatch,
    LevelPlan,
    ListOverlap,
    NullLevel,
    Rare,
    Successive,
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

# A user-agent string sent by fewer than 1 in 10,000 profiles counts as that rare, no rarer.
USER_AGENT_TF_MINIMUM_U = 1e-4

# A user-agent string fewer than 1 in 1,000 profiles send is rare: the same rare string on two
# devices is a level of its own (an Android build string, an uncommon browser), above any time
# relation. Measured on independent traffic, two devices of one rare home address sending such
# a string are one person's about 97 % of the time.
USER_AGENT_RARE_SHARE = 0.001

# Safari (ITP) keeps a cookie set by script for seven days: its next cookie begins at least
# that long after the last one began.
COOKIE_LIFETIME_SECONDS = 7 * 86_400

# The place comparison and its two home levels, whose u training splits by the labelled
# household pairs (`training._home_u`).
PLACE_COMPARISON = "place"
HOME_AND_PLACE_LABEL = "same home and another shared place"
HOME_AND_AGENT_LABEL = "same home and user agent, in turn"
SEEN_HOME_AND_AGENT_LABEL = "on one home and user agent, in turn"
HOME_LABEL = "same home"
# The levels of a shared home, most telling first: their u is split by household pairs.
HOME_LABELS = (HOME_AND_PLACE_LABEL, HOME_AND_AGENT_LABEL, SEEN_HOME_AND_AGENT_LABEL, HOME_LABEL)


def visitor_comparisons(
    user_agent_tf: bool = False, rare_user_agent: bool = False, home_and_agent: bool = True
) -> list[dict[str, Any]]:
    """The visitor model's comparisons as Splink comparison dicts, in model order.

    - `place`: no IPs / the same home and another shared place (a person's devices go where
      the person goes; a household's members go to different places) / unless `home_and_agent`
      is off, the same home and the same full user-agent string, one in use after the other (a
      browser's successive cookies: random pairs with the commonest iPhone string are many,
      household members with one string in turn are few), then the same with a home either
      of them only passed through (an address some visitor settled on: a browser's next cookie,
      at home on one day so far, has no home of its own yet) / two or more shared
      places without a shared home / two or more shared IPs (kept: on simulated traffic
      dropping it cost recall) / same top IP (term-frequency adjusted: a home IP is strong
      evidence, an office NAT or carrier CGNAT address almost none) / the same home
      (`linkage.visitor._homes`: a rarely shared address both settled on, or another address
      of that household: its ISP reassigned it) / any shared IP / a shared /24 (/48) / GPS
      centroids within 5 km / same city / same country / else. Places are distinct: two
      addresses of one home are one place, so an ISP's reassignment is not a second place.
      "Home and another place" is one level, estimated as one, because Fellegi-Sunter would
      otherwise add a home's and an office's weights as if independent, or ignore the second.
      "Home and user agent in turn" is one level for the same reason: on its own the string in turn
      says nothing (m ≈ u over random pairs), on a shared home it tells the browser from the
      family. The user-agent comparison still weighs the string and its timing, so that
      evidence counts once more there (about 0 bits in turn, 4 bits 7+ days apart).
      One comparison, not three: a shared home address, a GPS centroid at that home and its
      city are the same evidence (one household) seen three ways.
    - `user_agent`: no device kind / with `rare_user_agent`, the same rare full user-agent
      string (sent by under `USER_AGENT_RARE_SHARE` of profiles: a level of its own, so that a
      rare string weighs more without a common one weighing less; off in the bundled model, see
      docs/visitor-model.md) / the same full user-agent string, one in use after the
      other ended and begun 7+ days after it (a browser's cookies in turn: Safari drops them
      after 7 days) / the same string, one after the other / the same string in use at the
      same time (two devices alike: a family's phones) / same os+browser+kind / same device
      kind / else. Time and string are one comparison because only together do they tell one
      browser from two: Fellegi-Sunter multiplies comparisons as if independent. With
      `user_agent_tf`, the two "in turn" levels are term-frequency adjusted on the full
      string: a rare Android build string in turn says more than the commonest iPhone string.
      Off in the bundled model: on simulated traffic it cost held-out recall (see
      docs/visitor-model.md). Two devices with the same string at the same time are never
      adjusted: a family owns alike devices.
    - `active_days`: none / 3+ shared days / 1+ shared day / else.

    Hours of activity are in the profile but not compared: trained on simulated traffic they
    told a person's devices from the household's no better than chance (m ≈ u at every level).
    """
    agent_tf = _AGENT_TF if user_agent_tf else None
    rare_agent = (
        [
            LevelPlan(
                Both(ExactMatch("user_agent"), Rare("tf_user_agent", USER_AGENT_RARE_SHARE)),
                label="same rare user agent",
            )
        ]
        if rare_user_agent
        else []
    )
    home_agent = (
        [
            LevelPlan(
                Both(ListOverlap("homes", 1), Both(ExactMatch("user_agent"), Successive(*_AGENT_SPAN, 0))),
                label=HOME_AND_AGENT_LABEL,
            ),
            LevelPlan(
                Both(
                    ListOverlap("homes_seen", 1),
                    Both(ExactMatch("user_agent"), Successive(*_AGENT_SPAN, COOKIE_LIFETIME_SECONDS)),
                ),
                label=SEEN_HOME_AND_AGENT_LABEL,
            ),
        ]
        if home_and_agent
        else []
    )
    return [
        comparison_settings(
            PLACE_COMPARISON,
            [
                LevelPlan(NullLevel(("ips",))),
                LevelPlan(Both(ListOverlap("homes", 1), ListOverlap("places", 2)), label=HOME_AND_PLACE_LABEL),
                *home_agent,
                LevelPlan(ListOverlap("places", 2), label="2+ shared places"),
                LevelPlan(ListOverlap("ips", 2), label="2+ shared IPs"),
                LevelPlan(
                    ExactMatch("top_ip"),
                    term_frequency=TermFrequency("top_ip", weight=1.0, minimum_u=TOP_IP_TF_MINIMUM_U),
                ),
                LevelPlan(ListOverlap("homes", 1), label=HOME_LABEL),
                LevelPlan(ListOverlap("ips", 1), label="shared IP"),
                LevelPlan(ListOverlap("ip_prefixes", 1), label="shared IP prefix"),
                LevelPlan(WithinKm("latitude", "longitude", 5.0)),
                LevelPlan(ExactMatch("city")),
                LevelPlan(ExactMatch("country")),
                LevelPlan(Else()),
            ],
            "Where: IP addresses, then GPS centroid, then geo-IP city and country",
        ),
        comparison_settings(
            "user_agent",
            [
                LevelPlan(NullLevel(("device_kind",))),
                *rare_agent,
                LevelPlan(
                    Both(ExactMatch("user_agent"), Successive(*_AGENT_SPAN, COOKIE_LIFETIME_SECONDS)),
                    label="same user agent, in turn, 7+ days apart",
                    term_frequency=agent_tf,
                ),
                LevelPlan(
                    Both(ExactMatch("user_agent"), Successive(*_AGENT_SPAN, 0)),
                    label="same user agent, in turn",
                    term_frequency=agent_tf,
                ),
                LevelPlan(ExactMatch("user_agent"), label="same user agent at the same time"),
                LevelPlan(ExactMatch("user_agent_family")),
                LevelPlan(ExactMatch("device_kind")),
                LevelPlan(Else()),
            ],
            "Device: user agent and when it was used; os, browser and kind",
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


_AGENT_SPAN = ("agent_first_seen", "agent_last_seen")
_AGENT_TF = TermFrequency("user_agent", weight=1.0, minimum_u=USER_AGENT_TF_MINIMUM_U)


def prediction_blocking_rules() -> list[dict[str, Any]]:
    """Candidate pairs for `predict` (batch relink): any shared IP, a home both were on
    (settled there or not), or a shared IP prefix in the same city. The online path blocks the
    same way from its own indexes."""
    return [
        {"blocking_rule": "l.ips = r.ips", "arrays_to_explode": ["ips"]},
        {"blocking_rule": "l.homes_seen = r.homes_seen", "arrays_to_explode": ["homes_seen"]},
        {"blocking_rule": "l.ip_prefixes = r.ip_prefixes AND l.city = r.city", "arrays_to_explode": ["ip_prefixes"]},
    ]


def training_blocking_rules() -> list[str]:
    """Blocking rules for the EM passes, one pass each.

    Splink holds fixed the comparisons whose columns a pass blocks on, so the passes are
    chosen to leave every comparison free in at least one: the first (same top IP) trains all
    but `place`; the second (same os, browser and device kind) trains `place` and the activity
    one. Not the full user agent: `place` reads it ("the same home and user agent, in turn").
    """
    return [
        "l.top_ip = r.top_ip",
        "l.user_agent_family = r.user_agent_family",
    ]


def visitor_settings(
    probability_two_random_records_match: float = DEFAULT_PROBABILITY_TWO_RANDOM_RECORDS_MATCH,
    user_agent_tf: bool = False,
    rare_user_agent: bool = False,
    home_and_agent: bool = True,
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
        "comparisons": visitor_comparisons(user_agent_tf, rare_user_agent, home_and_agent),
        "blocking_rules_to_generate_predictions": prediction_blocking_rules(),
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": True,
    }

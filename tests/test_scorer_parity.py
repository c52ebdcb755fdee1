"""Parity: the numpy VisitorScorer scores exactly as Splink does, on a model Splink trained.

Simulated visitors (people with one to three devices, home and office IPs, shared carrier
addresses, cities, GPS centroids, devices, activity hours and days, NULLs in every column)
train a real Splink model with the visitor settings; the saved JSON is loaded into
`splink.Linker` and into `VisitorScorer`, and both score the same pairs. Every level of every
comparison must occur among the pairs, GPS pairs sit on both sides of each distance threshold
within a micrometre, and the term-frequency adjustment is exercised from both sides, one side
and below its floor, so that agreement cannot be vacuous.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from splink import DuckDBAPI, Linker

from linkage.visitor._catalogue import EARTH_RADIUS_KM, WithinKm, recognise_level
from linkage.visitor._encoding import encode_profiles
from linkage.visitor._profile import MAX_DAYS, MAX_HOURS, MAX_IPS, ProfileRecord
from linkage.visitor._scorer import Scores, VisitorScorer
from training._tables import PROFILE_SCHEMA
from training._visitor_settings import (
    COOKIE_LIFETIME_SECONDS,
    TOP_IP_TF_MINIMUM_U,
    training_blocking_rules,
    visitor_comparisons,
    visitor_settings,
)

TOLERANCE = 1e-6
CITIES = [
    ("DE", "berlin", 52.520, 13.405),
    ("DE", "hamburg", 53.551, 9.993),
    ("DE", "munich", 48.137, 11.575),
    ("FR", "paris", 48.857, 2.352),
    ("FR", "lyon", 45.764, 4.836),
    ("NL", "amsterdam", 52.370, 4.895),
]
FAMILIES = [
    "ios/safari/phone",
    "android/chrome/phone",
    "android/samsung/phone",
    "ios/safari/tablet",
    "android/chrome/tablet",
    "windows/chrome/desktop",
    "windows/edge/desktop",
    "macos/safari/desktop",
]


# -- simulated visitors --------------------------------------------------------------------------


def _destination(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    """The point `km` along a great circle from (lat, lon) at `bearing` (radians)."""
    delta, phi, lam = km / EARTH_RADIUS_KM, math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(bearing))
    lam2 = lam + math.atan2(
        math.sin(bearing) * math.sin(delta) * math.cos(phi), math.cos(delta) - math.sin(phi) * math.sin(phi2)
    )
    return math.degrees(phi2), math.degrees(lam2)


def _prefix(ip: str) -> str:
    return ip.rsplit(".", 1)[0] + ".0/24"


class _World:
    """People with devices; each device is one profile (a component of hard-linked ids)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        networks = [f"{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}" for _ in range(40)]
        self.networks = networks
        # Office NATs and carrier CGNAT addresses: few addresses, many users.
        self.offices = [f"{rng.choice(networks)}.{rng.randint(1, 254)}" for _ in range(6)]
        self.carrier = [f"{networks[0]}.{i}" for i in range(1, 20)]

    def person(self) -> dict[str, Any]:
        rng = self.rng
        country, city, lat, lon = rng.choice(CITIES)
        home_lat, home_lon = _destination(lat, lon, rng.uniform(0, 8), rng.uniform(0, 2 * math.pi))
        start = rng.randint(20000, 20060)
        return {
            "home": f"{rng.choice(self.networks)}.{rng.randint(1, 254)}",
            "home_id": f"h{rng.randint(0, 10**6)}",
            "haunt": f"@haunt{rng.randint(0, 30)}",
            "office": rng.choice(self.offices) if rng.random() < 0.4 else None,
            "place": (country, city),
            "gps": (home_lat, home_lon),
            "hours": rng.sample(range(24), rng.randint(3, 8)),
            "days": list(range(start, start + rng.randint(10, 60))),
        }

    def device(self, person: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        ips = [person["home"]] if rng.random() < 0.85 else []
        # A home the device settled on: with or without the home's current address (the ISP
        # may have reassigned it), sometimes also a home of its own (a second flat).
        homes = [person["home_id"]] if rng.random() < 0.6 else []
        if homes and ips and rng.random() < 0.3:
            ips.remove(person["home"])
        if rng.random() < 0.1:
            homes.append(f"h{rng.randint(0, 10**6)}")
        # Places it returns to: its homes, the office, now and then a haunt of its own.
        places = list(homes)
        if person["office"] and rng.random() < 0.6:
            ips.append(person["office"])
            if rng.random() < 0.7:
                places.append(f"@{person['office']}")
        if rng.random() < 0.5:
            places.append(person["haunt"])  # the person's gym or café: their devices go there too
        if rng.random() < 0.1:
            places.append(f"@haunt{rng.randint(0, 30)}")
        while rng.random() < 0.5 and len(ips) < MAX_IPS:
            ip = (
                rng.choice(self.carrier) if rng.random() < 0.5 else f"{rng.choice(self.networks)}.{rng.randint(1, 254)}"
            )
            if ip not in ips:
                ips.append(ip)
        if not ips or rng.random() < 0.15:
            rng.shuffle(ips)  # the top IP is not always the home one
        country, city = person["place"] if rng.random() < 0.85 else rng.choice(CITIES)[:2]
        family = rng.choice(FAMILIES)
        version = rng.choice((1, 2, 2, 3))
        lat, lon = person["gps"]
        gps = _destination(lat, lon, rng.expovariate(1 / 1.5), rng.uniform(0, 2 * math.pi))
        hours = sorted(set(rng.sample(person["hours"], min(len(person["hours"]), rng.randint(1, MAX_HOURS)))))
        days = sorted(rng.sample(person["days"], min(len(person["days"]), rng.randint(1, MAX_DAYS))))
        # Homes it passed through: its own, the household's it has not settled on, a friend's.
        seen = list(homes)
        if person["home_id"] not in seen and rng.random() < 0.5:
            seen.append(person["home_id"])
        if rng.random() < 0.1:
            seen.append(f"h{rng.randint(0, 10**6)}")
        return {
            "ips": ips,
            "city": f"{country}/{city}",
            "country": country,
            "gps": gps if rng.random() < 0.55 else None,
            "family": family,
            "version": version,
            "hours": hours,
            "days": days,
            "homes": homes,
            "places": places,
            "homes_seen": seen,
        }


def _profile(unique_id: int, device: dict[str, Any], rng: random.Random) -> ProfileRecord:
    def maybe(value: Any, p: float = 0.06) -> Any:
        return None if rng.random() < p else value

    ips = tuple(device["ips"]) or None
    if ips is not None and rng.random() < 0.06:
        ips = None
    gps = device["gps"]
    # The full user agent: a few versions per family, so that strangers share one too. The
    # span it was used in: over the device's days, or (a cookie soon dropped) a few of them.
    first_day, last_day = min(device["days"]), max(device["days"])
    if rng.random() < 0.4:
        first_day = rng.randint(first_day, last_day)
        last_day = min(last_day, first_day + rng.randint(0, 4))
    first = first_day * 86_400 + rng.randint(0, 86_399)
    last = max(first, last_day * 86_400 + rng.randint(0, 86_399))
    span = maybe((first, last))
    return ProfileRecord(
        unique_id=unique_id,
        # Mostly consistent with ips, sometimes not: a top IP missing while ips are known.
        top_ip=None if ips is None else maybe(ips[0], 0.04),
        tf_top_ip=None,  # filled in from the whole population below
        ips=ips,
        ip_prefixes=None if ips is None else tuple(dict.fromkeys(_prefix(ip) for ip in ips)),
        city=maybe(device["city"]),
        country=maybe(device["country"]),
        latitude=None if gps is None else gps[0],
        longitude=None if gps is None else maybe(gps[1], 0.04),  # sometimes half a point
        user_agent_family=maybe(device["family"]),
        device_kind=maybe(device["family"].rsplit("/", 1)[1]),
        active_hours=maybe(tuple(device["hours"])),
        active_days=maybe(tuple(device["days"])),
        user_agent=maybe(f"{device['family']}/{device['version']}"),
        agent_first_seen=None if span is None else span[0],
        agent_last_seen=None if span is None else span[1],
        homes=tuple(sorted(device["homes"])) or None,
        places=tuple(sorted(set(device["places"]))) or None,
        tf_user_agent=None,  # filled in from the whole population below
        homes_seen=tuple(sorted(device["homes_seen"])) or None,
    )


def _with_term_frequencies(records: list[ProfileRecord], rng: random.Random) -> list[ProfileRecord]:
    users = Counter(ip for r in records for ip in (r.ips or ()))
    total = sum(1 for r in records if r.ips)
    agents = Counter(r.user_agent for r in records if r.user_agent is not None)
    out = []
    for r in records:
        agent_tf = None if r.user_agent is None else agents[r.user_agent] / len(records)
        if agent_tf is not None and rng.random() < 0.05:
            agent_tf = None
        r = replace(r, tf_user_agent=agent_tf)
        tf = None if r.top_ip is None else users.get(r.top_ip, 1) / total
        roll = rng.random()
        if tf is not None and roll < 0.05:
            tf = None  # unknown term frequency
        elif roll < 0.08:
            tf = TOP_IP_TF_MINIMUM_U / rng.choice([3, 100])  # rarer than the floor
        out.append(replace(r, tf_top_ip=tf))
    return out


def _population(seed: int, people: int) -> tuple[list[ProfileRecord], list[int]]:
    rng = random.Random(seed)
    world = _World(rng)
    records: list[ProfileRecord] = []
    owners: list[int] = []
    for p in range(people):
        person = world.person()
        for _ in range(rng.choice([1, 1, 2, 2, 3])):
            device = _profile(len(records), world.device(person), rng)
            records.append(device)
            owners.append(p)
            if device.homes and device.user_agent and device.agent_last_seen is not None and rng.random() < 0.2:
                # The browser's next cookie, on its home only: the same user agent, in turn;
                # half the time seen there on one day so far, not settled on it.
                begin = device.agent_last_seen + rng.randint(600, 9 * 86_400)
                end = begin + rng.randint(0, 4 * 86_400)
                settled = rng.random() < 0.5
                successor = replace(
                    device,
                    unique_id=len(records),
                    homes=device.homes if settled else None,
                    places=device.homes if settled else None,
                    homes_seen=device.homes,
                    agent_first_seen=begin,
                    agent_last_seen=end,
                )
                records.append(successor)
                owners.append(p)
    return _with_term_frequencies(records, rng), owners


def _every_list_empty(record: ProfileRecord, unique_id: int) -> ProfileRecord:
    """The record with every list column an empty list: empty is not NULL in SQL."""
    return replace(
        record, unique_id=unique_id, ips=(), ip_prefixes=(), active_hours=(), active_days=(), homes=(), places=(),
        homes_seen=(),
    )  # fmt: skip


def _table(records: list[ProfileRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.as_row() for r in records], schema=PROFILE_SCHEMA)


# -- the pairs to score --------------------------------------------------------------------------

LEFTS = 30
NEAR = 1e-9  # relative offset from a distance threshold: micrometres at 0.5 km


def _pairs(records: list[ProfileRecord], owners: list[int]) -> tuple[list[ProfileRecord], list[ProfileRecord]]:
    """Left profiles with siblings, and candidates: their siblings, strangers, copies of the
    lefts moved to within a micrometre of each GPS threshold (inside and outside), and copies
    whose top-IP term frequency is missing, different or below the floor on one or both sides."""
    rng = random.Random(11)
    by_owner: dict[int, list[int]] = {}
    for i, owner in enumerate(owners):
        by_owner.setdefault(owner, []).append(i)
    families = [ids for ids in by_owner.values() if len(ids) > 1]
    rng.shuffle(families)
    lefts = [records[ids[0]] for ids in families[:LEFTS]]
    candidates = [records[i] for ids in families[:LEFTS] for i in ids[1:]]
    candidates += rng.sample(records, 40)
    next_id = 10**6
    for left in [r for r in lefts if r.latitude is not None and r.longitude is not None][:12]:
        for km in (0.5, 5.0):
            for factor in (1 - NEAR, 1 + NEAR, 1 - 1e-7, 1 + 1e-7):
                lat, lon = _destination(left.latitude or 0.0, left.longitude or 0.0, km * factor, rng.uniform(0, 6.3))
                # An address of its own, so that the pair reaches the distance levels.
                ip = f"192.0.2.{len(candidates) % 250 + 1}"
                own = {"top_ip": ip, "ips": (ip,), "ip_prefixes": (f"192.0.{next_id % 200}.0/24",)}
                candidates.append(replace(left, unique_id=next_id, latitude=lat, longitude=lon, **own))
                next_id += 1
    with_tf = [r for r in lefts if r.top_ip is not None and r.tf_top_ip is not None]
    for left, tf in zip(with_tf[:8], [None, None, 3e-6, 7e-7, 0.5, 0.05, 1e-3, 2e-4], strict=True):
        # Only the top IP in common, so the pair lands on the term-frequency level rather
        # than on "2+ shared IPs".
        candidates.append(replace(left, unique_id=next_id, tf_top_ip=tf, ips=(left.top_ip,)))
        next_id += 1
    gap = COOKIE_LIFETIME_SECONDS
    with_span = [r for r in lefts if r.agent_first_seen is not None and r.agent_last_seen is not None]
    for left, tf in zip(with_span[6:12], [None, 1e-6, 3e-5, 0.02, 0.3, None], strict=False):
        # The same user agent in turn, with its term frequency missing, below the floor or common.
        first, last = left.agent_first_seen or 0, left.agent_last_seen or 0
        candidates.append(
            replace(
                left, unique_id=next_id, agent_first_seen=last + gap, agent_last_seen=last + gap + 60, tf_user_agent=tf
            )
        )
        next_id += 1
    rare_cases = [(5e-4, 2e-4), (5e-4, 1e-3), (1e-3, 5e-4), (5e-4, None), (9.99e-4, 9.99e-4), (2e-3, 5e-4)]
    for left, (mine, theirs) in zip(with_span[12:], rare_cases, strict=False):
        # The same user agent, rare on both sides or not quite (at the bound, above it, unknown).
        lefts.append(replace(left, unique_id=next_id, tf_user_agent=mine))
        candidates.append(replace(left, unique_id=next_id + 1, tf_user_agent=theirs))
        next_id += 2
    for left in with_span[:6]:
        # The same user agent just before, at and just after each end of the span and each gap.
        first, last = left.agent_first_seen or 0, left.agent_last_seen or 0
        after = [last, last + 1, first + gap - 1, first + gap, max(last + 1, first + gap - 1)]
        spans = [(b, b + 3_600) for b in [*after, max(last + 1, first + gap)]]
        spans += [(first - gap + 1, first - 1), (first - gap, first - 1)]
        spans += [(first - gap - 10, first), (first - 10, first - 1)]
        for begin, end in spans:
            if 0 <= begin <= end:
                candidates.append(replace(left, unique_id=next_id, agent_first_seen=begin, agent_last_seen=end))
                next_id += 1
    for left in [r for r in lefts if r.homes_seen and r.agent_first_seen is not None][:4]:
        # A browser's next cookie on the left's home, one day there so far (not settled on it),
        # on an address of its own: "on one home and user agent, in turn", 7+ days on or not.
        first, last = left.agent_first_seen or 0, left.agent_last_seen or 0
        for begin in (max(last + 1, first + gap), max(last + 1, first + gap - 1)):
            ip = f"198.51.100.{next_id % 250 + 1}"
            candidates.append(
                replace(
                    left, unique_id=next_id, top_ip=ip, ips=(ip,), ip_prefixes=(f"198.51.{next_id % 200}.0/24",),
                    homes=None, places=None, agent_first_seen=begin, agent_last_seen=begin + 600,
                )
            )  # fmt: skip
            next_id += 1
    for left in [r for r in lefts if r.places and len(r.places) >= 2][:3]:
        # Two places in common and no home: the left's gym and office, say, seen from elsewhere.
        candidates.append(replace(left, unique_id=next_id, homes=None, homes_seen=None))
        next_id += 1
    for left, tf in zip(with_tf[:4], [None, None, 2e-6, 1e-6], strict=True):
        lefts.append(replace(left, unique_id=next_id, tf_top_ip=tf))
        # Only its top IP in common, with the term frequency the left copy lacks or differs from.
        candidates.append(replace(left, unique_id=next_id + 1, ips=(left.top_ip,), places=None))
        next_id += 2
    seen: set[int] = {r.unique_id for r in lefts}
    unique = []
    for c in candidates:
        if c.unique_id in seen:
            c = replace(c, unique_id=next_id)
            next_id += 1
        seen.add(c.unique_id)
        unique.append(c)
    return lefts, unique


# -- the test -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ProfileRecord], list[int]]:
    records, owners = _population(seed=20251123, people=1500)
    same = Counter(owners)
    true_pairs = sum(k * (k - 1) // 2 for k in same.values())
    prior = true_pairs / (len(records) * (len(records) - 1) // 2)

    db = DuckDBAPI()
    linker = Linker(
        db.register(_table(records), dataset_display_name="profiles"),
        visitor_settings(
            probability_two_random_records_match=prior, user_agent_tf=True, rare_user_agent=True, home_and_agent=True
        ),
        log_level=logging.WARNING,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=3e5, seed=1)
    for rule in training_blocking_rules():
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    path = tmp_path_factory.mktemp("model") / "visitor-model.json"
    linker.misc.save_model_to_json(str(path), overwrite=True)
    return path, records, owners


def test_scorer_matches_splink_score_pairs(trained: tuple[Path, list[ProfileRecord], list[int]]) -> None:
    path, records, owners = trained
    scorer = VisitorScorer.from_model(path)
    model = scorer.comparisons
    ip = model[scorer.comparison_names.index("place")]
    # The model is trained where it matters: m and u on every IP level, TF on the top-IP one.
    assert all(level.m_probability is not None for level in ip.levels if not level.is_null_level)
    raw_place = next(c for c in _json(path)["comparisons"] if c["output_column_name"] == "place")
    raw_ip_levels = raw_place["comparison_levels"]
    assert all("m_probability" in lv and "u_probability" in lv for lv in raw_ip_levels if not lv.get("is_null_level"))
    assert any(level.term_frequency is not None for level in ip.levels)

    lefts, candidates = _pairs(records, owners)
    linker = Linker(
        DuckDBAPI().register(_table(records), dataset_display_name="profiles"), str(path), log_level=logging.WARNING
    )
    left_sdf = linker.table_management.register_table(_table(lefts), "parity_left", overwrite=True)
    right_sdf = linker.table_management.register_table(_table(candidates), "parity_right", overwrite=True)
    splink_rows = linker.inference.score_pairs(left_sdf, right_sdf).as_record_list()
    by_pair = {(row["unique_id_l"], row["unique_id_r"]): row for row in splink_rows}
    assert len(by_pair) == len(lefts) * len(candidates) >= 1000

    encoded_candidates = scorer.encode(candidates)
    worst: defaultdict[str, float] = defaultdict(float)
    seen: dict[str, set[int]] = {name: set() for name in scorer.comparison_names}
    tf_cases: Counter[str] = Counter()
    agent = scorer.comparison_names.index("user_agent")
    agent_adjusted = 0
    for left in lefts:
        scores = scorer.score(scorer.encode([left]), encoded_candidates)
        agent_adjusted += int(np.count_nonzero(scores.tf_adjustments[:, agent]))
        for row, candidate in enumerate(candidates):
            expected = by_pair[(left.unique_id, candidate.unique_id)]
            _compare(scorer, scores, row, expected, worst, seen)
            _count_tf_cases(scorer, scores, row, left, candidate, tf_cases)

    assert max(worst.values()) <= TOLERANCE, dict(worst)
    for comparison in model:
        levels = {level.comparison_vector_value for level in comparison.levels}
        assert seen[comparison.name] == levels, f"{comparison.name}: levels never hit {levels - seen[comparison.name]}"
    assert {"both sides", "left only", "right only", "below the floor"} <= set(tf_cases), tf_cases
    assert agent_adjusted >= 10, "the user-agent term-frequency path was not exercised"
    _assert_gps_thresholds_straddled(scorer, lefts, candidates, by_pair)


def _json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _compare(
    scorer: VisitorScorer,
    scores: Scores,
    row: int,
    expected: dict[str, Any],
    worst: defaultdict[str, float],
    seen: dict[str, set[int]],
) -> None:
    def note(what: str, ours: float, theirs: float) -> None:
        worst[what] = max(worst[what], abs(ours - theirs))

    note("match_weight", float(scores.match_weight[row]), expected["match_weight"])
    note("match_probability", float(scores.match_probability[row]), expected["match_probability"])
    for c, name in enumerate(scorer.comparison_names):
        gamma = int(scores.gammas[row, c])
        assert gamma == expected[f"gamma_{name}"], (name, expected["unique_id_l"], expected["unique_id_r"])
        seen[name].add(gamma)
        tf = expected.get(f"mw_tf_adj_{name}") or 0.0
        note(f"mw_{name} + mw_tf_adj_{name}", float(scores.comparison_weights[row, c]), expected[f"mw_{name}"] + tf)
        note(f"mw_tf_adj_{name}", float(scores.tf_adjustments[row, c]), tf)


def _count_tf_cases(
    scorer: VisitorScorer,
    scores: Scores,
    row: int,
    left: ProfileRecord,
    right: ProfileRecord,
    cases: Counter[str],
) -> None:
    if scores.tf_adjustments[row, scorer.comparison_names.index("place")] == 0.0:
        return
    tfs = [t for t in (left.tf_top_ip, right.tf_top_ip) if t is not None]
    if len(tfs) == 2 and tfs[0] != tfs[1]:
        cases["both sides"] += 1
    elif left.tf_top_ip is None:
        cases["right only"] += 1
    elif right.tf_top_ip is None:
        cases["left only"] += 1
    if max(tfs) < TOP_IP_TF_MINIMUM_U:
        cases["below the floor"] += 1


def _assert_gps_thresholds_straddled(
    scorer: VisitorScorer,
    lefts: list[ProfileRecord],
    candidates: list[ProfileRecord],
    by_pair: dict[tuple[int, int], dict[str, Any]],
) -> None:
    """Pairs within a micrometre of each distance threshold (5 km) fell on both sides, in Splink too."""
    gps = next(c for c in scorer.comparisons if c.name == "place")
    within = {
        level.level.km: level.comparison_vector_value for level in gps.levels if isinstance(level.level, WithinKm)
    }
    sides: dict[float, set[bool]] = {km: set() for km in within}
    for left in lefts:
        for candidate in candidates:
            if None in (left.latitude, left.longitude, candidate.latitude, candidate.longitude):
                continue
            km = _great_circle_km(left, candidate)
            for threshold in within:
                if abs(km / threshold - 1) < 2e-7:
                    gamma = by_pair[(left.unique_id, candidate.unique_id)]["gamma_place"]
                    sides[threshold].add(gamma >= within[threshold])
    assert all(s == {True, False} for s in sides.values()), sides


def _great_circle_km(a: ProfileRecord, b: ProfileRecord) -> float:
    phi1, phi2 = math.radians(a.latitude or 0.0), math.radians(b.latitude or 0.0)
    dphi, dlam = phi2 - phi1, math.radians((b.longitude or 0.0) - (a.longitude or 0.0))
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def test_every_level_sql_reads_in_duckdb_as_in_numpy(trained: tuple[Path, list[ProfileRecord], list[int]]) -> None:
    """Each catalogue level of the visitor model, run by DuckDB as SQL over the pairs' `_l` / `_r`
    columns, holds exactly where numpy says it holds, NULLs, empty lists and boundaries included."""
    _, records, owners = trained
    lefts, candidates = _pairs(records, owners)
    odd = [
        _every_list_empty(lefts[0], unique_id=-1),
        replace(lefts[1], unique_id=-2, latitude=None),
        replace(lefts[2], unique_id=-3, top_ip=None, city=None, country=None, user_agent_family=None),
        replace(lefts[3], unique_id=-4, active_days=(-70, -5, 0, 63, 64, 20000)),
        replace(lefts[4], unique_id=-5, user_agent=None, agent_first_seen=None, agent_last_seen=None),
        replace(lefts[5], unique_id=-6, agent_first_seen=0, agent_last_seen=0),
    ]
    rare = [left for left in lefts if left.tf_user_agent == 5e-4][:2]  # for the rare user-agent level
    lefts, candidates = lefts[:8] + rare + odd, candidates + odd
    con = duckdb.connect()
    rows = [
        {
            "pair": i,
            **{f"{k}_l": v for k, v in left.as_row().items()},
            **{f"{k}_r": v for k, v in right.as_row().items()},
        }
        for i, (left, right) in enumerate((left, right) for left in lefts for right in candidates)
    ]
    pair_schema = pa.schema(
        [pa.field("pair", pa.int64())]
        + [pa.field(f"{f.name}_{side}", f.type) for side in ("l", "r") for f in PROFILE_SCHEMA]
    )
    con.register("pairs", pa.Table.from_pylist(rows, schema=pair_schema))
    encoded_candidates = encode_profiles(candidates)
    checked = 0
    for comparison in visitor_comparisons(user_agent_tf=True, rare_user_agent=True):
        for position, raw in enumerate(comparison["comparison_levels"]):
            if raw["sql_condition"] == "ELSE":
                continue
            level = recognise_level(
                raw["sql_condition"], comparison=comparison["output_column_name"], position=position
            )
            query = f"SELECT coalesce({level.sql()}, false) FROM pairs ORDER BY pair"
            sql_says = [bool(v) for (v,) in con.execute(query).fetchall()]
            numpy_says = np.concatenate([level.holds(encode_profiles([left]), encoded_candidates) for left in lefts])
            assert numpy_says.tolist() == sql_says, level.sql()
            assert 0 < sum(sql_says) < len(sql_says), level.sql()  # neither always nor never
            checked += 1
    assert checked == sum(
        len(c["comparison_levels"]) - 1 for c in visitor_comparisons(user_agent_tf=True, rare_user_agent=True)
    )


def test_pair_weights_equal_the_per_visitor_scores_bit_for_bit(
    trained: tuple[Path, list[ProfileRecord], list[int]],
) -> None:
    """The batch path a relink takes (many left profiles in one pass) gives every pair the match
    weight the online path gives it, to the last bit: NULLs, empty lists, both tf adjustments and
    the rare user-agent level included."""
    path, records, owners = trained
    scorer = VisitorScorer.from_model(path)
    lefts, candidates = _pairs(records, owners)
    odd = [
        _every_list_empty(lefts[0], unique_id=-1),
        replace(lefts[1], unique_id=-2, latitude=None, longitude=None, tf_top_ip=None, tf_user_agent=None),
        replace(lefts[2], unique_id=-3, top_ip=None, city=None, country=None, user_agent_family=None, ips=None),
        replace(lefts[3], unique_id=-4, active_days=(-70, -5, 0, 63, 64, 20000), homes=None, places=None),
        replace(lefts[4], unique_id=-5, user_agent=None, agent_first_seen=None, agent_last_seen=None),
        replace(lefts[5], unique_id=-6, agent_first_seen=0, agent_last_seen=0, active_hours=None),
    ]
    lefts, candidates = lefts + odd, candidates + odd
    encoded_lefts, encoded_candidates = encode_profiles(lefts), encode_profiles(candidates)
    one_by_one = np.concatenate(
        [scorer.score(scorer.probe(encoded_lefts, i), encoded_candidates).match_weight for i in range(len(lefts))]
    )
    n = len(candidates)
    each_left = encoded_lefts.take(np.repeat(np.arange(len(lefts)), n))
    pairs = scorer.pair_weights(each_left, encoded_candidates.take(np.tile(np.arange(n), len(lefts))))
    assert len(one_by_one) == len(pairs) >= 1000
    assert np.array_equal(pairs, one_by_one)
    assert len(np.unique(pairs)) > 20  # many levels and adjustments met, not one weight everywhere
    with pytest.raises(ValueError, match="as many left rows"):
        scorer.pair_weights(encoded_lefts, encoded_candidates.take([0]))

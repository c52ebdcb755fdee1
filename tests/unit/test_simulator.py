from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from linkage import IdentifierPolicy, LinkageConfig
from linkage.identifiers._signals import prepare_batch
from linkage.visitor._user_agents import parse_user_agent
from training._simulate import (
    Population,
    SimulatedSignal,
    SimulationConfig,
    population,
    read_jsonl,
    simulate,
    summary,
    write_jsonl,
)
from training._simulate._people import build

DAY = 86_400.0
# Enough office workers in the largest city for a large office of 300+ people.
CONFIG = SimulationConfig(persons=4_000, days=21, seed=11, office_worker_share=0.8, large_office_size=(300, 400))
SMALL = SimulationConfig(persons=300, days=5, seed=3)
DEVICE_NAMESPACES = ("cookie", "device")


class Run(NamedTuple):
    config: SimulationConfig
    signals: list[SimulatedSignal]
    population: Population


@pytest.fixture(scope="module")
def run() -> Run:
    return Run(CONFIG, simulate(CONFIG), population(CONFIG))


def _persons_by_ip(signals: list[SimulatedSignal]) -> dict[str, set[int]]:
    found: dict[str, set[int]] = defaultdict(set)
    for item in signals:
        found[item.signal.context.ip].add(item.person)
    return found


def _is_safari(user_agent: str) -> bool:
    return parse_user_agent(user_agent)[0].split("/")[1] == "safari"


def test_the_same_seed_gives_the_same_signals_and_another_seed_does_not() -> None:
    first = simulate(SMALL)
    assert first == simulate(SMALL)
    other = simulate(SimulationConfig(persons=300, days=5, seed=4))
    assert [s.signal.identifiers for s in other] != [s.signal.identifiers for s in first]


def test_the_signals_do_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    here = tmp_path / "here.jsonl"
    write_jsonl(here, simulate(SMALL))
    there = tmp_path / "there.jsonl"
    code = (
        "import sys; from training._simulate import SimulationConfig, simulate, write_jsonl; "
        "write_jsonl(sys.argv[1], simulate(SimulationConfig(persons=300, days=5, seed=3)))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(there)], check=True, cwd=root, env=env, timeout=60)
    assert hashlib.sha256(here.read_bytes()).digest() == hashlib.sha256(there.read_bytes()).digest()


def test_signals_are_time_ordered_inside_the_window_with_unique_event_ids(run: Run) -> None:
    times = [s.signal.timestamp for s in run.signals]
    assert all(t is not None for t in times)
    stamps = [t for t in times if t is not None]
    assert stamps == sorted(stamps)
    assert run.config.start_timestamp <= stamps[0] and stamps[-1] < run.config.end_timestamp
    assert stamps[-1] - stamps[0] > (run.config.days - 1) * DAY
    event_ids = [s.signal.event_id for s in run.signals]
    assert len(set(event_ids)) == len(event_ids)


def test_every_signal_passes_linkage_validation(run: Run) -> None:
    config = LinkageConfig(hash_secret=b"k")
    policy = IdentifierPolicy(config)
    now = run.config.end_timestamp + 3600
    prepared = 0
    for start in range(0, len(run.signals), 1000):
        batch = [s.signal for s in run.signals[start : start + 1000]]
        result = prepare_batch(batch, policy, config, now)
        assert not any(p.ignored for p in result)  # no blocked values either
        prepared += len(result)
    assert prepared == len(run.signals)


def test_household_members_share_a_home_address_but_are_different_persons(run: Run) -> None:
    households = run.population.households
    assert sorted(p for h in households for p in h) == list(range(run.config.persons))
    household_of = {p: k for k, h in enumerate(households) for p in h}
    by_ip = _persons_by_ip(run.signals)
    # A home address: used by two or more persons, all of one household.
    homes = {ip: persons for ip, persons in by_ip.items() if len({household_of[p] for p in persons}) == 1}
    shared_homes = {household_of[next(iter(p))] for p in homes.values() if len(p) >= 2}
    families = [k for k, h in enumerate(households) if len(h) >= 2]
    assert len(shared_homes) >= 0.6 * len(families)
    # Ground truth keeps family members apart: each login belongs to one person.
    logins: dict[str, set[int]] = defaultdict(set)
    for item in run.signals:
        for identifier in item.signal.identifiers:
            if identifier.namespace == "login":
                logins[identifier.value].add(item.person)
    assert logins and all(len(persons) == 1 for persons in logins.values())


def test_hundreds_of_colleagues_share_an_office_address_in_working_hours(run: Run) -> None:
    office_of = {p: k for k, o in enumerate(run.population.offices) for p in o}
    by_ip = _persons_by_ip(run.signals)
    ip, persons = max(by_ip.items(), key=lambda kv: len(kv[1]))
    assert len(persons) >= 100
    colleagues = Counter(office_of.get(p) for p in persons).most_common(1)[0]
    assert colleagues[0] is not None and colleagues[1] >= 0.9 * len(persons)
    # Local time is UTC+2 in the default window (summer time); offices close at night and weekends.
    local = [s.signal.timestamp + 7200 for s in run.signals if s.signal.context.ip == ip and s.signal.timestamp]
    working = [t for t in local if 6 <= (t % DAY) / 3600 < 20 and (t // DAY + 3) % 7 < 5]
    assert len(working) == len(local)


def test_safari_cookies_live_at_most_seven_days_so_a_safari_device_gets_new_ones(run: Run) -> None:
    seen: dict[str, list[float]] = defaultdict(list)
    safari: set[str] = set()
    values: dict[tuple[int, str], set[str]] = defaultdict(set)
    for item in run.signals:
        signal = item.signal
        assert signal.timestamp is not None
        for identifier in signal.identifiers:
            if identifier.namespace == "cookie":
                seen[identifier.value].append(signal.timestamp)
                if _is_safari(signal.context.user_agent):
                    safari.add(identifier.value)
                    values[(item.person, signal.context.user_agent)].add(identifier.value)
    assert safari
    assert all(max(seen[v]) - min(seen[v]) <= 7 * DAY for v in safari)
    assert any(len(cookies) >= 2 for cookies in values.values())
    others = [v for v in seen if v not in safari]
    assert any(max(seen[v]) - min(seen[v]) > 7 * DAY for v in others)


def test_many_persons_never_log_in_and_logins_come_with_a_device(run: Run) -> None:
    logged_in: set[int] = set()
    for item in run.signals:
        namespaces = [i.namespace for i in item.signal.identifiers]
        if "login" in namespaces:
            logged_in.add(item.person)
            assert any(ns in DEVICE_NAMESPACES for ns in namespaces)
        if "email" in namespaces:
            assert "cookie" in namespaces and item.signal.channel == "email"
    assert 0.35 <= 1 - len(logged_in) / run.config.persons <= 0.65
    # Sporadic: most sessions of a person with an account stay anonymous.
    theirs = [s for s in run.signals if s.person in logged_in]
    with_login = sum(1 for s in theirs if any(i.namespace == "login" for i in s.signal.identifiers))
    assert 0.05 < with_login / len(theirs) < 0.8


def test_gps_only_from_the_app_and_each_device_keeps_its_user_agent_family(run: Run) -> None:
    families: dict[str, set[str]] = defaultdict(set)
    kinds: Counter[str] = Counter()
    for item in run.signals:
        signal = item.signal
        if signal.context.geo.latitude is not None:
            assert signal.channel == "app"
        family, kind = parse_user_agent(signal.context.user_agent)
        assert "other" not in family.split("/")
        kinds[kind] += 1
        for identifier in signal.identifiers:
            if identifier.namespace in DEVICE_NAMESPACES:
                families[identifier.value].add(family)
    assert all(len(f) == 1 for f in families.values())
    assert set(kinds) == {"phone", "tablet", "desktop"}
    with_gps = sum(1 for s in run.signals if s.signal.context.geo.latitude is not None)
    assert 0 < with_gps < len(run.signals) / 2


def test_shared_devices_are_family_tablets(run: Run) -> None:
    household_of = {p: k for k, h in enumerate(run.population.households) for p in h}
    users: dict[str, set[int]] = defaultdict(set)
    for item in run.signals:
        for identifier in item.signal.identifiers:
            if identifier.namespace in DEVICE_NAMESPACES:
                users[identifier.value].add(item.person)
    shared = [persons for persons in users.values() if len(persons) >= 2]
    assert shared
    assert all(len({household_of[p] for p in persons}) == 1 for persons in shared)


@pytest.mark.parametrize("name", ["signals.jsonl", "signals.jsonl.gz"])
def test_jsonl_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    signals = simulate(SMALL)
    path = tmp_path / name
    assert write_jsonl(path, signals) == len(signals)
    assert list(read_jsonl(path)) == signals
    again = tmp_path / "again" / name
    again.parent.mkdir()
    write_jsonl(again, signals)
    assert again.read_bytes() == path.read_bytes()


def test_read_jsonl_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, simulate(SMALL)[:2])
    path.write_text(path.read_text() + '{"person": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        list(read_jsonl(path))


def test_summary_counts_everyone_and_realistic_volumes(run: Run) -> None:
    counts = summary(run.signals)
    assert counts["persons"] == run.config.persons  # everyone shows up at least once
    assert counts["signals"] == len(run.signals)
    per_day = counts["signals_per_person"] / run.config.days
    assert 10 / 30 <= per_day <= 30 / 30
    assert counts["max_persons_per_ip"] >= 100
    assert counts["identifiers_shared"] > 0
    assert 0.35 <= counts["persons_logged_in_share"] <= 0.65
    assert counts["identifiers_login"] <= counts["persons"] * counts["persons_logged_in_share"]
    assert counts["channel_app"] + counts["channel_web"] + counts["channel_email"] == len(run.signals)


@pytest.mark.parametrize(
    "bad",
    [
        {"persons": 0},
        {"days": 0},
        {"login_share": 1.5},
        {"end": datetime(2025, 6, 1)},  # naive: which time zone?
        {"end": 946_684_800.0},  # the window would start before 2000
        {"large_office_size": (400, 100)},
    ],
)
def test_config_refuses_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**bad)  # type: ignore[arg-type]


def test_two_earners_of_a_household_mostly_work_in_different_offices() -> None:
    # The default world (this module's CONFIG crowds a few cities into giant offices).
    people = population(SimulationConfig(persons=20_000, days=30, seed=5))
    office_of = {p: k for k, o in enumerate(people.offices) for p in o}
    pairs = [[office_of[p] for p in h if p in office_of] for h in people.households]
    two = [offices for offices in pairs if len(offices) >= 2]
    assert len(two) >= 500
    same = sum(1 for offices in two if len(set(offices)) == 1)
    # Chance alone puts some together (a large office employs a good part of its city).
    assert same / len(two) < 0.2


def test_an_iphones_app_and_browser_report_the_same_ios_version(run: Run) -> None:
    versions: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    pattern = re.compile(r"iPhone(?:; iOS | OS )(\d+)[._](\d+)")
    for item in run.signals:
        found = pattern.search(item.signal.context.user_agent)
        if found is not None:
            versions[item.person][item.signal.channel].add(".".join(found.groups()))
    both = [v for v in versions.values() if v.get("app") and v.get("web")]
    assert len(both) >= 50
    # Family tablets aside, a person has one iPhone: its app and browser agree.
    assert all(v["app"] == v["web"] for v in both)


def test_a_persons_devices_go_where_the_person_goes(run: Run) -> None:
    """Public wifi: a person's sessions there are at a few regular places, and sessions of
    one person within an hour of each other on public wifi are at the same hotspot."""
    hotspots = {s.ip for sites, _ in build(run.config).hotspots.values() for s in sites}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    visits: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for item in run.signals:
        ip, t = item.signal.context.ip, item.signal.timestamp
        if ip in hotspots and t is not None:
            counts[item.person][ip] += 1
            visits[item.person].append((t, ip))
    regular = [sum(c for _, c in found.most_common(2)) / sum(found.values()) for found in counts.values()]
    assert len(regular) >= 200
    assert sum(regular) / len(regular) >= 0.8
    close = same = 0
    for found in visits.values():
        found.sort()
        for (t1, ip1), (t2, ip2) in itertools.pairwise(found):
            if 0 < t2 - t1 < 3600:
                close += 1
                same += ip1 == ip2
    assert close >= 100 and same / close >= 0.95


def test_a_persons_phone_goes_to_their_office_and_their_partners_devices_do_not(run: Run) -> None:
    office_of = {p: k for k, o in enumerate(run.population.offices) for p in o}
    workers_by_ip = _persons_by_ip(run.signals)
    office_ip = {
        office: ip
        for ip, persons in workers_by_ip.items()
        for office, n in Counter(office_of.get(p) for p in persons).most_common(1)
        if office is not None and n == len(persons) and len(persons) >= 2
    }
    seen_at_office: set[int] = set()
    phone_at_office: set[int] = set()
    at: dict[str, set[int]] = defaultdict(set)
    for item in run.signals:
        at[item.signal.context.ip].add(item.person)
        person = item.person
        if person in office_of and office_ip.get(office_of[person]) == item.signal.context.ip:
            seen_at_office.add(person)
            if parse_user_agent(item.signal.context.user_agent)[1] == "phone":
                phone_at_office.add(person)
    assert len(phone_at_office) >= 0.35 * len(seen_at_office)
    # A partner with another employer (or none) is never seen on the person's office address.
    checked = 0
    for household in run.population.households:
        for a in household:
            ip = office_ip.get(office_of.get(a, -1))
            for b in household:
                if ip is not None and b != a and office_of.get(b) != office_of[a]:
                    checked += 1
                    assert b not in at[ip]
    assert checked >= 100

from __future__ import annotations

import pytest

from linkage import Context, Geo
from linkage.visitor._evidence import Evidence, ip_prefix, ip_shares
from linkage.visitor._user_agents import parse_user_agent

DAY = 86_400.0
T0 = 1_750_000_000.0 - (1_750_000_000.0 % DAY)  # a midnight, UTC

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36 Edg/124.0"
)


@pytest.mark.parametrize(
    ("ua", "family"),
    [
        (IPHONE, "ios/safari/phone"),
        (WINDOWS_EDGE, "windows/edge/desktop"),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
            "android/chrome/tablet",
        ),
        ("curl/8.0", "other/other/desktop"),
    ],
)
def test_user_agent_families(ua: str, family: str) -> None:
    assert parse_user_agent(ua)[0] == family


def test_ip_prefix_is_the_network() -> None:
    assert ip_prefix("203.0.113.77") == "203.0.113.0/24"
    assert ip_prefix("2001:db8:abcd:12::1") == "2001:db8:abcd::/48"


def test_record_summarises_the_evidence() -> None:
    evidence = Evidence()
    home = Context(ip="203.0.113.7", geo=Geo("de", "Berlin", 52.5, 13.4), user_agent=IPHONE)
    office = Context(ip="198.51.100.1", geo=Geo("DE", "Potsdam"), user_agent=IPHONE)
    for day in range(3):
        evidence.observe(T0 + day * DAY + 20 * 3600, home)
        evidence.observe(T0 + day * DAY + 20 * 3600 + 60, home)
    evidence.observe(T0 + 10 * 3600, office)
    shares = {"203.0.113.7": 0.25}
    record = evidence.record(7, share_of=shares.get)
    assert record.unique_id == 7
    assert record.top_ip == "203.0.113.7" and record.tf_top_ip == 0.25
    assert record.ips == ("203.0.113.7", "198.51.100.1")
    assert record.ip_prefixes == ("203.0.113.0/24", "198.51.100.0/24")
    assert record.city == "DE/berlin" and record.country == "DE"
    assert record.latitude == pytest.approx(52.5) and record.longitude == pytest.approx(13.4)
    assert record.user_agent_family == "ios/safari/phone" and record.device_kind == "phone"
    assert record.active_hours == (10, 20)
    assert record.active_days == tuple(int(T0 // DAY) + d for d in range(3))


def test_empty_evidence_is_null_not_empty_lists() -> None:
    evidence = Evidence()
    evidence.observe(T0, Context())
    record = evidence.record(1)
    assert record.top_ip is None and record.ips is None and record.city is None and record.latitude is None
    assert record.active_hours == (0,)


def test_absorb_adds_counts_and_ip_shares_count_components() -> None:
    a, b, c = Evidence(), Evidence(), Evidence()
    a.observe(T0, Context(ip="10.0.0.1"))
    b.observe(T0 + DAY, Context(ip="10.0.0.1"))
    b.observe(T0 + DAY, Context(ip="10.0.0.2"))
    c.observe(T0, Context(ip="10.0.0.2"))
    assert ip_shares([a, b, c]) == {"10.0.0.1": 2 / 3, "10.0.0.2": 2 / 3}
    a.absorb(b)
    assert a.ips == {"10.0.0.1": 2, "10.0.0.2": 1}
    assert len(a.days) == 2


def test_the_user_agent_used_most_comes_with_its_own_span() -> None:
    evidence = Evidence()
    for hours in (1.5, 30.25, 50.0):
        evidence.observe(T0 + hours * 3600, Context(ip="10.0.0.1", user_agent=IPHONE))
    evidence.observe(T0, Context(ip="10.0.0.1", user_agent=WINDOWS_EDGE))
    evidence.observe(T0 + 99 * 3600, Context(ip="10.0.0.1", user_agent=WINDOWS_EDGE))
    record = evidence.record(1)
    assert record.user_agent == IPHONE
    assert (record.agent_first_seen, record.agent_last_seen) == (int(T0) + 5400, int(T0) + 50 * 3600)
    assert evidence.record(2).user_agent == IPHONE  # the same answer every time
    # A hard merge adds the counts and widens the spans: now the Edge browser leads.
    other = Evidence()
    for hours in (200.0, 201.0):
        other.observe(T0 + hours * 3600, Context(user_agent=WINDOWS_EDGE))
    evidence.absorb(other)
    merged = evidence.record(1)
    assert merged.user_agent == WINDOWS_EDGE
    assert (merged.agent_first_seen, merged.agent_last_seen) == (int(T0), int(T0) + 201 * 3600)


def test_no_user_agent_no_span() -> None:
    evidence = Evidence()
    evidence.observe(T0, Context(ip="10.0.0.1"))
    record = evidence.record(1)
    assert record.user_agent is None and record.agent_first_seen is None and record.agent_last_seen is None

"""Homes: one household's addresses over time, joined by the visitors that settled on them."""

from __future__ import annotations

from collections import Counter

from linkage import Context, Geo
from linkage.visitor._evidence import Evidence, history_records
from linkage.visitor._homes import HOME_MAX_VISITORS, Homes, homes_of_history
from linkage.visitor._index import VisitorIndex
from linkage.visitor._places import AddressWeeks

DAY = 86_400.0
T = 1_750_000_000.0 - 1_750_000_000.0 % DAY + 8 * 3600  # 08:00 UTC on some day


def _ctx(ip: str) -> Context:
    return Context(ip=ip, geo=Geo("DE", "Berlin"))


def test_an_address_is_settled_on_its_second_day_not_its_second_visit() -> None:
    evidence = Evidence()
    assert not evidence.observe(T, _ctx("81.0.0.1"))
    assert not evidence.observe(T + 3600, _ctx("81.0.0.1"))  # same day
    assert evidence.settled() == []
    assert evidence.observe(T + DAY, _ctx("81.0.0.1"))  # another day: settled, once
    assert not evidence.observe(T + 2 * DAY, _ctx("81.0.0.1"))
    assert evidence.settled() == ["81.0.0.1"]


def test_absorbing_a_visit_on_another_day_settles_the_address() -> None:
    a, b = Evidence(), Evidence()
    a.observe(T, _ctx("81.0.0.1"))
    b.observe(T + DAY, _ctx("81.0.0.1"))
    a.absorb(b)
    assert a.settled() == ["81.0.0.1"]


def test_joined_homes_keep_the_larger_ones_id_and_forget_drops_addresses() -> None:
    homes = Homes()
    homes.join(["a", "b", "c"])
    homes.join(["x"])
    big, small = homes.home("a"), homes.home("x")
    assert big is not None and small is not None and big != small
    homes.join(["c", "x"])
    assert homes.home("x") == big and homes.addresses(big) == {"a", "b", "c", "x"}
    for ip in ("a", "b", "c", "x"):
        homes.discard(ip)
    assert len(homes) == 0 and homes.home("a") is None


def test_a_household_laptop_ties_the_old_home_address_to_the_new_one() -> None:
    """The ISP changed the home address; the laptop saw both (on two days each), the phone's
    browser only the old one, its next cookie only the new one."""
    index = VisitorIndex()
    for day in range(4):
        index.observe(1, T + day * DAY, _ctx("81.0.0.1" if day < 2 else "82.0.0.2"))  # laptop
    index.observe(2, T, _ctx("81.0.0.1"))  # old cookie
    index.observe(2, T + DAY, _ctx("81.0.0.1"))
    index.observe(3, T + 2 * DAY, _ctx("82.0.0.2"))  # new cookie
    index.observe(3, T + 3 * DAY, _ctx("82.0.0.2"))
    index.observe(4, T, _ctx("90.0.0.9"))  # someone elsewhere
    index.observe(4, T + DAY, _ctx("90.0.0.9"))

    assert 2 in index.candidates(3, limit=10)  # shares no address, but the home
    old, new, laptop, other = (index.record(c) for c in (2, 3, 1, 4))
    assert old is not None and new is not None and laptop is not None and other is not None
    assert old.homes == new.homes == laptop.homes and old.homes is not None
    assert other.homes is not None and other.homes != old.homes
    assert all(h.startswith("h") for h in old.homes)  # an opaque id, not an address


def test_an_address_many_visitors_use_is_no_home() -> None:
    index = VisitorIndex()
    office = "85.0.0.1"
    for component in range(1, HOME_MAX_VISITORS + 3):
        index.observe(component, T, _ctx(office))
        index.observe(component, T + DAY, _ctx(office))
    record = index.record(1)
    assert record is not None and record.homes is None


def test_history_records_have_the_homes_the_online_index_ends_with() -> None:
    visits = {1: ["81.0.0.1", "81.0.0.1", "82.0.0.2", "82.0.0.2"], 2: ["81.0.0.1", "81.0.0.1"], 3: ["82.0.0.2"] * 2}
    evidence = []
    index = VisitorIndex()
    for component, ips in visits.items():
        e = Evidence()
        for day, ip in enumerate(ips):
            e.observe(T + day * DAY, _ctx(ip))
            index.observe(component, T + day * DAY, _ctx(ip))
        evidence.append(e)
    offline = {record.unique_id: record.homes for _, record in history_records(evidence, AddressWeeks())}
    online = {c: r.homes for c in visits if (r := index.record(c)) is not None}
    assert offline[1] == offline[2] == offline[3] and offline[1] is not None
    assert len(set(online.values())) == 1
    homes = homes_of_history([e.settled() for e in evidence], Counter({"81.0.0.1": 2, "82.0.0.2": 2}))
    assert homes.home("81.0.0.1") == homes.home("82.0.0.2")


def test_an_erased_visitor_leaves_no_address_behind_in_the_homes() -> None:
    index = VisitorIndex()
    for day in range(4):
        index.observe(1, T + day * DAY, _ctx("81.0.0.1" if day < 2 else "82.0.0.2"))
    index.observe(2, T, _ctx("82.0.0.2"))  # a neighbour's visit: that address stays
    index.remove(1)
    assert index.homes.home("81.0.0.1") is None
    assert index.homes.home("82.0.0.2") is not None  # still used by someone else

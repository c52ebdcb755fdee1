from __future__ import annotations

from linkage import Context, Geo
from linkage.visitor._index import VisitorIndex

T = 1_750_000_000.0


def _ctx(ip: str, city: str = "Berlin") -> Context:
    return Context(ip=ip, geo=Geo("DE", city))


def test_candidates_share_an_address_or_a_network_in_the_same_city() -> None:
    index = VisitorIndex()
    index.observe(1, T, _ctx("203.0.113.7"))
    index.observe(2, T, _ctx("203.0.113.7"))  # same address
    index.observe(3, T, _ctx("203.0.113.99"))  # same /24, same city
    index.observe(4, T, _ctx("203.0.113.50", city="Hamburg"))  # same /24, other city
    index.observe(5, T, _ctx("198.51.100.1"))  # elsewhere
    assert set(index.candidates(1, limit=10)) == {2, 3}
    assert index.candidates(1, limit=1) == [2]


def test_tf_is_the_share_of_components_that_used_the_top_address() -> None:
    index = VisitorIndex()
    for component in range(1, 5):
        index.observe(component, T, _ctx("10.1.1.1" if component < 4 else "10.9.9.9"))
    office = index.record(1)
    home = index.record(4)
    assert office is not None and home is not None
    assert office.tf_top_ip == 0.75 and home.tf_top_ip == 0.25


def test_merge_moves_evidence_and_index_entries() -> None:
    index = VisitorIndex()
    index.observe(1, T, _ctx("10.0.0.1"))
    index.observe(2, T, _ctx("10.0.0.2"))
    index.observe(3, T, _ctx("10.0.0.2"))
    index.merge(2, 1)
    assert not index.has(2)
    record = index.record(1)
    assert record is not None and set(record.ips or ()) == {"10.0.0.1", "10.0.0.2"}
    assert index.candidates(3, limit=10) == [1]


def test_observe_reports_new_addresses_and_settling() -> None:
    index = VisitorIndex()
    assert index.observe(1, T, _ctx("10.0.0.1"))[:2] == (True, False)
    assert index.observe(1, T + 60, _ctx("10.0.0.1"))[:2] == (False, False)
    assert index.observe(1, T + 120, _ctx("10.0.0.2"))[:2] == (True, False)
    assert index.observe(1, T + 86_400, _ctx("10.0.0.1"))[:2] == (False, True), "a second day there: settled"
    assert index.observe(1, T + 86_460, _ctx("10.0.0.1"))[:2] == (False, False)


def test_observe_names_the_other_components_whose_profile_it_changed() -> None:
    day = 86_400
    index = VisitorIndex()
    # A phone settles on the old home address, a tablet on the new one: two homes so far.
    index.observe(1, T, _ctx("10.0.0.1"))
    index.observe(1, T + day, _ctx("10.0.0.1"))
    index.observe(2, T, _ctx("10.0.0.2"))
    assert index.observe(2, T + day, _ctx("10.0.0.2")).changed_others == frozenset()
    phone, tablet = index.record(1), index.record(2)
    assert phone is not None and tablet is not None and phone.homes != tablet.homes
    # A laptop settles on both: one home now, and one of the two changed its id.
    index.observe(3, T, _ctx("10.0.0.1"))
    index.observe(3, T + 60, _ctx("10.0.0.2"))
    index.observe(3, T + day, _ctx("10.0.0.1"))
    changed = index.observe(3, T + day + 60, _ctx("10.0.0.2")).changed_others
    phone, tablet = index.record(1), index.record(2)
    assert phone is not None and tablet is not None and phone.homes == tablet.homes
    assert len(changed) == 1 and changed <= {1, 2}
    # The thirteenth user of an address: no longer a home for the twelve before it.
    for component in range(10, 20):
        index.observe(component, T, _ctx("10.0.0.1"))
    assert index.observe(21, T, _ctx("10.0.0.1")).changed_others == {1, 3, *range(10, 20)}
    assert index.observe(22, T, _ctx("10.0.0.1")).changed_others == frozenset()
    phone = index.record(1)
    assert phone is not None and phone.homes is None


def test_a_visitor_on_an_address_that_becomes_a_home_has_seen_that_home() -> None:
    day = 86_400
    index = VisitorIndex()
    # A browser's next cookie, one day on the home address so far: no home of its own.
    index.observe(1, T, _ctx("10.0.0.1"))
    cookie = index.record(1)
    assert cookie is not None and cookie.homes is None and cookie.homes_seen is None
    # The household's laptop settles there: the address is a home now, and the cookie's row is stale.
    index.observe(2, T + 60, _ctx("10.0.0.1"))
    assert index.observe(2, T + day, _ctx("10.0.0.1")).changed_others == {1}
    cookie, laptop = index.record(1), index.record(2)
    assert cookie is not None and laptop is not None
    assert cookie.homes is None, "it has not settled there itself"
    assert laptop.homes is not None and cookie.homes_seen == laptop.homes == laptop.homes_seen


def test_remove_forgets_evidence_and_every_index_entry() -> None:
    index = VisitorIndex()
    index.observe(1, T, _ctx("10.0.0.1"))
    index.observe(2, T, _ctx("10.0.0.1"))
    index.observe(2, T, _ctx("10.0.0.7", city="Hamburg"))
    index.remove(2)
    assert not index.has(2) and len(index) == 1
    assert index.users("10.0.0.1") == {1} and index.users("10.0.0.7") == set()
    assert index.candidates(1, limit=10) == []
    record = index.record(1)
    assert record is not None and record.tf_top_ip == 1.0

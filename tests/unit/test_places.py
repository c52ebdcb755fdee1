"""Places: a crowded address is a place only as a workplace, online and in training alike."""

from __future__ import annotations

from linkage import Context, Geo
from linkage.visitor._evidence import Evidence, history_records, place_id
from linkage.visitor._index import VisitorIndex
from linkage.visitor._places import PLACE_MAX_VISITORS, AddressWeeks

DAY = 86_400.0
MONDAY = 1_749_427_200.0  # 2025-06-09T00:00:00Z
OFFICE = "195.10.20.31"


def _ctx(ip: str) -> Context:
    return Context(ip=ip, geo=Geo("DE", "Berlin"))


def _visits(visitors: int, at_weekends: bool) -> list[tuple[int, float]]:
    """(component, time): each visitor on two days of two weeks, at ten in the morning."""
    days = 7 if at_weekends else 5
    return [(c, MONDAY + (c % days + week * 7) * DAY + 10 * 3600) for c in range(1, visitors + 1) for week in (0, 1)]


def test_an_address_mostly_used_on_weekdays_by_enough_signals_is_a_workplace() -> None:
    weeks = AddressWeeks()
    for day in range(5):
        weeks.observe(MONDAY + day * DAY, OFFICE)
    assert not weeks.is_workplace(OFFICE)  # 5 signals say nothing yet
    for n in range(50):
        weeks.observe(MONDAY + (n % 5) * DAY, OFFICE)
    assert weeks.is_workplace(OFFICE)
    assert weeks.is_place(OFFICE, visitors=10_000) and weeks.is_place("10.0.0.1", visitors=PLACE_MAX_VISITORS)
    assert not weeks.is_place("10.0.0.1", visitors=PLACE_MAX_VISITORS + 1)
    for n in range(10):  # a Saturday and a Sunday: 10 of 65 signals at weekends
        weeks.observe(MONDAY + (5 + n % 2) * DAY, OFFICE)
    assert not weeks.is_workplace(OFFICE)
    weeks.discard(OFFICE)
    assert not weeks.is_workplace(OFFICE)


def test_a_crowded_workplace_stays_a_place_online_and_in_training() -> None:
    for at_weekends, place in ((False, True), (True, False)):
        index = VisitorIndex()
        evidence: dict[int, Evidence] = {}
        weeks = AddressWeeks()
        for component, at in _visits(PLACE_MAX_VISITORS + 100, at_weekends):
            index.observe(component, at, _ctx(OFFICE))
            evidence.setdefault(component, Evidence()).observe(at, _ctx(OFFICE))
            weeks.observe(at, OFFICE)
        online = index.record(1)
        offline = dict(history_records(list(evidence.values()), weeks))[0]
        assert online is not None
        expected = (place_id(OFFICE),) if place else None
        assert online.places == offline.places == expected


def test_profiles_on_an_address_that_becomes_a_workplace_or_stops_being_one_go_stale() -> None:
    index = VisitorIndex()
    visits = _visits(PLACE_MAX_VISITORS + 10, at_weekends=False)
    for component, at in visits:
        index.observe(component, at, _ctx(OFFICE))
    users = index.users(OFFICE)
    # Weekend signals, each by a visitor already there: until the share passes a tenth nothing
    # changes for the others; the signal that passes it changes every user's places.
    changed = []
    for n in range(200):
        observed = index.observe(1 + n % 5, MONDAY + 5 * DAY + n, _ctx(OFFICE))
        if observed.changed_others:
            changed.append((n, observed.changed_others))
    assert len(changed) == 1 and changed[0][1] == users - {1 + changed[0][0] % 5}
    assert index.record(1) is not None and index.record(1).places is None  # type: ignore[union-attr]

"""Households as an answer, through the real server with the bundled model.

Two browsers with one user agent in use at the same time on one home address (a family's
phones), then a new cookie with that user agent: the model is sure it is one of the two but
not whose, so the cookie is linked to their household instead of to either person.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer
from tests._signals import batch, ident, signal
from tests.test_visitor_stitching import _background, _resolve, _safari_cookies

THRESHOLD = 0.85
_FAMILY = (("cookie", "safari-1"), ("cookie", "sister-1"), ("cookie", "safari-2"))


@pytest.fixture
def family(tmp_path: Path) -> Iterator[ThreadServer]:
    running = ThreadServer(tmp_path / "data", model_threshold=THRESHOLD)
    try:
        _background(running)
        _safari_cookies(running, "safari-1", "sister-1")
        yield running
    finally:
        running.stop()


def _household_changes(server: ThreadServer) -> list[pb.Change]:
    kinds = (pb.CHANGE_KIND_HOUSEHOLD_LINKED, pb.CHANGE_KIND_HOUSEHOLD_UNLINKED)
    return [c for c in server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)) if c.kind in kinds]


def test_a_visitor_two_members_explain_equally_well_is_linked_to_their_household(family: ThreadServer) -> None:
    first, sister, new = _resolve(family, *_FAMILY)

    assert len({first.person_id, sister.person_id, new.person_id}) == 3, "no person link for anyone"
    assert new.decision != pb.DECISION_PROBABILISTIC
    assert new.household_id.startswith("h_")
    assert first.household_id == sister.household_id == new.household_id
    assert new.household_probability >= THRESHOLD
    assert first.household_probability == sister.household_probability == 1.0

    household = family.stub.GetHousehold(pb.GetHouseholdRequest(household_id=new.household_id)).household
    assert household.household_id == new.household_id
    assert [p.person_id for p in household.persons] == sorted([first.person_id, sister.person_id])
    [visitor] = household.visitors
    assert visitor.person.person_id == new.person_id
    assert {(i.namespace, i.value) for i in visitor.person.identifiers} == {("cookie", "safari-2")}
    assert visitor.probability == pytest.approx(new.household_probability)
    assert visitor.model_version

    by_identifier = family.stub.GetHousehold(pb.GetHouseholdRequest(identifier=ident("cookie", "safari-2")))
    by_person = family.stub.GetHousehold(pb.GetHouseholdRequest(household_id=sister.person_id))
    assert by_identifier.household == household == by_person.household

    [linked] = _household_changes(family)
    assert linked.kind == pb.CHANGE_KIND_HOUSEHOLD_LINKED
    assert linked.other_person_id == new.person_id
    assert linked.household_id == new.household_id
    assert sorted(linked.household_person_ids) == sorted([first.person_id, sister.person_id])
    assert linked.probability == pytest.approx(new.household_probability)


def test_confidence_settings_apply_to_the_household_answer(family: ThreadServer) -> None:
    new = _resolve(family, ("cookie", "safari-2"))[0]
    assert _resolve(family, ("cookie", "safari-2"), deterministic_only=True)[0].household_id == ""
    above = min(1.0, new.household_probability + 0.01)
    assert _resolve(family, ("cookie", "safari-2"), min_probability=above)[0].household_id == ""
    assert _resolve(family, ("cookie", "safari-2"), min_probability=THRESHOLD)[0].household_id == new.household_id


def test_a_household_and_its_link_survive_a_restart(tmp_path: Path) -> None:
    running = ThreadServer(tmp_path / "data", model_threshold=THRESHOLD)
    try:
        _background(running)
        _safari_cookies(running, "safari-1", "sister-1")
        before = _resolve(running, *_FAMILY)
        household = running.stub.GetHousehold(pb.GetHouseholdRequest(household_id=before[2].household_id))
    finally:
        running.stop()
    again = ThreadServer(tmp_path / "data", model_threshold=THRESHOLD)
    try:
        assert _resolve(again, *_FAMILY) == before
        assert again.stub.GetHousehold(pb.GetHouseholdRequest(household_id=before[2].household_id)) == household
    finally:
        again.stop()


def test_a_login_that_proves_whose_visitor_it_was_replaces_the_household_link(family: ThreadServer) -> None:
    family.stub.Ingest(batch(signal(("login", "sis"), ("cookie", "sister-1"))))
    family.stub.Ingest(batch(signal(("login", "sis"), ("cookie", "safari-2"))))

    sister, new = _resolve(family, ("cookie", "sister-1"), ("cookie", "safari-2"))
    assert new.person_id == sister.person_id
    assert new.household_id == ""
    [linked, dropped] = _household_changes(family)
    assert dropped.kind == pb.CHANGE_KIND_HOUSEHOLD_UNLINKED and dropped.other_person_id == linked.other_person_id
    assert dropped.detail
    assert list(dropped.household_person_ids) == [], "the household had no other link: it is gone"
    with pytest.raises(grpc.RpcError) as missing:
        family.stub.GetHousehold(pb.GetHouseholdRequest(household_id=linked.household_id))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_forgetting_a_member_leaves_no_household_of_one(family: ThreadServer) -> None:
    first = _resolve(family, ("cookie", "safari-1"))[0]
    family.stub.Forget(pb.ForgetRequest(person_id=first.person_id))

    sister, new = _resolve(family, ("cookie", "sister-1"), ("cookie", "safari-2"))
    assert sister.household_id == new.household_id == ""
    dropped = _household_changes(family)[-1]
    assert dropped.kind == pb.CHANGE_KIND_HOUSEHOLD_UNLINKED and dropped.detail == "person erased"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetHouseholdRequest(), "selector"),
        (pb.GetHouseholdRequest(household_id="household-1"), "household_id"),
        (pb.GetHouseholdRequest(identifier=ident("nosuch", "x")), "identifier"),
    ],
)
def test_a_bad_household_lookup_names_the_field(
    family: ThreadServer, request_: pb.GetHouseholdRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        family.stub.GetHousehold(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (refused.value.details() or "")


def test_a_person_in_no_household_is_not_found(family: ThreadServer) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        family.stub.GetHousehold(pb.GetHouseholdRequest(identifier=ident("cookie", "bg1")))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

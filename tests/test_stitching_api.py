"""Deterministic stitching through the real gRPC server and a real DuckDB file."""

from __future__ import annotations

import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer
from tests._signals import batch, ident, resolve, signal


def test_ingest_then_resolve_then_get_person(server: ThreadServer) -> None:
    response = server.stub.Ingest(batch(signal(("cookie", "c-1"), ("login", "anna"), channel="web")))
    [result] = response.results
    assert result.person_created and result.decision == pb.DECISION_NEW
    person_id = result.person_id

    assert resolve(server.stub, ("cookie", "c-1"), ("login", "anna"), ("cookie", "nobody")) == [
        person_id,
        person_id,
        "",
    ]

    person = server.stub.GetPerson(pb.GetPersonRequest(person_id=person_id)).person
    assert person.person_id == person_id
    assert {(i.namespace, i.value) for i in person.identifiers} == {("cookie", "c-1"), ("login", "anna")}
    assert list(person.channels) == ["web"]
    by_identifier = server.stub.GetPerson(pb.GetPersonRequest(identifier=ident("login", "anna"))).person
    assert by_identifier == person


def test_login_on_two_devices_merges_and_younger_id_stays_an_alias(server: ThreadServer) -> None:
    laptop = server.stub.Ingest(batch(signal(("cookie", "laptop")))).results[0].person_id
    phone = server.stub.Ingest(batch(signal(("device", "phone")))).results[0].person_id
    assert laptop != phone

    server.stub.Ingest(batch(signal(("login", "anna"), ("cookie", "laptop"))))
    merged = server.stub.Ingest(batch(signal(("login", "anna"), ("device", "phone")))).results[0]

    assert merged.person_id == laptop, "the older id survives"
    assert list(merged.merged_person_ids) == [phone]
    assert resolve(server.stub, ("cookie", "laptop"), ("device", "phone")) == [laptop, laptop]
    via_alias = server.stub.GetPerson(pb.GetPersonRequest(person_id=phone)).person
    assert via_alias.person_id == laptop
    assert list(via_alias.aliases) == [phone]


def test_family_tablet_logged_into_two_accounts_merges_nobody(server: ThreadServer) -> None:
    anna = server.stub.Ingest(batch(signal(("login", "anna"), ("device", "anna-phone")))).results[0].person_id
    ben = server.stub.Ingest(batch(signal(("login", "ben"), ("device", "ben-phone")))).results[0].person_id

    server.stub.Ingest(batch(signal(("device", "tablet"), ("login", "anna"))))
    result = server.stub.Ingest(batch(signal(("device", "tablet"), ("login", "ben")))).results[0]

    assert result.person_id == ben and not result.merged_person_ids
    assert resolve(server.stub, ("login", "anna"), ("login", "ben")) == [anna, ben]
    tablet = server.stub.Resolve(pb.ResolveRequest(identifiers=[ident("device", "tablet")])).resolutions[0]
    assert tablet.person_id == ben and tablet.shared, "the tablet follows the last authenticated person"
    # An anonymous visit on the shared tablet bridges nobody either.
    server.stub.Ingest(batch(signal(("device", "tablet"), ("device", "anna-phone"))))
    assert resolve(server.stub, ("login", "anna"), ("login", "ben")) == [anna, ben]
    # Anna logs in again: the tablet goes back to her.
    server.stub.Ingest(batch(signal(("device", "tablet"), ("login", "anna"))))
    assert resolve(server.stub, ("device", "tablet")) == [anna]
    moves = [
        c
        for c in server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True))
        if c.kind == pb.CHANGE_KIND_IDENTIFIER_MOVED
    ]
    assert [(m.other_person_id, m.person_id) for m in moves] == [(anna, ben), (ben, anna)]


def test_blocked_values_link_nothing(server: ThreadServer) -> None:
    first = server.stub.Ingest(batch(signal(("cookie", "undefined"), ("login", "anna")))).results[0]
    second = server.stub.Ingest(batch(signal(("cookie", "undefined"), ("login", "ben")))).results[0]
    zeros = server.stub.Ingest(batch(signal(("device", "00000000-0000-0000-0000-000000000000"), ("login", "cleo"))))

    assert first.person_id != second.person_id
    assert [(i.index, i.namespace, i.reason) for i in first.ignored] == [(0, "cookie", pb.IGNORED_REASON_BLOCKED_VALUE)]
    assert zeros.results[0].ignored[0].namespace == "device"
    persons = {first.person_id, second.person_id, zeros.results[0].person_id}
    assert len(persons) == 3
    for person_id in persons:
        person = server.stub.GetPerson(pb.GetPersonRequest(person_id=person_id)).person
        assert [i.namespace for i in person.identifiers] == ["login"]


def test_replayed_batch_changes_nothing(server: ThreadServer) -> None:
    request = batch(
        signal(("cookie", "a"), ("login", "anna")),
        signal(("cookie", "b"), ("login", "anna")),
        signal(("device", "d"), ("cookie", "b")),
    )
    first = server.stub.Ingest(request)
    log_before = list(server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))

    replay = server.stub.Ingest(request)

    assert all(r.duplicate for r in replay.results)
    assert [r.person_id for r in replay.results] == [r.person_id for r in first.results]
    assert list(server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True))) == log_before


def test_personal_data_is_hashed_and_never_echoed(server: ThreadServer) -> None:
    result = server.stub.Ingest(batch(signal(("email", "  Anna@Example.ORG "), ("phone", "+49 30 1234567")))).results[0]
    person = server.stub.GetPerson(pb.GetPersonRequest(person_id=result.person_id)).person
    values = {i.namespace: i for i in person.identifiers}
    assert values["email"].hashed and values["phone"].hashed
    assert len(values["email"].value) == 64 and "anna" not in values["email"].value
    # Normalised before hashing: another spelling of the same address finds the same person.
    assert resolve(server.stub, ("email", "anna@example.org"), ("phone", "+493012345 67")) == [result.person_id] * 2


def test_cap_evicts_the_least_recently_seen_identifier(server: ThreadServer) -> None:
    # Default cap for phone numbers is 5 per person.
    numbers = [f"+4930123456{i}" for i in range(6)]
    for n, number in enumerate(numbers):
        server.stub.Ingest(batch(signal(("login", "anna"), ("phone", number), at=1_700_000_000 + n)))
    found = resolve(server.stub, *[("phone", n) for n in numbers])
    assert found[0] == "" and all(found[1:])
    evictions = [
        c
        for c in server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True))
        if c.kind == pb.CHANGE_KIND_IDENTIFIER_EVICTED
    ]
    assert len(evictions) == 1 and evictions[0].identifier.namespace == "phone"


def test_ingest_stream_answers_each_request_in_order_once_durable(server: ThreadServer) -> None:
    requests = [batch(signal(("cookie", f"s{n}"), ("login", f"user{n % 2}"))) for n in range(6)]
    responses = list(server.stub.IngestStream(iter(requests)))
    assert [r.results[0].event_id for r in responses] == [q.signals[0].event_id for q in requests]
    user0, user1 = responses[0].results[0].person_id, responses[1].results[0].person_id
    assert [r.results[0].person_id for r in responses] == [user0, user1] * 3
    assert resolve(server.stub, ("cookie", "s4"), ("cookie", "s5")) == [user0, user1]


def test_ingest_stream_ends_with_the_field_of_a_bad_request(server: ThreadServer) -> None:
    requests = [batch(signal(("cookie", "fine"))), batch(signal(("email", "broken")))]
    stream = server.stub.IngestStream(iter(requests))
    first = next(stream)
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("signals[0].identifiers[0].value")
    stream.cancel()
    assert resolve(server.stub, ("cookie", "fine")) == [first.results[0].person_id]

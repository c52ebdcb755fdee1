"""Customer records from source systems through SyncCrmRecords: the real server, a real DuckDB
file and the bundled customer model."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ProcessServer, ThreadServer

_keys = itertools.count(1)

KATHERINE = {
    "given_name": "Katherine",
    "family_name": "Smithson",
    "date_of_birth": "1984-03-12",
    "address": "12 Harbour Street",
    "postcode": "2040",
    "city": "Glebe",
}
# The same woman as the shop's till typed her in.
KATHARINE = {**KATHERINE, "given_name": "Katharine", "family_name": "Smithsen", "address": "12 Harbour Stret"}
# Someone else entirely.
OLIVER = {
    "given_name": "Oliver",
    "family_name": "Brennan",
    "date_of_birth": "1990-11-02",
    "address": "3 Mill Lane",
    "postcode": "3121",
    "city": "Richmond",
}


def record(system: str, key: str | None = None, **attributes: str) -> pb.CustomerRecord:
    return pb.CustomerRecord(source_system=system, source_key=f"k{next(_keys)}" if key is None else key, **attributes)


def sync(stub: object, records: Iterable[pb.CustomerRecord], chunk: int = 2) -> pb.SyncCrmRecordsResponse:
    records = list(records)
    requests = (pb.SyncCrmRecordsRequest(records=records[i : i + chunk]) for i in range(0, len(records), chunk))
    response: pb.SyncCrmRecordsResponse = stub.SyncCrmRecords(requests)  # type: ignore[attr-defined]
    return response


def resolve(stub: object, *identifiers: tuple[str, str], **confidence: object) -> list[pb.Resolution]:
    request = pb.ResolveRequest(identifiers=[pb.Identifier(namespace=n, value=v) for n, v in identifiers], **confidence)
    return list(stub.Resolve(request).resolutions)  # type: ignore[attr-defined]


def changes(stub: object) -> list[pb.Change]:
    return list(stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))  # type: ignore[attr-defined]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    running = ThreadServer(tmp_path / "data")
    try:
        yield running
    finally:
        running.stop()


def test_a_record_with_a_known_source_key_updates_that_person(server: ThreadServer) -> None:
    first = sync(server.stub, [record("hotel", "H-1", **OLIVER)])
    assert (first.received, first.created, first.updated, first.rejected) == (1, 1, 0, 0)
    [before] = resolve(server.stub, ("crm:hotel", "H-1"))

    moved = {**OLIVER, "address": "9 Station Road", "postcode": "3122"}
    second = sync(server.stub, [record("hotel", "H-1", email="oliver@example.org", **moved)])
    assert (second.created, second.updated, second.unchanged) == (0, 1, 0)
    key, email = resolve(server.stub, ("crm:hotel", "H-1"), ("email", "Oliver@Example.org"))
    assert key.person_id == email.person_id == before.person_id
    person = server.stub.GetPerson(pb.GetPersonRequest(person_id=before.person_id)).person
    assert {i.namespace for i in person.identifiers} == {"crm:hotel", "email"}
    assert "crm:hotel" in person.channels


def test_exact_keys_link_deterministically_across_systems(server: ThreadServer) -> None:
    sync(server.stub, [record("hotel", "H-7", email="ann@example.org", **OLIVER)])
    sync(server.stub, [record("loyalty", "L-7", email="ANN@example.org ", given_name="A", family_name="B")])
    hotel, loyalty = resolve(server.stub, ("crm:hotel", "H-7"), ("crm:loyalty", "L-7"), deterministic_only=True)
    assert hotel.person_id == loyalty.person_id
    assert hotel.decision == pb.DECISION_DETERMINISTIC


def test_slightly_different_spellings_in_two_systems_join_one_person(server: ThreadServer) -> None:
    response = sync(server.stub, [record("hotel", "H-2", **KATHERINE), record("shop", "S-2", **KATHARINE)])
    assert response.linked_probabilistically == 1
    hotel, shop = resolve(server.stub, ("crm:hotel", "H-2"), ("crm:shop", "S-2"))
    assert hotel.person_id == shop.person_id
    assert shop.decision == pb.DECISION_PROBABILISTIC and shop.probability >= 0.9
    apart = resolve(server.stub, ("crm:hotel", "H-2"), ("crm:shop", "S-2"), deterministic_only=True)
    assert apart[0].person_id != apart[1].person_id, "a soft link, not a hard one"
    linked = [c for c in changes(server.stub) if c.kind == pb.CHANGE_KIND_SOFT_LINKED]
    assert len(linked) == 1 and linked[0].probability == shop.probability

    explained = server.stub.Explain(
        pb.ExplainRequest(
            a=pb.Identifier(namespace="crm:hotel", value="H-2"), b=pb.Identifier(namespace="crm:shop", value="S-2")
        )
    )
    assert explained.same_person
    [step] = explained.steps
    assert {w.comparison for w in step.weights} >= {"given_name", "family_name", "date_of_birth", "address"}
    assert sum(w.match_weight for w in step.weights) == pytest.approx(step.match_weight, abs=1e-9)


def test_someone_else_stays_apart(server: ThreadServer) -> None:
    response = sync(server.stub, [record("hotel", "H-3", **KATHERINE), record("shop", "S-3", **OLIVER)])
    assert response.linked_probabilistically == 0
    hotel, shop = resolve(server.stub, ("crm:hotel", "H-3"), ("crm:shop", "S-3"))
    assert hotel.person_id != shop.person_id


def test_two_keys_of_one_system_never_merge(server: ThreadServer) -> None:
    # The same person twice in the hotel's system, then a shop record that matches both.
    response = sync(
        server.stub,
        [record("hotel", "H-4", **KATHERINE), record("hotel", "H-5", **KATHERINE), record("shop", "S-4", **KATHARINE)],
    )
    assert response.rejected == 0
    first, second, shop = resolve(server.stub, ("crm:hotel", "H-4"), ("crm:hotel", "H-5"), ("crm:shop", "S-4"))
    assert first.person_id != second.person_id
    assert shop.person_id in {first.person_id, second.person_id}
    # Even sharing an email cannot join them: a conflict, not a merge.
    sync(server.stub, [record("hotel", "H-4", email="k@example.org", **KATHERINE)])
    sync(server.stub, [record("hotel", "H-5", email="k@example.org", **KATHERINE)])
    first, second = resolve(server.stub, ("crm:hotel", "H-4"), ("crm:hotel", "H-5"))
    assert first.person_id != second.person_id


def test_a_soft_link_that_hard_evidence_contradicts_is_dropped(server: ThreadServer) -> None:
    sync(server.stub, [record("hotel", "H-6", **KATHERINE), record("shop", "S-6", email="k@example.org", **KATHARINE)])
    hotel, shop = resolve(server.stub, ("crm:hotel", "H-6"), ("crm:shop", "S-6"))
    assert hotel.person_id == shop.person_id
    # The shop customer's email turns up on another hotel booking: the shop row is that guest.
    sync(server.stub, [record("hotel", "H-66", email="k@example.org")])
    hotel, shop, other = resolve(server.stub, ("crm:hotel", "H-6"), ("crm:shop", "S-6"), ("crm:hotel", "H-66"))
    assert shop.person_id == other.person_id != hotel.person_id
    unlinked = [c for c in changes(server.stub) if c.kind == pb.CHANGE_KIND_SOFT_UNLINKED]
    assert len(unlinked) == 1 and "contradicted" in unlinked[0].detail


def test_bad_records_are_reported_and_the_good_ones_applied(server: ThreadServer) -> None:
    before = len(changes(server.stub))
    response = sync(
        server.stub,
        [
            record("hotel", "B-1", **OLIVER),
            record("hotel", "B-2", date_of_birth="1984-13-40", given_name="Zed"),
            record("Hotel System!", "B-3"),
            record("hotel", "", given_name="Nokey"),
            record("hotel", "B-5", email="not-an-email-secret-value"),
            record("hotel", "B-6", phone="12"),
            record("hotel", "B-7", date_of_birth="12/03/1984"),
            record("shop", "B-8", **KATHERINE),
        ],
        chunk=3,
    )
    assert (response.received, response.created, response.rejected) == (8, 2, 6)
    assert [(e.index, e.field) for e in response.errors] == [
        (1, "date_of_birth"),
        (2, "source_system"),
        (3, "source_key"),
        (4, "email"),
        (5, "phone"),
        (6, "date_of_birth"),
    ]
    assert all("secret" not in e.message and "12/03" not in e.message for e in response.errors)
    found = resolve(server.stub, ("crm:hotel", "B-1"), ("crm:shop", "B-8"), ("crm:hotel", "B-2"))
    assert [r.found for r in found] == [True, True, False]
    assert len(changes(server.stub)) > before


def test_the_same_records_twice_change_nothing(server: ThreadServer) -> None:
    records = [
        record("hotel", "T-1", **KATHERINE),
        record("shop", "T-2", **KATHARINE),
        record("hotel", "T-3", **OLIVER),
    ]
    records.append(record("hotel", "T-4", date_of_birth="not a date"))
    first = sync(server.stub, records)
    log = changes(server.stub)
    second = sync(server.stub, records)
    assert (second.received, second.created, second.updated, second.rejected) == (4, 0, 0, 1)
    assert second.unchanged == second.received - second.rejected
    assert first.created == 3
    assert changes(server.stub) == log


def test_an_empty_stream_is_fine(server: ThreadServer) -> None:
    response = server.stub.SyncCrmRecords(iter([]))
    assert response.received == 0


def test_a_second_stream_waits_for_the_first_to_be_applied(server: ThreadServer) -> None:
    """One stream is received and held at a time (max_concurrent_syncs = 1): that bounds what
    syncs take of memory. The second is not refused; it is received once the first is done."""
    first_may_end = threading.Event()

    def first_stream() -> Iterator[pb.SyncCrmRecordsRequest]:
        yield pb.SyncCrmRecordsRequest(records=[record("crm", "first-1", **KATHERINE)])
        first_may_end.wait(30)
        yield pb.SyncCrmRecordsRequest(records=[record("crm", "first-2", **OLIVER)])

    first = server.stub.SyncCrmRecords.future(first_stream(), timeout=60)
    time.sleep(0.5)  # the first holds the turn
    second = server.stub.SyncCrmRecords.future(iter([pb.SyncCrmRecordsRequest(records=[record("shop")])]), timeout=60)
    time.sleep(1.5)
    assert not second.done(), "a second stream was received while the first one held its turn"
    first_may_end.set()
    assert first.result().received == 2
    assert second.result().received == 1


def test_records_and_links_survive_a_restart_and_attributes_stay_out_of_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ProcessServer(data)
    records = [
        record("hotel", "R-1", email="kath@example.org", phone="+61 2 9374 4000", **KATHERINE),
        record("shop", "R-2", **KATHARINE),
    ]
    try:
        assert sync(first.stub, records).linked_probabilistically == 1
        before = resolve(first.stub, ("crm:hotel", "R-1"), ("crm:shop", "R-2"))
    finally:
        assert first.terminate() == 0

    second = ProcessServer(data)
    try:
        again = sync(second.stub, records)
        assert again.unchanged == 2, "the fingerprints came back from the store"
        assert resolve(second.stub, ("crm:hotel", "R-1"), ("crm:shop", "R-2")) == before
        assert "Smithson" not in second.log() and "smithson" not in second.log()
    finally:
        assert second.terminate() == 0
    con = duckdb.connect(str(data / "idstitch.duckdb"), read_only=True)
    try:
        # Attributes live in customer_records only; email and phone are keyed hashes everywhere.
        assert con.execute("SELECT count(*) FROM customer_records").fetchone() == (2,)
        for table in ("events", "changes", "identifiers", "persons"):
            dump = str(con.execute(f"SELECT * FROM {table}").fetchall()).lower()
            for secret in ("smithson", "harbour", "1984-03-12", "kath@example.org", "+61293744000"):
                assert secret not in dump, f"{secret} in {table}"
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0.5, 3.0, 6.0])
def test_a_kill_during_a_large_sync_leaves_all_or_nothing(tmp_path: Path, kill_after: float) -> None:
    data = tmp_path / "data"
    first = ProcessServer(data)
    records = [record("bulk", f"K-{i}", given_name=f"n{i}", date_of_birth="1970-01-01") for i in range(20_000)]
    future = first.stub.SyncCrmRecords.future(
        pb.SyncCrmRecordsRequest(records=records[i : i + 2000]) for i in range(0, len(records), 2000)
    )
    with contextlib.suppress(grpc.FutureTimeoutError):
        future.result(timeout=kill_after)
    first.kill()
    second = ProcessServer(data)
    try:
        found = [r.found for r in resolve(second.stub, *(("crm:bulk", f"K-{i}") for i in range(0, 20_000, 997)))]
        assert all(found) or not any(found), "a sync is one transaction"
    finally:
        second.terminate()


def test_a_sync_its_caller_cancels_is_rolled_back_and_the_server_goes_on(server: ThreadServer) -> None:
    # One date of birth for all: every record is scored against many, so applying takes a while.
    records = [record("bulk", f"C-{i}", given_name=f"n{i}", date_of_birth="1970-01-01") for i in range(30_000)]
    future = server.stub.SyncCrmRecords.future(
        pb.SyncCrmRecordsRequest(records=records[i : i + 2000]) for i in range(0, len(records), 2000)
    )
    with contextlib.suppress(grpc.FutureTimeoutError):
        future.result(timeout=2.0)
    assert not future.done(), "the sync must still be running for this test to mean anything"
    future.cancel()
    # The next write queues behind the abandoned stream and is answered once it is rolled back.
    after = sync(server.stub, [record("hotel", "after-cancel", **OLIVER)])
    assert after.created == 1
    found = resolve(server.stub, ("crm:bulk", "C-0"), ("crm:bulk", "C-29999"), ("crm:hotel", "after-cancel"))
    assert [r.found for r in found] == [False, False, True]

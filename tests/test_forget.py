"""Forget: an operator erases a person (GDPR), through the real server and its DuckDB file."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import duckdb
import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer
from tests._signals import batch, ident, resolve, signal
from tests.test_customer_sync import KATHARINE, KATHERINE, changes, record, sync

COOKIE = ("cookie", "c-0f1e2d3c-forget-me")
EMAIL = ("email", "katherine.smithson@example.org")
CRM = ("crm:hotel", "HOTEL-4711")
IP = "203.0.113.77"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) ForgetMeBrowser/9.9"
KEPT = ("cookie", "c-someone-else")


def _seen(*ids: tuple[str, str], ip: str = IP, agent: str = AGENT) -> pb.Signal:
    message = signal(*ids)
    message.context.ip = ip
    message.context.user_agent = agent
    message.context.geo.country = "AU"
    message.context.geo.city = "Glebe"
    return message


def forget(stub: object, **selector: object) -> pb.ForgetResponse:
    response: pb.ForgetResponse = stub.Forget(pb.ForgetRequest(**selector))  # type: ignore[attr-defined]
    return response


def _tell_the_story(stub: object) -> None:
    """The person to forget (cookie, email, hotel record) and someone else to keep."""
    stub.Ingest(batch(_seen(COOKIE, EMAIL), _seen(COOKIE)))  # type: ignore[attr-defined]
    stub.Ingest(batch(_seen(KEPT, ip="198.51.100.9", agent="Other/1.0")))  # type: ignore[attr-defined]
    sync(stub, [record("hotel", CRM[1], email=EMAIL[1], **KATHERINE)])


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    return raised.value.code()  # type: ignore[attr-defined,no-any-return]


def _dump(path: Path) -> dict[str, str]:
    """Every table of the store as text, read-only (the server has stopped)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: str(con.execute(f'SELECT * FROM "{t}"').fetchall()).lower() for t in tables}
    finally:
        con.close()


def test_a_forgotten_person_is_gone_from_memory_the_feed_and_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "data"
    first = ThreadServer(data)
    try:
        stub = first.stub
        _tell_the_story(stub)
        person = stub.GetPerson(pb.GetPersonRequest(identifier=ident(*COOKIE))).person
        email_hash = next(i.value for i in person.identifiers if i.namespace == "email")
        assert {i.namespace for i in person.identifiers} == {"cookie", "email", "crm:hotel"}
        [kept] = resolve(stub, KEPT)

        erased = forget(stub, identifier=ident(*COOKIE))
        assert erased.person_id == person.person_id
        assert erased.identifiers_erased == 3
        assert erased.customer_records_erased == 1
        assert erased.events_erased == 3  # two signals and the customer record's

        assert resolve(stub, COOKIE, EMAIL, CRM, KEPT) == ["", "", "", kept]
        assert code_of(lambda: stub.GetPerson(pb.GetPersonRequest(person_id=person.person_id))) == (
            grpc.StatusCode.NOT_FOUND
        )
        assert code_of(lambda: forget(stub, person_id=person.person_id)) == grpc.StatusCode.NOT_FOUND, "twice"
        log = changes(stub)
        assert log[-1].kind == pb.CHANGE_KIND_PERSON_ERASED
        assert log[-1].person_id == person.person_id and not log[-1].HasField("identifier")
        assert not [c for c in log if c.identifier.value in (COOKIE[1], email_hash, CRM[1])]

        # The id is never reused: the next new person gets a new one.
        created = stub.Ingest(batch(signal(("cookie", "c-new-after-forget")))).results[0]
        assert created.person_created and created.person_id != person.person_id
    finally:
        first.stop()

    second = ThreadServer(data)
    try:
        assert resolve(second.stub, COOKIE, EMAIL, CRM, KEPT) == ["", "", "", kept]
        assert code_of(lambda: second.stub.GetPerson(pb.GetPersonRequest(person_id=person.person_id))) == (
            grpc.StatusCode.NOT_FOUND
        )
        again = second.stub.Ingest(batch(signal(("cookie", "c-new-after-restart")))).results[0]
        assert again.person_created and again.person_id not in (person.person_id, created.person_id)
    finally:
        second.stop()

    tables = _dump(data / "idstitch.duckdb")
    for table, text in tables.items():
        for secret in (COOKIE[1], email_hash, EMAIL[1], CRM[1], "smithson", "harbour", "1984-03-12", IP, AGENT):
            assert secret.lower() not in text, f"{secret} still in {table}"
    assert "person_erased" in tables["changes"]
    assert "198.51.100.9" in tables["events"], "someone else's signals stay"
    logged = caplog.text.lower()
    for secret in (COOKIE[1], EMAIL[1], CRM[1], "smithson"):
        assert secret.lower() not in logged


def _compact(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "compact", "--data-dir", str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compaction_leaves_no_bytes_of_a_forgotten_person_and_keeps_everyone_else(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ThreadServer(data)
    try:
        stub = server.stub
        _tell_the_story(stub)
        [kept] = resolve(stub, KEPT)
        forget(stub, identifier=ident(*COOKIE))
        log_before = changes(stub)

        refused = _compact(data)
        assert refused.returncode == 1, "the running server owns the file"
        assert "stop the server" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        server.stop()

    # DuckDB frees the deleted rows' blocks without overwriting them: these are still there.
    lingering = (COOKIE[1], CRM[1], IP)
    raw = (data / "idstitch.duckdb").read_bytes().lower()
    assert all(value.lower().encode() in raw for value in lingering)
    (data / "idstitch.duckdb").chmod(0o600)
    done = _compact(data)
    assert done.returncode == 0, done.stderr
    assert (data / "idstitch.duckdb").stat().st_mode & 0o777 == 0o600
    assert "compacted" in done.stdout and "1 identifiers" in done.stdout
    assert not list(data.glob("*compacting*"))
    raw = (data / "idstitch.duckdb").read_bytes().lower()
    for value in (*lingering, "smithson", "harbour", "1984-03-12"):
        assert value.lower().encode() not in raw, f"{value} still in the file's bytes"

    again = ThreadServer(data)
    try:
        stub = again.stub
        assert resolve(stub, KEPT, COOKIE) == [kept, ""]
        assert [(c.sequence, c.kind) for c in changes(stub)] == [(c.sequence, c.kind) for c in log_before]
        # Keys and constraints came through: replacing rows and erasing still work.
        stub.Ingest(batch(_seen(KEPT, ("cookie", "c-after-compaction"), ip="198.51.100.9", agent="Other/1.0")))
        assert resolve(stub, ("cookie", "c-after-compaction")) == [kept]
        assert forget(stub, person_id=kept).identifiers_erased == 2
    finally:
        again.stop()


def test_compaction_of_a_missing_store_says_so(tmp_path: Path) -> None:
    missing = _compact(tmp_path / "nowhere")
    assert missing.returncode == 1
    assert "no store at" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "nowhere").exists()


def test_a_soft_linked_component_is_unlinked_but_kept(server: ThreadServer) -> None:
    sync(server.stub, [record("hotel", "H-S1", **KATHERINE), record("shop", "S-S1", **KATHARINE)])
    hotel, shop = resolve(server.stub, ("crm:hotel", "H-S1"), ("crm:shop", "S-S1"))
    assert hotel == shop, "the customer model linked them softly"

    forget(server.stub, identifier=ident("crm:hotel", "H-S1"))

    hotel, shop = resolve(server.stub, ("crm:hotel", "H-S1"), ("crm:shop", "S-S1"))
    assert hotel == "" and shop != ""
    kept = server.stub.GetPerson(pb.GetPersonRequest(identifier=ident("crm:shop", "S-S1"))).person
    assert kept.person_id == shop and not kept.soft_links
    unlinked = [c for c in changes(server.stub) if c.kind == pb.CHANGE_KIND_SOFT_UNLINKED]
    assert len(unlinked) == 1 and unlinked[0].detail == "person erased"


def test_forgetting_the_soft_linked_member_keeps_the_person_it_was_linked_to(server: ThreadServer) -> None:
    sync(server.stub, [record("hotel", "H-S2", **KATHERINE), record("shop", "S-S2", **KATHARINE)])
    hotel, shop = resolve(server.stub, ("crm:hotel", "H-S2"), ("crm:shop", "S-S2"))
    assert hotel == shop
    erased = forget(server.stub, identifier=ident("crm:shop", "S-S2"))
    assert erased.identifiers_erased == 1 and erased.customer_records_erased == 1
    assert resolve(server.stub, ("crm:hotel", "H-S2"), ("crm:shop", "S-S2")) == [hotel, ""]


def test_an_alias_finds_the_person_and_is_gone_afterwards(server: ThreadServer) -> None:
    a = server.stub.Ingest(batch(signal(("cookie", "alias-a")))).results[0].person_id
    b = server.stub.Ingest(batch(signal(("cookie", "alias-b")))).results[0].person_id
    server.stub.Ingest(batch(signal(("cookie", "alias-a"), ("cookie", "alias-b"))))
    survivor, alias = sorted((a, b), key=lambda p: int(p.removeprefix("p_")))
    assert forget(server.stub, person_id=alias).person_id == survivor
    for gone in (survivor, alias):
        assert code_of(lambda g=gone: server.stub.GetPerson(pb.GetPersonRequest(person_id=g))) == (
            grpc.StatusCode.NOT_FOUND
        )
    assert resolve(server.stub, ("cookie", "alias-a"), ("cookie", "alias-b")) == ["", ""]


def test_unknown_persons_and_bad_requests(server: ThreadServer) -> None:
    assert code_of(lambda: forget(server.stub, person_id="p_424242")) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: forget(server.stub, identifier=ident("cookie", "never-seen"))) == (grpc.StatusCode.NOT_FOUND)
    assert code_of(lambda: forget(server.stub)) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as raised:
        forget(server.stub, person_id="someone")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "person_id" in str(raised.value.details())

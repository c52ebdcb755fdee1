"""Erasure that stays erased, and the audit log, through the real server and its DuckDB file.

After Forget, keyed hashes of the erased identifiers and of the person's event ids are kept: an
at-least-once pipeline that redelivers the person's events, or a new event of its cookie,
stores and links nothing. LiftSuppression lets identifiers in again (fresh consent); the old
event ids stay refused.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path

import duckdb

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer
from tests._signals import batch, ident, resolve, signal
from tests.test_forget import _compact, _dump

COOKIE = ("cookie", "c-erased-7a1b")
LOGIN = ("login", "erased-user-41")
EMAIL = ("email", "erased.person@example.org")
OTHER = ("cookie", "c-someone-else-2")


def _history() -> list[pb.Signal]:
    events = [
        signal(COOKIE, event_id="erase-1"),
        signal(COOKIE, LOGIN, event_id="erase-2"),
        signal(LOGIN, EMAIL, event_id="erase-3"),
        signal(COOKIE, event_id="erase-4"),
    ]
    for event in events:
        event.context.ip = "203.0.113.99"
        event.context.user_agent = "ErasedBrowser/1.0"
    return events


def test_redelivered_and_new_events_of_an_erased_person_store_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ThreadServer(data)
    try:
        stub = first.stub
        stub.Ingest(batch(*_history()))
        stub.Ingest(batch(signal(OTHER, event_id="other-1")))
        erased = stub.Forget(pb.ForgetRequest(identifier=ident(*LOGIN)))
        assert erased.events_erased == 4

        redelivered = stub.Ingest(batch(*_history())).results
        assert [r.suppressed for r in redelivered] == [True] * 4
        assert all(r.person_id == "" for r in redelivered)
        fresh = stub.Ingest(batch(signal(COOKIE, ("cookie", "c-brand-new"), event_id="erase-5"))).results[0]
        assert fresh.suppressed, "a new event of the erased cookie is refused too"
        assert resolve(stub, COOKIE, LOGIN, EMAIL, ("cookie", "c-brand-new")) == ["", "", "", ""]
        assert resolve(stub, OTHER)[0] != ""
        assert not stub.Ingest(batch(signal(OTHER, event_id="other-2"))).results[0].suppressed
    finally:
        first.stop()

    second = ThreadServer(data)
    try:
        again = second.stub.Ingest(batch(*_history())).results
        assert [r.suppressed for r in again] == [True] * 4, "the suppression list survives a restart"
        assert resolve(second.stub, COOKIE, LOGIN, EMAIL) == ["", "", ""]
    finally:
        second.stop()

    tables = _dump(data / "idstitch.duckdb")
    for secret in (COOKIE[1], LOGIN[1], EMAIL[1], "c-brand-new", "erase-1", "erase-5", "203.0.113.99"):
        for table, text in tables.items():
            assert secret not in text, f"{secret} in {table}"
    con = duckdb.connect(str(data / "idstitch.duckdb"), read_only=True)
    try:
        kinds = dict(con.execute("SELECT kind, count(*) FROM suppressed GROUP BY kind").fetchall())
    finally:
        con.close()
    assert kinds == {"identifier": 3, "event": 4}


def test_lifting_a_suppression_lets_the_identifier_in_but_not_the_old_events(tmp_path: Path) -> None:
    running = ThreadServer(tmp_path / "data")
    try:
        stub = running.stub
        stub.Ingest(batch(*_history()))
        stub.Forget(pb.ForgetRequest(identifier=ident(*COOKIE)))

        lifted = stub.LiftSuppression(pb.LiftSuppressionRequest(identifiers=[ident(*COOKIE), ident(*OTHER)]))
        assert lifted.lifted == 1, "only the cookie was suppressed"

        back = stub.Ingest(batch(signal(COOKIE, event_id="consent-1"))).results[0]
        assert not back.suppressed and back.person_created
        old = stub.Ingest(batch(signal(COOKIE, event_id="erase-1"))).results[0]
        assert old.suppressed, "an erased event id stays refused"
        still = stub.Ingest(batch(signal(LOGIN, event_id="consent-2"))).results[0]
        assert still.suppressed, "identifiers not lifted stay suppressed"
    finally:
        running.stop()


def test_the_audit_log_says_who_erased_lifted_and_read_the_feed(tmp_path: Path) -> None:
    running = ThreadServer(tmp_path / "data")
    try:
        stub = running.stub
        stub.Ingest(batch(*_history()))
        erased = stub.Forget(pb.ForgetRequest(identifier=ident(*COOKIE)))
        stub.LiftSuppression(pb.LiftSuppressionRequest(identifiers=[ident(*COOKIE)]))
        list(stub.WatchChanges(pb.WatchChangesRequest(after_sequence=3, stop_at_end=True)))

        entries = list(stub.ListAudit(pb.ListAuditRequest()).entries)
        assert [e.action for e in entries] == ["forget", "lift_suppression", "watch_changes"]
        assert [e.sequence for e in entries] == [1, 2, 3]
        assert all(e.principal and e.time.seconds > 0 for e in entries)
        assert entries[0].subject == f"person {erased.person_id.removeprefix('p_')}"
        assert entries[1].subject == "1 of 1 identifiers"
        assert entries[2].subject == "after sequence 3"
        for entry in entries:
            text = f"{entry.subject} {entry.detail} {entry.principal}"
            assert COOKIE[1] not in text and LOGIN[1] not in text, "no personal values"
        assert [e.action for e in stub.ListAudit(pb.ListAuditRequest(after_sequence=2)).entries] == ["watch_changes"]
    finally:
        running.stop()


def test_compaction_is_audited_and_keeps_the_log_and_idstitch_audit_prints_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ThreadServer(data)
    try:
        first.stub.Ingest(batch(*_history()))
        first.stub.Forget(pb.ForgetRequest(identifier=ident(*COOKIE)))
    finally:
        first.stop()
    compacted = _compact(data)
    assert compacted.returncode == 0, compacted.stderr

    second = ThreadServer(data)
    try:
        entries = list(second.stub.ListAudit(pb.ListAuditRequest()).entries)
        assert [e.action for e in entries] == ["forget", "compaction"]
        assert entries[0].principal.startswith("token:")
        assert entries[1].principal == f"local:{getpass.getuser()}"
        assert second.stub.Ingest(batch(*_history())).results[0].suppressed, "suppression survives compaction"

        printed = subprocess.run(
            [sys.executable, "-m", "cli", "audit", "--target", second.target, "--data-dir", str(data)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert printed.returncode == 0, printed.stderr
        lines = printed.stdout.splitlines()
        assert len(lines) == 2 and "forget" in lines[0] and "compaction" in lines[1]
        assert COOKIE[1] not in printed.stdout
    finally:
        second.stop()

    refused = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "--target", "127.0.0.1:1", "--token-file", str(tmp_path / "none")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--token-file" in refused.stderr


def test_a_shared_family_tablet_is_erased_with_its_last_person_but_not_refused_for_the_others(
    tmp_path: Path,
) -> None:
    running = ThreadServer(tmp_path / "data")
    try:
        stub = running.stub
        stub.Ingest(batch(signal(("login", "anna"), ("device", "anna-phone"))))
        stub.Ingest(batch(signal(("login", "ben"), ("device", "ben-phone"))))
        stub.Ingest(batch(signal(("device", "tablet"), ("login", "anna"))))
        stub.Ingest(batch(signal(("device", "tablet"), ("login", "ben"))))  # shared, with Ben now
        stub.Forget(pb.ForgetRequest(identifier=ident("login", "ben")))

        assert resolve(stub, ("device", "tablet"), ("device", "ben-phone")) == ["", ""]
        again = stub.Ingest(batch(signal(("device", "tablet"), ("login", "anna")))).results[0]
        assert not again.suppressed, "Anna still uses the family tablet"
        assert resolve(stub, ("device", "tablet")) == resolve(stub, ("login", "anna"))
        assert stub.Ingest(batch(signal(("device", "ben-phone")))).results[0].suppressed
    finally:
        running.stop()

"""`idstitch import`: reading files, locating bad rows, streaming, the watch folder; then the real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pytest

import cli
from cli import _import as importing
from cli._import import import_file
from cli._import_files import FileReadError, _nth_not_in, open_customer_file
from cli._import_report import FileReport
from cli._watch import Stability, Watcher
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer

HEADER = "source_system,source_key,given_name,family_name,date_of_birth,address,postcode,city,email,phone"


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def _keys(path: Path) -> list[str]:
    table = open_customer_file(path)
    try:
        return [row[1] for rows in table.rows(2) for row in rows]
    finally:
        table.close()


# -- reading files -------------------------------------------------------------------------------


BROKEN = (
    b"source_key,given_name,date_of_birth,extra\n"  # 1
    b"k1,Anna,1990-01-01,x\n"  # 2
    b'k2,"Bo\nBerg",1991-02-02,y\n'  # 3-4: a value spanning two lines is one row
    b"\n"  # 5: blank, skipped
    b"k3,Carl,1992-03-03,z,too,many\n"  # 6
    b"k4,Dora,1993-04-04\n"  # 7: a column short
    b'k5,"Eva",1994-05-05,w\n'  # 8
    b"k6,F\xffnn,1995-06-06,v\n"  # 9: not UTF-8
    b'k7,"Gus ""G""",1996-07-07,u\n'  # 10: escaped quotes are fine
    b'k8,"Hal"x,1997-08-08,t\n'  # 11: text after a closing quote
    b"k9,Ida,1998-09-09,s\n"  # 12
)


def test_csv_broken_lines_are_reported_by_line_and_the_good_rows_keep_their_lines(tmp_path: Path) -> None:
    table = open_customer_file(_write(tmp_path / "hotel.csv", BROKEN))
    assert table.columns == ("source_key", "given_name", "date_of_birth")
    assert table.ignored == ("extra",)
    rows = [row for batch in table.rows(3) for row in batch]
    assert [(r[1], r[2]) for r in rows] == [
        ("k1", "Anna"),
        ("k2", "Bo\nBerg"),
        ("k5", "Eva"),
        ("k7", 'Gus "G"'),
        ("k9", "Ida"),
    ]
    assert [table.locate(i).where for i in range(len(rows))] == ["2", "3", "8", "10", "12"]
    unreadable = [(i.where, i.field, i.message) for i in table.unreadable()]
    assert unreadable == [
        ("6", "row", "too many columns: expected 4, found 6"),
        ("7", "extra", "too few columns: expected 4, found 3"),
        ("9", "given_name", "not valid UTF-8"),
        ("11", "given_name", "badly quoted value (a quote not closed, or text after a closing quote)"),
    ]
    for issue in table.unreadable():  # personal values never appear in a message
        assert not any(name in issue.message for name in ("Carl", "Dora", "Hal", "1992", "nn"))
    table.close()


def test_unclosed_quote_costs_the_rest_of_the_file_but_not_the_rows_before(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.csv", 'source_key,given_name\nk1,Anna\nk2,"Bo\nk3,Carl\n')
    table = open_customer_file(path)
    assert [r[1] for batch in table.rows(10) for r in batch] == ["k1"]
    assert [i.where for i in table.unreadable()] == ["3"]
    table.close()


def test_header_picks_the_delimiter_and_matches_names_loosely(tmp_path: Path) -> None:
    path = _write(tmp_path / "shop.csv", "Source_Key; Given_Name ;city\ns1;Anna;Köln\n")
    table = open_customer_file(path)
    assert table.columns == ("source_key", "given_name", "city")
    [[row]] = list(table.rows(10))
    assert (row[1], row[2], row[7]) == ("s1", "Anna", "Köln")
    table.close()


def test_cells_are_text_exactly_as_written(tmp_path: Path) -> None:
    # No type inference: leading zeros and odd dates reach the server as written.
    path = _write(tmp_path / "a.csv", "source_key,postcode,date_of_birth,phone\n007,01067,12/03/1990,+49 30 1234\n")
    [[row]] = list(open_customer_file(path).rows(10))
    assert (row[1], row[6], row[4], row[9]) == ("007", "01067", "12/03/1990", "+49 30 1234")


def test_gzip_csv_is_read(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"source_key,given_name\nk1,Anna\nk2,Bo\n"))
    assert _keys(path) == ["k1", "k2"]


def test_parquet_rows_are_text_and_located_by_row_number(tmp_path: Path) -> None:
    path = tmp_path / "loyalty.parquet"
    duckdb.sql(
        "COPY (SELECT 'loyalty' AS source_system, 'L' || i AS source_key, DATE '1990-01-01' + i::INT AS date_of_birth,"
        " TIMESTAMP '2026-01-01 10:00:00' AS updated_at, i AS points FROM range(5) t(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    table = open_customer_file(path)
    assert table.ignored == ("points",) and table.approx_rows == 5
    rows = [row for batch in table.rows(2) for row in batch]
    assert [(r[1], r[4], r[11]) for r in rows][:2] == [
        ("L0", "1990-01-01", "2026-01-01 10:00:00"),
        ("L1", "1990-01-02", "2026-01-01 10:00:00"),
    ]
    assert table.locate(3).where == "row 4"
    table.close()


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", "", "empty file"),
        ("notes.txt", "source_key\n", "not a .csv"),
        ("broken.parquet", "not parquet at all", "[Pp]arquet"),
    ],
)
def test_unreadable_files_are_file_level_errors(tmp_path: Path, name: str, content: str | None, error: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(FileReadError, match=error):
        open_customer_file(path)


def test_nth_data_record_skips_blank_and_rejected_records() -> None:
    assert [_nth_not_in(i, []) for i in range(3)] == [2, 3, 4]
    assert [_nth_not_in(i, [3, 4, 7]) for i in range(4)] == [2, 5, 6, 8]
    assert _nth_not_in(0, [2, 3]) == 4


# -- streaming, with a fake server ------------------------------------------------------------------


class FakeCall:
    """Records what a client-streaming call receives; answers like the server would, or fails."""

    def __init__(self, reject: Callable[[pb.CustomerRecord], str | None], fail_after: int | None = None) -> None:
        self.records: list[pb.CustomerRecord] = []
        self.cancelled = False
        self.half_closed = False
        self._reject = reject
        self._fail_after = fail_after

    async def write(self, message: pb.SyncCrmRecordsRequest) -> None:
        if self._fail_after is not None and len(self.records) >= self._fail_after:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection reset"
            )
        self.records.extend(message.records)

    async def done_writing(self) -> None:
        self.half_closed = True

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def __await__(self) -> Any:
        return self._answer().__await__()

    async def _answer(self) -> pb.SyncCrmRecordsResponse:
        response = pb.SyncCrmRecordsResponse(received=len(self.records))
        for index, record in enumerate(self.records):
            field = self._reject(record)
            if field:
                response.errors.add(index=index, field=field, message="invalid")
        response.rejected = len(response.errors)
        response.created = response.received - response.rejected
        return response


class FakeStub:
    def __init__(self, call: FakeCall) -> None:
        self.call = call

    def SyncCrmRecords(self) -> FakeCall:
        return self.call


def _import(stub: Any, path: Path, **options: Any) -> FileReport:
    return asyncio.run(import_file(stub, path, **options))


def test_server_errors_and_local_ones_map_back_to_file_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "crm.csv",
        "source_key,given_name,date_of_birth,updated_at\n"
        "k1,Anna,1990-01-01,2026-01-01T10:00:00Z\n"
        "k2,Bo,yesterday,\n"  # 3: the fake server rejects the date
        "k3,Carl,1992-03-03,last tuesday\n"  # 4: updated_at is checked here, never sent
        "k4,Dora\n"  # 5: unreadable
        'k5,"Eva\nLang",1994-05-05,\n'  # 6-7
        "k6,Finn,bad,2026-01-01\n",  # 8: rejected by the fake server
    )
    call = FakeCall(lambda r: "date_of_birth" if not r.date_of_birth[:1].isdigit() else None)
    report = _import(FakeStub(call), path, system="crm", chunk=2)
    assert [r.source_key for r in call.records] == ["k1", "k2", "k5", "k6"]
    assert {r.source_system for r in call.records} == {"crm"}
    assert call.records[0].updated_at.ToSeconds() == 1767261600
    assert report.issue_lines() == [
        f"{path}:3: date_of_birth: invalid",
        f"{path}:4: updated_at: not an ISO 8601 timestamp (e.g. 2026-05-01T12:00:00Z)",
        f"{path}:5: date_of_birth: too few columns: expected 4, found 2",
        f"{path}:8: date_of_birth: invalid",
    ]
    assert (report.received, report.created, report.rejected) == (6, 2, 4)
    assert report.imported and call.half_closed and not call.cancelled


def test_a_failure_mid_file_cancels_the_call_so_nothing_is_applied(tmp_path: Path) -> None:
    rows = "".join(f"k{i},Name{i}\n" for i in range(50))
    path = _write(tmp_path / "a.csv", "source_key,given_name\n" + rows)
    call = FakeCall(lambda r: None, fail_after=20)
    report = _import(FakeStub(call), path, system="crm", chunk=10)
    assert call.cancelled and not call.half_closed
    assert not report.imported and report.transient
    assert report.error is not None and "server unavailable" in report.error


def test_a_file_without_source_system_needs_system(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.csv", "source_key,given_name\nk1,Anna\n")
    report = _import(FakeStub(FakeCall(lambda r: None)), path)
    assert report.error == "no source_system column; name the system with --system"


def test_large_message_is_split_under_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "_MAX_MESSAGE_BYTES", 1_000)
    path = _write(tmp_path / "a.csv", "source_key,address\n" + "".join(f"k{i},{'x' * 200}\n" for i in range(40)))
    sizes: list[int] = []

    class Sizing(FakeCall):
        async def write(self, message: pb.SyncCrmRecordsRequest) -> None:
            sizes.append(message.ByteSize())
            await super().write(message)

    call = Sizing(lambda r: None)
    report = _import(FakeStub(call), path, system="crm", chunk=40)
    assert report.created == 40 and len(sizes) > 1 and max(sizes) <= 1_000


# -- the watch folder, with a fake importer ----------------------------------------------------------


def test_stability_needs_two_equal_polls() -> None:
    stability = Stability()
    assert stability.ready({"a.csv": (10, 1)}) == []
    assert stability.ready({"a.csv": (20, 2), "b.csv": (5, 1)}) == []  # a still growing
    assert stability.ready({"a.csv": (20, 2), "b.csv": (5, 1)}) == ["b.csv", "a.csv"]  # oldest first


class FakeImporter:
    def __init__(self, outcome: Callable[[Path], FileReport] | None = None) -> None:
        self.seen: list[str] = []
        self._outcome = outcome or (lambda path: FileReport(path, received=1, created=1))

    async def __call__(self, path: Path) -> FileReport:
        self.seen.append(path.name)
        return self._outcome(path)


def _watcher(inbox: Path, importer: FakeImporter) -> tuple[Watcher, list[str]]:
    said: list[str] = []
    return Watcher(inbox, importer, interval=0.01, say=said.append), said


def _polls(watcher: Watcher, n: int) -> list[FileReport]:
    async def go() -> list[FileReport]:
        return [report for _ in range(n) for report in await watcher.poll_once()]

    return asyncio.run(go())


def test_watch_imports_a_dropped_file_once_when_it_stopped_growing(tmp_path: Path) -> None:
    importer = FakeImporter()
    watcher, _ = _watcher(tmp_path, importer)
    dropped = _write(tmp_path / "bookings.csv", "source_key\n")
    (tmp_path / "readme.txt").write_text("not for import")
    (tmp_path / ".partial.csv").write_text("being copied")
    assert _polls(watcher, 1) == []  # seen once: could still be growing
    with open(dropped, "a") as f:
        f.write("k1\n")
    assert _polls(watcher, 1) == []  # changed since
    assert len(_polls(watcher, 3)) == 1
    assert importer.seen == ["bookings.csv"]
    assert not dropped.exists() and (tmp_path / "imported" / "bookings.csv").read_text() == "source_key\nk1\n"
    assert (tmp_path / "readme.txt").exists() and (tmp_path / ".partial.csv").exists()


def test_watch_moves_unreadable_files_to_failed_with_the_errors_beside(tmp_path: Path) -> None:
    importer = FakeImporter(lambda path: FileReport(path, error="no source_key column in the header"))
    watcher, _ = _watcher(tmp_path, importer)
    _write(tmp_path / "bad.csv", "x\n")
    _polls(watcher, 2)
    assert (tmp_path / "failed" / "bad.csv").exists()
    assert "no source_key column" in (tmp_path / "failed" / "bad.csv.errors.txt").read_text()


def test_watch_keeps_the_file_while_the_server_is_down(tmp_path: Path) -> None:
    down = True

    def outcome(path: Path) -> FileReport:
        if down:
            return FileReport(path, error="server unavailable", transient=True)
        return FileReport(path, received=1, created=1)

    importer = FakeImporter(outcome)
    watcher, said = _watcher(tmp_path, importer)
    _write(tmp_path / "a.csv", "source_key\nk1\n")
    _polls(watcher, 4)
    assert (tmp_path / "a.csv").exists() and importer.seen == ["a.csv"] * 3
    assert sum("will retry" in s for s in said) == 1
    down = False
    _polls(watcher, 1)
    assert (tmp_path / "imported" / "a.csv").exists()


def test_watch_does_not_resend_a_file_already_imported_under_that_name(tmp_path: Path) -> None:
    importer = FakeImporter()
    watcher, said = _watcher(tmp_path, importer)
    _write(tmp_path / "a.csv", "source_key\nk1\n")
    _polls(watcher, 2)
    _write(tmp_path / "a.csv", "source_key\nk1\n")  # the same export dropped again
    _polls(watcher, 2)
    assert importer.seen == ["a.csv"]
    assert any("already imported" in s for s in said)
    _write(tmp_path / "a.csv", "source_key\nk2\n")  # same name, new content: imported, kept apart
    _polls(watcher, 2)
    assert importer.seen == ["a.csv", "a.csv"]
    assert len(list((tmp_path / "imported").glob("a*.csv"))) == 2


# -- against the real server -----------------------------------------------------------------------


CUSTOMERS = (
    HEADER + ",updated_at,loyalty_tier\n"
    "hotel,h1,Anna,Schmidt,1990-04-12,12 harbour street,20095,Hamburg,anna.schmidt@example.org,+4940123456,"
    "2026-01-01T10:00:00Z,gold\n"
    "hotel,h2,Ben,Meyer,1985-13-40,1 main street,10115,Berlin,ben.meyer@example.org,,,\n"  # 3: no such date
    "hotel,h3,Carl,Wolf,1970-01-01,2 main street,10115,Berlin\n"  # 4: columns missing
    ',h4,Dora,Klein,1991-02-03,"3 main street, rear",10115,Berlin,dora.klein@example.org,,,\n'  # 5: no system
    "hotel,h5,Eva,Lang,1992-03-04,4 main street,10115,Berlin,eva.lang@example.org,+4930999999,,silver\n"
)
PERSONAL = ("Anna", "Schmidt", "Ben", "Meyer", "Carl", "Dora", "Klein", "example.org", "1985-13-40", "+4930")


def _resolve(server: ThreadServer, system: str, key: str) -> str:
    answer = server.stub.Resolve(pb.ResolveRequest(identifiers=[pb.Identifier(namespace=f"crm:{system}", value=key)]))
    return str(answer.resolutions[0].person_id)


def test_bad_rows_are_reported_by_line_and_field_and_the_good_ones_imported(
    server: ThreadServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "hotel.csv", CUSTOMERS)
    assert cli.main(["import", str(path), "--target", server.target, "--data-dir", str(server.data_dir)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}:3: date_of_birth: " in err
    assert f"{path}:4: " in err and "too few columns" in err
    assert f"{path}:5: source_system: " in err
    assert "ignoring columns not in the record: loyalty_tier" in err
    assert f"{path}: 5 rows: 2 created, 0 updated, 0 unchanged, 3 rejected" in out
    assert not any(value in out + err.replace(str(path), "") for value in PERSONAL)
    assert _resolve(server, "hotel", "h1") and _resolve(server, "hotel", "h5")
    assert not _resolve(server, "hotel", "h2")


def test_the_same_file_twice_changes_nothing_the_second_time(server: ThreadServer, tmp_path: Path) -> None:
    path = _write(tmp_path / "hotel.csv", CUSTOMERS)
    first = _import_real(server, path)
    person = _resolve(server, "hotel", "h1")
    second = _import_real(server, path)
    assert first.created == 2
    assert (second.created, second.updated) == (0, 0)
    assert second.unchanged == second.received - second.rejected == 2
    assert _resolve(server, "hotel", "h1") == person


def test_parquet_import_and_update_of_a_known_key(server: ThreadServer, tmp_path: Path) -> None:
    path = tmp_path / "shop.parquet"
    duckdb.sql(
        "COPY (SELECT 'shop' AS source_system, 's' || i AS source_key, 'Name' || i AS given_name,"
        " 'Family' AS family_name, DATE '1980-01-01' + i::INT AS date_of_birth, i || ' main street' AS address"
        " FROM range(300) t(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    first = _import_real(server, path, chunk=128)
    assert (first.received, first.created, first.rejected) == (300, 300, 0)
    changed = tmp_path / "shop-2.parquet"
    duckdb.sql(
        "COPY (SELECT 'shop' AS source_system, 's1' AS source_key, 'Name1' AS given_name, 'Family' AS family_name,"
        f" DATE '1980-01-02' AS date_of_birth, '99 new street' AS address) TO '{changed}' (FORMAT parquet)"
    )
    second = _import_real(server, changed)
    assert (second.created, second.updated, second.unchanged) == (0, 1, 0)


def test_watch_mode_imports_a_dropped_file_once_and_moves_it(server: ThreadServer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async def go() -> list[FileReport]:
        async with server.connection.aio_channel() as channel:
            stub = _aio_stub(channel)
            watcher = Watcher(inbox, lambda p: import_file(stub, p), interval=0.01, say=lambda s: None)
            _write(inbox / "hotel.csv", CUSTOMERS)
            reports = [r for _ in range(3) for r in await watcher.poll_once()]
            _write(inbox / "hotel.csv", CUSTOMERS)  # dropped again: not sent
            reports += [r for _ in range(3) for r in await watcher.poll_once()]
            return reports

    [report] = asyncio.run(go())
    assert (report.created, report.rejected) == (2, 3)
    assert (inbox / "imported" / "hotel.csv").exists() and not (inbox / "hotel.csv").exists()
    assert f"{inbox / 'hotel.csv'}:3: date_of_birth" in (inbox / "imported" / "hotel.csv.errors.txt").read_text()


def test_cli_reports_missing_files_and_no_server_without_a_trace(
    server: ThreadServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _write(tmp_path / "good.csv", CUSTOMERS)
    assert (
        cli.main(
            [
                "import",
                str(tmp_path / "nope.csv"),
                str(good),
                "--target",
                server.target,
                "--data-dir",
                str(server.data_dir),
            ]
        )
        == 1
    )
    out, err = capsys.readouterr()
    assert "nope.csv: not imported: no such file" in err and "good.csv: 5 rows" in out
    assert (
        cli.main(
            ["import", str(good), "--target", server.target, "--data-dir", str(server.data_dir), "--fail-on-rejects"]
        )
        == 3
    )

    assert (
        cli.main(["import", str(good), "--target", server.target, "--data-dir", str(server.data_dir), "--progress"])
        == 0
    )
    _, err = capsys.readouterr()
    assert "rows sent" in err and "rows/s" in err  # on stderr; stdout stays the summary alone

    monkeypatch.setattr(importing, "_CONNECT_TIMEOUT", 0.3)
    assert (
        cli.main(["import", str(good), "--target", f"127.0.0.1:{_free_port()}", "--data-dir", str(server.data_dir)])
        == 1
    )
    _, err = capsys.readouterr()
    assert "no idstitch server at" in err and "Traceback" not in err
    assert cli.main(["import", "--target", server.target, "--data-dir", str(server.data_dir)]) == 2


def _aio_stub(channel: grpc.aio.Channel) -> Any:
    from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

    return pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]


def _import_real(server: ThreadServer, path: Path, **options: Any) -> FileReport:
    async def go() -> FileReport:
        async with server.connection.aio_channel() as channel:
            return await import_file(_aio_stub(channel), path, **options)

    report = asyncio.run(go())
    assert report.imported, report.error
    return report


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""`idstitch import`: customer-record files streamed to SyncCrmRecords, one stream per file.

One file is one stream, and the server applies a stream's valid records in one transaction
when it ends, so a file is applied whole or not at all: on any failure while sending (a read
error half-way, the server going away, Ctrl-C) the call is cancelled, never half-closed, and
the server applies nothing of it. Re-sending a file changes nothing (`unchanged`).

Exit status, for scripts: 0 when every file was imported, rejected rows included (they are
printed as warnings); 1 when a file could not be read or sent (nothing of that file was
applied); 3 with `--fail-on-rejects` when rows were rejected; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import ConnectError, Connection
from ._connect import add_arguments as add_connect_arguments
from ._import_files import CustomerFile, FileReadError, Issue, open_customer_file
from ._import_report import FileReport

DEFAULT_CHUNK = 5_000
# Messages stay well under the server's limit (max_message_bytes, 4 MiB by default) however
# long the rows are; 5,000 typical rows are about 0.75 MiB, so splitting is rare.
_MAX_MESSAGE_BYTES = 1 << 20
# Messages listed per file on the terminal; the rest are counted.
_MAX_LISTED = 1_000
_CONNECT_TIMEOUT = 5.0

EXIT_OK, EXIT_FAILED, EXIT_REJECTS, EXIT_INTERRUPTED = 0, 1, 3, 130


class Progress:
    """Rows sent of a file, on stderr: redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self._out = out
        self._enabled = enabled
        self._tty = out.isatty()
        self._label = ""
        self._total = 0
        self._sent = 0
        self._start = 0.0
        self._drawn = 0.0
        self.applying = False  # all rows sent: a stop now may come after the server applied them

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._sent = label, total, 0
        self.applying = False
        self._start = self._drawn = time.monotonic()

    def advance(self, rows: int) -> None:
        self._sent += rows
        now = time.monotonic()
        if self._enabled and now - self._drawn >= (0.25 if self._tty else 5.0):
            self._drawn = now
            self._draw(now, "")

    def waiting(self) -> None:
        self.applying = True
        if self._enabled:
            self._draw(time.monotonic(), "; the server is applying them")

    def finish(self) -> None:
        if self._enabled and self._tty and self._sent:
            self._out.write("\r\x1b[K")
            self._out.flush()

    def _draw(self, now: float, tail: str) -> None:
        rate = self._sent / max(now - self._start, 1e-9)
        # The CSV total is a line count: a value spanning lines makes it an estimate.
        of = f" of ~{self._total:,}" if self._total else ""
        text = f"{self._label}: {self._sent:,}{of} rows sent, {rate:,.0f} rows/s{tail}"
        if self._tty:
            self._out.write(f"\r\x1b[K{text}")
        else:
            self._out.write(text + "\n")
        self._out.flush()


async def import_file(
    stub: pb_grpc.IdentityServiceStub,
    path: Path,
    *,
    system: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> FileReport:
    """Send one file as one SyncCrmRecords stream and report it; never raises for a bad file or server."""
    report = FileReport(path)
    try:
        table = open_customer_file(path)
    except FileReadError as exc:
        report.error = str(exc)
        return report
    try:
        report.ignored_columns = table.ignored
        missing = _missing_columns(table, system)
        if missing:
            report.error = missing
            return report
        await _send(stub, table, report, system, chunk, progress or Progress(sys.stderr, enabled=False))
    finally:
        table.close()
    return report


def _missing_columns(table: CustomerFile, system: str | None) -> str | None:
    if "source_key" not in table.columns:
        return "no source_key column in the header"
    if "source_system" not in table.columns and not system:
        return "no source_system column; name the system with --system"
    return None


async def _send(
    stub: pb_grpc.IdentityServiceStub,
    table: CustomerFile,
    report: FileReport,
    system: str | None,
    chunk: int,
    progress: Progress,
) -> None:
    local: list[tuple[int, str]] = []  # (row of the file, message), located once the read is done
    held_back: list[int] = []  # rows of the file (from 0) not sent because they failed here
    read = 0
    call = stub.SyncCrmRecords()
    progress.start(str(table.path), table.approx_rows)
    try:
        for rows in table.rows(chunk):
            message = pb.SyncCrmRecordsRequest()
            add = message.records.add
            for (
                source_system,
                source_key,
                given_name,
                family_name,
                date_of_birth,
                address,
                postcode,
                city,
                email,
                phone,
                document_id,
                updated_at,
            ) in rows:
                stamp = updated_at.strip()
                when = _timestamp(stamp) if stamp else None
                if stamp and when is None:
                    held_back.append(read)
                    local.append((read, "not an ISO 8601 timestamp (e.g. 2026-05-01T12:00:00Z)"))
                    read += 1
                    continue
                # Keyword construction in C (records.add) keeps a million rows in seconds.
                record = add(
                    source_system=source_system or system or "",
                    source_key=source_key,
                    given_name=given_name,
                    family_name=family_name,
                    date_of_birth=date_of_birth,
                    address=address,
                    postcode=postcode,
                    city=city,
                    email=email,
                    phone=phone,
                    document_id=document_id,
                )
                if when is not None:
                    record.updated_at.FromDatetime(when)
                read += 1
            for part in _split(message):
                await call.write(part)
            progress.advance(len(rows))
        await call.done_writing()
        progress.waiting()
        response: pb.SyncCrmRecordsResponse = await call
    except FileReadError as exc:
        call.cancel()
        report.error = f"read failed after {read} rows, nothing applied: {exc}"
        return
    except grpc.aio.AioRpcError as exc:
        call.cancel()
        report.error, report.transient = _rpc_message(exc)
        return
    except BaseException:
        # Cancelled (Ctrl-C, SIGTERM, a stopping watcher): the server must see a cancelled
        # call, not a finished one, or it would apply the rows sent so far.
        call.cancel()
        raise
    finally:
        progress.finish()

    # Located only now: a CSV row's line depends on the broken lines DuckDB reports at the end.
    unreadable = table.unreadable()
    local_issues = []
    for position, problem in local:
        where = table.locate(position)
        local_issues.append(Issue(where.order, where.where, "updated_at", problem))
    server_issues = []
    for error in response.errors:
        where = table.locate(_file_row(int(error.index), held_back))
        server_issues.append(Issue(where.order, where.where, error.field or "record", error.message))
    report.issues = sorted([*unreadable, *local_issues, *server_issues])
    report.unlisted = max(int(response.rejected) - len(response.errors), 0)
    report.received = int(response.received) + len(unreadable) + len(local)
    report.created = int(response.created)
    report.updated = int(response.updated)
    report.unchanged = int(response.unchanged)
    report.rejected = int(response.rejected) + len(unreadable) + len(local)
    report.linked = int(response.linked_probabilistically)


def _timestamp(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time without a zone is taken as UTC, like the server's own clock.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _split(message: pb.SyncCrmRecordsRequest) -> list[pb.SyncCrmRecordsRequest]:
    """`message`, halved until each part is under the size limit (only long rows make it split)."""
    if len(message.records) <= 1 or message.ByteSize() <= _MAX_MESSAGE_BYTES:
        return [message]
    half = len(message.records) // 2
    first, second = pb.SyncCrmRecordsRequest(), pb.SyncCrmRecordsRequest()
    first.records.extend(message.records[:half])
    second.records.extend(message.records[half:])
    return [*_split(first), *_split(second)]


def _file_row(index: int, held_back: Sequence[int]) -> int:
    """The row of the file (from 0) that was record `index` of the stream, given the rows not sent."""
    row = index
    while True:
        shifted = index + bisect.bisect_right(held_back, row)
        if shifted == row:
            return row
        row = shifted


def _rpc_message(exc: grpc.aio.AioRpcError) -> tuple[str, bool]:
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"server unavailable ({details}); nothing of this file was applied", True
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # Not the file's fault: a watcher keeps it for when the token is fixed.
        return f"server refused the token ({code.name}: {details}); nothing of this file was applied", True
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "this server does not support SyncCrmRecords (an older version?)", False
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"server refused a message as too large ({details}); try a smaller --chunk", False
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the server did not answer in time; nothing of this file was applied", True
    name = code.name if code is not None else "UNKNOWN"
    return f"server refused the file ({name}: {details}); nothing of it was applied", False


# -- the command ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help=".csv, .csv.gz or .parquet files")
    parser.add_argument("--system", help="source system for rows without a source_system value")
    add_connect_arguments(parser)  # --target, --data-dir, --token-file, --tls-*
    parser.add_argument("--watch", type=Path, metavar="DIR", help="import files dropped into DIR, until stopped")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls of --watch DIR")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="rows read and sent at a time")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show rows sent on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--fail-on-rejects", action="store_true", help="exit 3 when any row was rejected")


def run(args: argparse.Namespace) -> int:
    if bool(args.files) == (args.watch is not None):
        print("idstitch import: give FILE arguments or --watch DIR (not both)", file=sys.stderr)
        return 2
    if args.chunk < 1 or args.interval <= 0:
        print("idstitch import: --chunk and --interval must be positive", file=sys.stderr)
        return 2
    if args.watch is not None and not args.watch.is_dir():
        print(f"idstitch import: no folder {args.watch}", file=sys.stderr)
        return 2
    try:
        connection = Connection.from_args(args)
    except ConnectError as exc:
        print(f"idstitch import: {exc}", file=sys.stderr)
        return 2
    progress = Progress(sys.stderr, enabled=sys.stderr.isatty() if args.progress is None else args.progress)
    try:
        return asyncio.run(_main(args, connection, progress))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if args.watch is not None:
            # Stopping is how a watcher ends; a file caught mid-send stays in the folder for next time.
            print(f"\nidstitch import: stopped watching {args.watch}", file=sys.stderr)
            return EXIT_OK
        if progress.applying:
            print(
                "\nidstitch import: stopped; the server may have applied the last file (sending it again is a no-op)",
                file=sys.stderr,
            )
        else:
            print("\nidstitch import: stopped; the file being sent was not applied", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"idstitch import: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _main(args: argparse.Namespace, connection: Connection, progress: Progress) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        # SIGTERM stops like Ctrl-C: the current call is cancelled, so nothing is half-applied.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    # A watcher outlives server restarts: reconnect within seconds, not gRPC's default two minutes.
    options = [("grpc.initial_reconnect_backoff_ms", 1_000), ("grpc.max_reconnect_backoff_ms", 10_000)]
    async with connection.aio_channel(options) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        if args.watch is not None:
            from ._watch import Watcher

            async def send(path: Path) -> FileReport:
                return await import_file(stub, path, system=args.system, chunk=args.chunk, progress=progress)

            watcher = Watcher(args.watch, send, interval=args.interval, say=_say)
            await watcher.run()
            return EXIT_OK
        try:
            await asyncio.wait_for(channel.channel_ready(), _CONNECT_TIMEOUT)
        except TimeoutError:
            print(f"idstitch import: no idstitch server at {args.target}", file=sys.stderr)
            return EXIT_FAILED
        status = EXIT_OK
        for path in args.files:
            report = await import_file(stub, path, system=args.system, chunk=args.chunk, progress=progress)
            show(report)
            if not report.imported:
                status = EXIT_FAILED
            elif report.rejected and args.fail_on_rejects and status == EXIT_OK:
                status = EXIT_REJECTS
        return status


def show(report: FileReport) -> None:
    if report.ignored_columns:
        _warn(f"{report.path}: ignoring columns not in the record: {', '.join(report.ignored_columns)}")
    for line in report.issue_lines(_MAX_LISTED):
        _warn(line)
    if report.imported:
        _say(report.summary())
    else:
        _warn(report.summary())


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

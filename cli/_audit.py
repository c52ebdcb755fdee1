"""`idstitch audit`: print a running server's audit log (an admin call, ListAudit)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import ConnectError, Connection
from ._connect import add_arguments as add_connect_arguments

_PAGE = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connect_arguments(parser)
    parser.add_argument("--after", type=int, default=0, help="entries after this sequence (default: all)")


def run_audit(args: argparse.Namespace) -> int:
    if args.after < 0:
        print("idstitch: --after must not be negative", file=sys.stderr)
        return 2
    try:
        connection = Connection.from_args(args)
    except ConnectError as exc:
        print(f"idstitch audit: {exc}", file=sys.stderr)
        return 2
    channel = connection.channel()
    try:
        stub = pb_grpc.IdentityServiceStub(channel)
        cursor, shown = args.after, 0
        while True:
            try:
                page = stub.ListAudit(pb.ListAuditRequest(after_sequence=cursor, limit=_PAGE), timeout=30).entries
            except grpc.RpcError as exc:
                print(f"idstitch audit: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
            for entry in page:
                print(format_entry(entry))
                cursor = entry.sequence
            shown += len(page)
            if len(page) < _PAGE:
                break
        if not shown:
            print("no audit entries" + (f" after {args.after}" if args.after else ""), file=sys.stderr)
        return 0
    finally:
        channel.close()


def format_entry(entry: pb.AuditEntry) -> str:
    when = datetime.fromtimestamp(entry.time.seconds + entry.time.nanos / 1e9, UTC)
    parts = [f"{entry.sequence:>6}", when.strftime("%Y-%m-%dT%H:%M:%SZ"), entry.principal, entry.action]
    parts += [part for part in (entry.subject, entry.detail) if part]
    return "  ".join(parts)

"""`idstitch relink`: a batch relink of a running server's anonymous visitors (an admin call)."""

from __future__ import annotations

import argparse
import sys

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import ConnectError, Connection
from ._connect import add_arguments as add_connect_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connect_arguments(parser)


def run_relink(args: argparse.Namespace) -> int:
    try:
        connection = Connection.from_args(args)
    except ConnectError as exc:
        print(f"idstitch relink: {exc}", file=sys.stderr)
        return 2
    last: pb.RelinkProgress | None = None
    with connection.channel() as channel:
        stub = pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            for update in stub.Relink(pb.RelinkRequest()):
                last = update
                if not update.done:
                    share = update.scored / update.total if update.total else 1.0
                    print(f"\rrelinking: {update.scored:,} of {update.total:,} visitors ({share:.0%})", end="",
                          file=sys.stderr, flush=True)  # fmt: skip
        except grpc.RpcError as exc:
            print(f"\nidstitch relink: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(file=sys.stderr)
    if last is None or not last.done:
        print("idstitch relink: the server ended the relink early", file=sys.stderr)
        return 1
    print(
        f"relinked {last.scored:,} anonymous visitors: {last.made:,} links made, {last.dropped:,} dropped, "
        f"{last.moved:,} moved to another person, {last.kept:,} kept"
    )
    return 0

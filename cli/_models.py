"""`idstitch model promote | rollback`: change a running server's visitor model (admin calls)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import ConnectError, Connection
from ._connect import add_arguments as add_connect_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="model_action", required=True)
    promote = actions.add_parser(
        "promote", help="put a trained visitor model in force on the running server, without a restart"
    )
    promote.add_argument("model", type=Path, help="the model JSON (visitor-model.json from `idstitch train`)")
    promote.add_argument(
        "--metrics", type=Path, help="its metrics file (default: visitor-model.metrics.json beside it, if there)"
    )
    add_connect_arguments(promote)
    rollback = actions.add_parser("rollback", help="put back the model the last promote or rollback replaced")
    add_connect_arguments(rollback)


def run_model(args: argparse.Namespace) -> int:
    try:
        connection = Connection.from_args(args)
        request: pb.PromoteModelRequest | pb.RollbackModelRequest
        if args.model_action == "promote":
            metrics = args.metrics or args.model.with_name("visitor-model.metrics.json")
            request = pb.PromoteModelRequest(
                model_json=args.model.read_bytes(),
                metrics_json=metrics.read_bytes() if args.metrics or metrics.is_file() else b"",
            )
        else:
            request = pb.RollbackModelRequest()
    except (ConnectError, OSError) as exc:
        print(f"idstitch model: {exc}", file=sys.stderr)
        return 2
    with connection.channel() as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        try:
            if isinstance(request, pb.PromoteModelRequest):
                changed = stub.PromoteModel(request, timeout=600)
            else:
                changed = stub.RollbackModel(request, timeout=600)
        except grpc.RpcError as exc:
            print(f"idstitch model {args.model_action}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(f"model {changed.version} in force (was {changed.previous_version})")
    return 0

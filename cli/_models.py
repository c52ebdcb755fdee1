"""`idstitch model list | add | promote | rollback | shadow`: the model registry and model
changes of a running server (admin calls), and the shadow of a candidate model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import ConnectError, Connection
from ._connect import add_arguments as add_connect_arguments
from ._shadow import add_arguments as add_shadow_arguments
from ._shadow import run_shadow_command

_STATES = {
    pb.MODEL_STATE_PROPOSED: "proposed",
    pb.MODEL_STATE_IN_FORCE: "in force",
    pb.MODEL_STATE_RETIRED: "retired",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="model_action", required=True)
    listing = actions.add_parser("list", help="every model ever proposed or in force, with its held-out figures")
    add_connect_arguments(listing)
    add = actions.add_parser("add", help="add a trained visitor model to the registry as proposed, not in force")
    _add_files(add)
    add_connect_arguments(add)
    promote = actions.add_parser(
        "promote", help="put a visitor model in force on the running server, without a restart"
    )
    promote.add_argument(
        "model", type=Path, nargs="?", help="the model JSON (visitor-model.json from `idstitch train`)"
    )
    promote.add_argument("--metrics", type=Path, help="its metrics file (default: the one beside it, if there)")
    promote.add_argument("--version", help="instead of a file: the version of a model in the registry")
    add_connect_arguments(promote)
    rollback = actions.add_parser("rollback", help="put back the model the last promote or rollback replaced")
    add_connect_arguments(rollback)
    shadow = actions.add_parser(
        "shadow", help="what a candidate model would link and drop on the live history, beside the one in force"
    )
    add_shadow_arguments(shadow)
    add_connect_arguments(shadow)


def _add_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the model JSON (visitor-model.json from `idstitch train`)")
    parser.add_argument("--metrics", type=Path, help="its metrics file (default: the one beside it, if there)")


def _files(model: Path, metrics: Path | None) -> tuple[bytes, bytes]:
    beside = metrics or model.with_name(model.name.removesuffix(".json") + ".metrics.json")
    return model.read_bytes(), beside.read_bytes() if metrics or beside.is_file() else b""


_MODEL_CHANGE_TIMEOUT = 4 * 3600.0


def run_model(args: argparse.Namespace) -> int:
    action = args.model_action
    if action == "shadow":
        return run_shadow_command(args)
    if action == "promote" and (args.model is None) == (args.version is None):
        print("idstitch model promote: give a model file or --version, not both", file=sys.stderr)
        return 2
    try:
        connection = Connection.from_args(args)
        files = _files(args.model, args.metrics) if action in ("add", "promote") and args.model else (b"", b"")
    except (ConnectError, OSError) as exc:
        print(f"idstitch model: {exc}", file=sys.stderr)
        return 2
    with connection.channel() as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        try:
            if action == "list":
                _print_models(stub.ListModels(pb.ListModelsRequest(), timeout=60).models)
                return 0
            if action == "add":
                entry = stub.AddModel(pb.AddModelRequest(model_json=files[0], metrics_json=files[1]), timeout=120)
                print(f"model {entry.version} in the registry: {_STATES.get(entry.state, 'unknown')}")
                return 0
            # The swap takes seconds; the relink after it scales with the anonymous visitors.
            print(f"idstitch model {action}: swapping the model, then relinking every visitor", file=sys.stderr)
            if action == "promote":
                request = pb.PromoteModelRequest(model_json=files[0], metrics_json=files[1], version=args.version or "")
                call = stub.PromoteModel.future(request, timeout=_MODEL_CHANGE_TIMEOUT)
            else:
                call = stub.RollbackModel.future(pb.RollbackModelRequest(), timeout=_MODEL_CHANGE_TIMEOUT)
            changed = _waiting(call, f"idstitch model {action}")
        except grpc.RpcError as exc:
            print(f"idstitch model {action}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    r = changed.relinked
    print(f"model {changed.version} in force (was {changed.previous_version})")
    print(f"relinked {r.scored} visitors: {r.made} links made, {r.dropped} dropped, {r.moved} moved, {r.kept} kept")
    return 0


def _waiting(call: Any, label: str) -> pb.ModelChangeResponse:
    """The call's answer; meanwhile, on a terminal, how long it has taken (the relink after a
    swap takes a while on a large graph, and the call says nothing until it is done)."""
    began = time.monotonic()
    shown = False
    try:
        while True:
            try:
                return call.result(timeout=1.0)  # type: ignore[no-any-return]
            except grpc.FutureTimeoutError:
                if sys.stderr.isatty():
                    print(f"\r{label}: {time.monotonic() - began:.0f} s", end="", file=sys.stderr, flush=True)
                    shown = True
    finally:
        if shown:
            print(file=sys.stderr)


def _print_models(models: list[pb.ModelEntry]) -> None:
    print(f"{'version':<14} {'state':<9} {'threshold':>9} {'precision':>9} {'recall':>7}  added (UTC)           by")
    for m in models:
        added = m.added_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        figures = (
            f"{m.threshold:>9.3g} {m.held_out_precision:>9.3f} {m.held_out_recall:>7.3f}"
            if m.threshold
            else f"{'-':>9} {'-':>9} {'-':>7}"
        )
        print(f"{m.version:<14} {_STATES.get(m.state, 'unknown'):<9} {figures}  {added}   {m.added_by}")

"""`idstitch model shadow`: what a candidate visitor model would change, on the live history."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from server import ConfigError, load_settings
from server._models import PromotedModels

from ._connect import ConnectError, Connection
from ._snapshot import ask_for_snapshot, write_scratch_secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the candidate model JSON (visitor-model.json from `idstitch train`)")
    parser.add_argument(
        "--current",
        type=Path,
        help="the model to compare with (default: the one promoted in DATA_DIR, else the bundled one)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--snapshot", type=Path, help="a snapshot directory a running server wrote")
    source.add_argument("--signals", type=Path, help="simulated signals to replay instead of a history")
    parser.add_argument("--out", type=Path, default=Path("var/shadow"), help="where shadow.json and shadow.html go")
    parser.add_argument("--config", type=Path, help="the server's TOML configuration (namespaces)")
    parser.add_argument("--keep-snapshot", action="store_true", help="keep the snapshot asked for (default: delete)")


def run_shadow_command(args: argparse.Namespace) -> int:
    import linkage
    from training import run_shadow

    current = args.current or PromotedModels(args.data_dir).in_force() or linkage.BUNDLED_MODEL
    for path in (args.model, current):
        if not path.is_file():
            print(f"idstitch model shadow: no model file at {path}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="idstitch-shadow-") as scratch:
        data_dir = args.data_dir
        if args.signals is not None:
            data_dir = Path(scratch)  # a scratch secret: replayed signals are hashed afresh
            write_scratch_secret(data_dir)
        try:
            settings = load_settings(args.config, data_dir=data_dir)
        except ConfigError as exc:
            print(f"idstitch model shadow: configuration error: {exc}", file=sys.stderr)
            return 2
        shadow_args = {"candidate": args.model, "current": current, "out_dir": args.out}
        try:
            if args.signals is not None or args.snapshot is not None:
                run_shadow(settings.linkage, **shadow_args, signals=args.signals, snapshot=args.snapshot)
                return 0
            store = settings.server.database
            if not store.exists():
                print(f"idstitch model shadow: no store at {store}", file=sys.stderr)
                return 2
            try:
                run_shadow(settings.linkage, **shadow_args, store_path=store)
            except linkage.StoreLocked:
                print(
                    f"idstitch: {args.data_dir} is in use by a running server; asking it for a snapshot ...",
                    file=sys.stderr,
                )
                snapshot = ask_for_snapshot(Connection.from_args(args))
                try:
                    run_shadow(settings.linkage, **shadow_args, snapshot=snapshot)
                finally:
                    if not args.keep_snapshot:
                        shutil.rmtree(snapshot, ignore_errors=True)
        except (ValueError, OSError, RuntimeError, ConnectError, linkage.LinkageError) as exc:
            print(f"idstitch model shadow: {exc}", file=sys.stderr)
            return 1
    return 0

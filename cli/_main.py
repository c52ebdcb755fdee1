"""The `idstitch` command line: the one entry point, at the edge."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from linkage import ModelError
from server import ConfigError, load_server_config, load_settings

from ._audit import add_arguments as add_audit_arguments
from ._connect import ConnectError, Connection, read_token
from ._connect import add_arguments as add_connect_arguments
from ._models import add_arguments as add_model_arguments
from ._relink import add_arguments as add_relink_arguments
from ._snapshot import ask_for_snapshot, write_scratch_secret
from ._tokens import add_arguments as add_token_arguments


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _run(args)


def build_parser() -> argparse.ArgumentParser:
    """The `idstitch` argument parser: every subcommand and option (the docs test reads it)."""
    parser = argparse.ArgumentParser(prog="idstitch", description="Identity resolution and stitching service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC service")
    serve.add_argument("--config", type=Path, help="TOML configuration file (see README)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, help="where the DuckDB file and hash secret live (default ./var)")
    serve.add_argument("--model", type=Path, dest="model_path", help="visitor model JSON (default: the bundled one)")
    serve.add_argument(
        "--customer-model", type=Path, dest="customer_model_path", help="customer model JSON (default: the bundled one)"
    )
    serve.add_argument("--no-model", action="store_true", help="stitch deterministically only: no model at all")
    serve.add_argument("--no-customer-model", action="store_true", help="match customer records by exact keys only")
    serve.add_argument("--bench-noop", action="store_true", default=None, help=argparse.SUPPRESS)
    serve.add_argument("--log-level", default="INFO")

    compact = sub.add_parser(
        "compact",
        help="rewrite a stopped server's DuckDB file so that erased persons leave no bytes behind",
        description="DuckDB frees the blocks of deleted rows without overwriting them: after Forget, run this "
        "with the server stopped to rewrite the file (the original is replaced only once the copy is complete).",
    )
    compact.add_argument("--config", type=Path, help="the server's TOML configuration (for its data_dir)")
    compact.add_argument("--data-dir", type=Path, help="the data directory (default ./var)")

    demo = sub.add_parser("demo", help="send a small story of signals to a running server and print the result")
    add_connect_arguments(demo)

    imports = sub.add_parser(
        "import",
        help="send customer-record files (CSV, Parquet) to a running server, or watch a folder for them",
        description="Each file is one SyncCrmRecords stream, applied in one transaction. Exit status: 0 imported "
        "(rejected rows are warnings), 1 a file could not be read or sent, 3 rows rejected with --fail-on-rejects.",
    )
    from ._import import add_arguments as add_import_arguments

    add_import_arguments(imports)

    audit = sub.add_parser(
        "audit",
        help="print a running server's audit log: who erased, lifted an erasure, compacted or read the feed",
    )
    add_audit_arguments(audit)

    models = sub.add_parser("model", help="the model registry of a running server: list, add, promote, roll back")
    add_model_arguments(models)

    relink = sub.add_parser(
        "relink", help="score a running server's anonymous visitors again with the whole history (batch relink)"
    )
    add_relink_arguments(relink)

    tokens = sub.add_parser(
        "token",
        help="add, list or revoke the bearer tokens of a data directory",
        description="Tokens grant scopes (ingest, resolve, read, changes, admin); clients send them as "
        "'authorization: Bearer <token>'. See docs/security.md.",
    )
    add_token_arguments(tokens)

    simulate = sub.add_parser("simulate", help="generate simulated traffic, with the true person of each signal")
    simulate.add_argument("--persons", type=int, default=20_000)
    simulate.add_argument("--days", type=int, default=30)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--out", type=Path, required=True, help="JSON lines file (.jsonl or .jsonl.gz)")

    train = sub.add_parser("train", help="train a linkage model with Splink and write model, metrics and report")
    train.add_argument(
        "--model",
        choices=("visitor", "customer"),
        default="visitor",
        help="visitor (default; from --signals or --data-dir) or customer (from --records)",
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--signals", type=Path, help="simulated signals (from `idstitch simulate`) to train on")
    source.add_argument(
        "--data-dir",
        type=Path,
        help="a server's data directory to train on: read directly when the server is stopped, else from a "
        "snapshot the running server writes (asked for at --target with the data directory's admin token)",
    )
    source.add_argument("--snapshot", type=Path, help="a snapshot directory a running server wrote, to train on")
    source.add_argument(
        "--records", type=Path, nargs="+", metavar="FILE", help="customer-record CSV or Parquet files (import format)"
    )
    train.add_argument(
        "--threshold",
        type=float,
        help="match probability to link at (customer model: default 0.9; visitor model: default chosen on "
        "held-out links, the best F1 at precision >= 0.97)",
    )
    train.add_argument("--out", type=Path, default=Path("var/models"), help="where model, metrics and report go")
    train.add_argument("--config", type=Path, help="the server's TOML configuration (namespaces, secret)")
    train.add_argument("--no-report", action="store_true", help="skip the HTML report")
    train.add_argument("--target", default="127.0.0.1:50051", help="the running server to ask for a snapshot")
    train.add_argument("--token-file", type=Path, help="admin token for the snapshot (default DATA_DIR/admin-token)")
    train.add_argument("--tls-ca-file", type=Path, help="connect with TLS, verifying the server by this CA")
    train.add_argument("--keep-snapshot", action="store_true", help="keep the snapshot asked for (default: delete)")
    train.add_argument(
        "--m-from",
        choices=("labels", "em"),
        default="labels",
        help="estimate m from the devices of training logins (default) or by EM over blocking passes",
    )
    train.add_argument(
        "--user-agent-tf",
        action="store_true",
        help="term-frequency adjust the 'same user agent, in turn' levels on the full string",
    )
    train.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="visitor model: where Splink estimates u and m, DuckDB in this process (default) or Spark",
    )
    train.add_argument(
        "--spark-master", default="local[2]", help="with --engine spark: Spark's master URL (default local[2])"
    )
    train.add_argument(
        "--rare-user-agent",
        action="store_true",
        help="a level of its own for the same rare user-agent string (sent by under 1 in 1,000 profiles)",
    )
    train.add_argument(
        "--no-home-and-agent",
        dest="home_and_agent",
        action="store_false",
        help="without the place level for the same home and user-agent string, one in use after the other",
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            settings = load_settings(
                args.config,
                host=args.host,
                port=args.port,
                data_dir=args.data_dir,
                bench_noop=args.bench_noop,
                model_path=args.model_path,
                customer_model_path=args.customer_model_path,
            )
            if args.no_model:
                settings = replace(settings, server=replace(settings.server, model_path=None))
            if args.no_model or args.no_customer_model:
                settings = replace(settings, server=replace(settings.server, customer_model_path=None))
        except ConfigError as exc:
            print(f"idstitch: configuration error: {exc}", file=sys.stderr)
            return 2
        from server import serve as run

        try:
            asyncio.run(run(settings))
        except ConfigError as exc:  # found on start: TLS files, tokens, the loopback rule
            print(f"idstitch: configuration error: {exc}", file=sys.stderr)
            return 2
        except (OSError, RuntimeError, ModelError) as exc:
            print(f"idstitch: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "simulate":
        from training import SimulationConfig, run_simulate

        run_simulate(SimulationConfig(persons=args.persons, days=args.days, seed=args.seed), args.out)
        return 0
    if args.command == "train":
        return _train(args)
    if args.command == "import":
        from ._import import run as run_import

        return run_import(args)
    if args.command == "compact":
        return _compact(args)
    if args.command == "demo":
        from ._demo import run_demo

        try:
            connection = Connection.from_args(args)
        except ConnectError as exc:
            print(f"idstitch demo: {exc}", file=sys.stderr)
            return 2
        return run_demo(connection)
    if args.command == "model":
        from ._models import run_model

        return run_model(args)
    if args.command == "relink":
        from ._relink import run_relink

        return run_relink(args)
    if args.command == "audit":
        from ._audit import run_audit

        return run_audit(args)
    if args.command == "token":
        from ._tokens import run as run_tokens

        return run_tokens(args)
    return 2


def _compact(args: argparse.Namespace) -> int:
    from linkage import StoreLocked, compact_store

    try:
        database = load_server_config(args.config, data_dir=args.data_dir).database
        done = compact_store(database, principal=f"local:{getpass.getuser()}")
    except ConfigError as exc:
        print(f"idstitch: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreLocked as exc:
        print(f"idstitch: {exc}\nidstitch: stop the server that owns {database.parent} first", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:
        print(f"idstitch: {exc}", file=sys.stderr)
        return 1
    kept = ", ".join(f"{rows:,} {table}" for table, rows in done.rows.items() if table != "meta")
    print(f"compacted {done.path}: {done.bytes_before / 2**20:.1f} MiB -> {done.bytes_after / 2**20:.1f} MiB ({kept})")
    return 0


def _train(args: argparse.Namespace) -> int:
    logging.basicConfig(level="WARNING")
    if args.model == "customer":
        return _train_customer(args)
    if args.records is not None:
        print("idstitch: --records trains the customer model: add --model customer", file=sys.stderr)
        return 2
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        print("idstitch: --threshold must be a probability between 0 and 1", file=sys.stderr)
        return 2
    if args.data_dir is not None:
        return _train_in(args, args.data_dir)
    # Signals are replayed into a scratch store, so they get a scratch data directory (and
    # hash secret) rather than creating ./var as a side effect; so does a snapshot, whose keys
    # are stored keys already.
    with tempfile.TemporaryDirectory(prefix="idstitch-train-") as scratch:
        write_scratch_secret(Path(scratch))
        return _train_in(args, Path(scratch))


def _train_in(args: argparse.Namespace, data_dir: Path) -> int:
    try:
        settings = load_settings(args.config, data_dir=data_dir)
    except ConfigError as exc:
        print(f"idstitch: configuration error: {exc}", file=sys.stderr)
        return 2
    from linkage import StoreLocked
    from training import SparkConfig, TrainConfig, run_train

    store_path = settings.server.database if args.data_dir is not None else None
    if store_path is not None and not store_path.exists():
        print(f"idstitch: no store at {store_path}", file=sys.stderr)
        return 2
    if args.engine == "spark":  # before any gRPC channel (the snapshot's): see start_spark_first
        from ._relink import start_spark_first

        try:
            start_spark_first(args.spark_master)
        except RuntimeError as exc:
            print(f"idstitch train: {exc}", file=sys.stderr)
            return 1
    config = TrainConfig(
        out_dir=args.out,
        report=not args.no_report,
        m_estimation=args.m_from,
        user_agent_tf=args.user_agent_tf,
        rare_user_agent=args.rare_user_agent,
        home_and_agent=args.home_and_agent,
        threshold=args.threshold,
        engine=args.engine,
        spark=SparkConfig(master=args.spark_master),
    )
    try:
        try:
            run_train(settings.linkage, config, signals=args.signals, store_path=store_path, snapshot=args.snapshot)
        except StoreLocked:
            # The server is running: it writes a snapshot, and training reads that instead.
            print(f"idstitch: {data_dir} is in use by a running server; asking it for a snapshot ...", file=sys.stderr)
            ca = args.tls_ca_file.read_bytes() if args.tls_ca_file is not None else None
            token = read_token(args.token_file, data_dir)
            snapshot = ask_for_snapshot(Connection(args.target, token, ca is not None, ca))
            try:
                run_train(settings.linkage, config, snapshot=snapshot)
            finally:
                if not args.keep_snapshot:
                    shutil.rmtree(snapshot, ignore_errors=True)
    except (ValueError, OSError, RuntimeError, ConnectError) as exc:
        print(f"idstitch: {exc}", file=sys.stderr)
        return 1
    return 0


def _train_customer(args: argparse.Namespace) -> int:
    if args.records is None:
        print("idstitch: --model customer trains on --records FILE [FILE ...]", file=sys.stderr)
        return 2
    from training import CustomerRecordsError, CustomerTrainConfig, run_train_customer

    try:
        config = CustomerTrainConfig(out_dir=args.out, report=not args.no_report)
        if args.threshold is not None:
            config = replace(config, threshold=args.threshold)
    except ValueError as exc:
        print(f"idstitch: {exc}", file=sys.stderr)
        return 2
    try:
        run_train_customer(args.records, config)
    except CustomerRecordsError as exc:
        print(f"idstitch: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"idstitch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`idstitch relink`: a batch relink of a running server's anonymous visitors (an admin call).

`--engine online` (default) has the server score every visitor with its online scorer and
blocking. `--engine duckdb` or `spark` asks the server for a snapshot of its visitor profiles,
scores them here with Splink's `predict` on that backend, and sends the pairs back
(`RelinkScored`): the server decides them by the same rules.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import ConnectError, Connection
from ._connect import add_arguments as add_connect_arguments

_PAIRS_PER_MESSAGE = 100_000  # about 2 MB a message, under gRPC's 4 MB default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("online", "duckdb", "spark"),
        default="online",
        help="who scores: the server's online scorer (default), or Splink predict on DuckDB or on Spark",
    )
    parser.add_argument(
        "--spark-master", default="local[2]", help="with --engine spark: Spark's master URL (default local[2])"
    )
    parser.add_argument(
        "--keep-snapshot", action="store_true", help="with --engine duckdb|spark: keep the profiles snapshot"
    )
    add_connect_arguments(parser)


def run_relink(args: argparse.Namespace) -> int:
    try:
        connection = Connection.from_args(args)
    except ConnectError as exc:
        print(f"idstitch relink: {exc}", file=sys.stderr)
        return 2
    if args.engine == "spark":
        try:
            start_spark_first(args.spark_master)
        except RuntimeError as exc:
            print(f"idstitch relink: {exc}", file=sys.stderr)
            return 1
    with connection.channel() as channel:
        stub = pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            last = _online(stub) if args.engine == "online" else _by_splink(stub, args)
        except grpc.RpcError as exc:
            print(f"\nidstitch relink: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        except RuntimeError as exc:  # Spark could not start, or Splink failed
            print(f"\nidstitch relink: {exc}", file=sys.stderr)
            return 1
    if last is None or not last.done:
        print("idstitch relink: the server ended the relink early", file=sys.stderr)
        return 1
    print(
        f"relinked {last.scored:,} anonymous visitors: {last.made:,} links made, {last.dropped:,} dropped, "
        f"{last.moved:,} moved to another person, {last.kept:,} kept"
    )
    return 0


def _online(stub: pb_grpc.IdentityServiceStub) -> pb.RelinkProgress | None:
    last = None
    for update in stub.Relink(pb.RelinkRequest()):
        last = update
        if not update.done:
            share = update.scored / update.total if update.total else 1.0
            print(f"\rrelinking: {update.scored:,} of {update.total:,} visitors ({share:.0%})", end="",
                  file=sys.stderr, flush=True)  # fmt: skip
    print(file=sys.stderr)
    return last


def _by_splink(stub: pb_grpc.IdentityServiceStub, args: argparse.Namespace) -> pb.RelinkProgress:
    from training import SparkConfig, score_profiles

    written = stub.WriteSnapshot(pb.WriteSnapshotRequest(visitor_profiles_only=True), timeout=600)
    if not written.visitor_model_version:
        raise RuntimeError("the server has no visitor model in force: nothing to relink")
    directory = Path(written.directory)
    _say(f"snapshot of {written.visitor_profiles:,} visitor profiles in {directory}")
    try:
        scored = score_profiles(
            directory / "visitor-profiles.parquet",
            written.visitor_model_json,
            engine=args.engine,
            spark=SparkConfig(master=args.spark_master),
            progress=_say,
        )
    except Exception as exc:
        raise RuntimeError(f"Splink on {args.engine} failed: {exc}") from exc
    finally:
        if not args.keep_snapshot:
            shutil.rmtree(directory, ignore_errors=True)
    _say(f"{len(scored.left):,} pairs scored in {scored.seconds:.1f} s; the server decides them ...")
    version = written.visitor_model_version

    def messages() -> Iterator[pb.ScoredPairs]:
        for start in range(0, max(len(scored.left), 1), _PAIRS_PER_MESSAGE):
            end = start + _PAIRS_PER_MESSAGE
            yield pb.ScoredPairs(
                left=scored.left[start:end].tolist(), right=scored.right[start:end].tolist(),
                match_weight=scored.match_weight[start:end].tolist(), model_version=version,
            )  # fmt: skip

    result: pb.RelinkProgress = stub.RelinkScored(messages(), timeout=3600)
    return result


def _say(message: str) -> None:
    print(f"idstitch relink: {message}", file=sys.stderr, flush=True)


def start_spark_first(master: str) -> None:
    """Start the Spark session before any gRPC channel: pyspark forks its JVM with a
    `preexec_fn`, which is not safe once gRPC's threads run (the JVM then dies at start, now
    and then). Later `spark_session` calls get this session."""
    from training import SparkConfig, spark_session

    _say(f"starting Spark ({master}) ...")
    spark_session(SparkConfig(master=master))

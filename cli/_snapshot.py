"""What `train` and `model shadow` share: a snapshot asked of the running server, and a
private scratch hash secret for replaying signals."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import Connection


def ask_for_snapshot(connection: Connection) -> Path:
    """Ask the running server that owns a store for a snapshot of its history (`WriteSnapshot`)."""
    with connection.channel() as channel:
        try:
            stub = pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
            written = stub.WriteSnapshot(pb.WriteSnapshotRequest(), timeout=600)
        except grpc.RpcError as exc:
            why = f"{exc.code().name}: {exc.details()}"
            raise RuntimeError(f"the server at {connection.target} wrote no snapshot: {why}") from exc
    print(
        f"idstitch: snapshot of {written.identifiers:,} identifiers and {written.events:,} events "
        f"in {written.directory}",
        file=sys.stderr,
    )
    return Path(written.directory)


def write_scratch_secret(data_dir: Path) -> None:
    """A fresh hash secret, private to this user, for a scratch data directory."""
    fd = os.open(data_dir / "hash-secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))

"""What refusing oversized requests costs the server: time per refusal and memory kept.

Starts the server (`--no-model`) as a separate process and sends, one after another, raw 4 MB
requests of 2,000,000 empty entries: `--rounds` `Resolve` calls, `Ingest` calls and
`SyncCrmRecords` streams of three such messages. Prints the mean time per refused call and the
server's resident memory before and after each kind.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from _harness import machine, machine_line, running_server

_SERVICE = "/idstitch.v1.IdentityService"
_EMPTY_ENTRIES = b"\x0a\x00" * 2_000_000  # just under 4 MiB: two million empty entries of field 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="refused calls of each kind (default 12)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idstitch-bench-refusals-") as tmp:
        with running_server(Path(tmp) / "data", Path(tmp) / "server.log", ["--no-model"]) as server:
            channel = server.channel()
            calls: dict[str, Callable[[], object]] = {
                "Resolve": lambda: channel.unary_unary(f"{_SERVICE}/Resolve")(_EMPTY_ENTRIES, timeout=60),
                "Ingest": lambda: channel.unary_unary(f"{_SERVICE}/Ingest")(_EMPTY_ENTRIES, timeout=60),
                "SyncCrmRecords (3 messages)": lambda: channel.stream_unary(f"{_SERVICE}/SyncCrmRecords")(
                    iter([_EMPTY_ENTRIES] * 3), timeout=60
                ),
            }
            print("| refused, 4 MB of 2,000,000 empty entries | per call | server RSS before -> after |")
            print("|---|---|---|")
            for name, call in calls.items():
                before = server.rss() / 2**20
                began = time.perf_counter()
                for _ in range(args.rounds):
                    try:
                        call()
                    except grpc.RpcError as error:
                        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                            raise
                    else:
                        raise RuntimeError(f"{name} was not refused")
                per_call = (time.perf_counter() - began) / args.rounds
                after = server.rss() / 2**20
                print(f"| {name} x {args.rounds} | {per_call * 1000:.0f} ms | {before:.0f} -> {after:.0f} MiB |")
            channel.close()
        host = machine(Path(tmp))
    print(f"\n{machine_line(host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `idstitch` command line: the one entry point, at the edge."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ._config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="idstitch", description="Identity resolution and stitching service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC service")
    serve.add_argument("--config", type=Path, help="TOML configuration file (see README)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, help="where the DuckDB file and hash secret live (default ./var)")
    serve.add_argument("--bench-noop", action="store_true", default=None, help=argparse.SUPPRESS)
    serve.add_argument("--log-level", default="INFO")

    demo = sub.add_parser("demo", help="send a small story of signals to a running server and print the result")
    demo.add_argument("--target", default="127.0.0.1:50051")

    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            settings = load_settings(
                args.config, host=args.host, port=args.port, data_dir=args.data_dir, bench_noop=args.bench_noop
            )
        except ConfigError as exc:
            print(f"idstitch: configuration error: {exc}", file=sys.stderr)
            return 2
        from ._app import serve as run

        try:
            asyncio.run(run(settings))
        except (OSError, RuntimeError) as exc:
            print(f"idstitch: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(args.target)
    return 2


if __name__ == "__main__":
    sys.exit(main())

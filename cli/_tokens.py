"""`idstitch token add | list | revoke`: the bearer tokens of a data directory.

These edit the tokens file directly (whoever may read and write the data directory manages
its tokens); a running server picks changes up within a second or so. A new token's secret
is printed once, alone on stdout, so that `idstitch token add ... > file` keeps it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server import SCOPES, ConfigError, add_token, list_tokens, load_server_config, revoke_token


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="token_command", required=True)
    add = sub.add_parser("add", help="make a token and print its secret (once; only its hash is kept)")
    add.add_argument("--name", required=True, help="a name for whoever holds it (letters, digits, . _ -)")
    add.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        help="a scope it grants; repeat for more (admin grants all)",
    )
    listing = sub.add_parser("list", help="token names and scopes (never secrets)")
    revoke = sub.add_parser("revoke", help="remove a token; a running server refuses it within a second or so")
    revoke.add_argument("--name", required=True)
    for each in (add, listing, revoke):
        each.add_argument("--data-dir", type=Path, help="the server's data directory (default ./var)")
        each.add_argument("--config", type=Path, help="the server's TOML configuration (for data_dir, tokens_file)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_server_config(args.config, data_dir=args.data_dir)
        if args.token_command == "add":
            secret = add_token(cfg, args.name, args.scope)
            print(secret)
            scopes = ", ".join(sorted(set(args.scope)))
            print(
                f"token {args.name!r} ({scopes}) added to {cfg.tokens_path}; its secret, above, is shown only now",
                file=sys.stderr,
            )
        elif args.token_command == "list":
            tokens = list_tokens(cfg)
            if not tokens:
                print(f"no tokens in {cfg.tokens_path}", file=sys.stderr)
            for token in tokens:
                print(f"{token.name}\t{','.join(sorted(token.scopes))}\t{token.created}")
        else:
            gone = revoke_token(cfg, args.name)
            print(f"revoked {gone.name!r} ({', '.join(sorted(gone.scopes))}) in {cfg.tokens_path}", file=sys.stderr)
    except ConfigError as exc:
        print(f"idstitch token: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"idstitch token: {exc}", file=sys.stderr)
        return 2
    except KeyError:
        print(f"idstitch token: no token named {args.name!r}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"idstitch token: {exc}", file=sys.stderr)
        return 1
    return 0

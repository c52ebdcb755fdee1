"""Bearer tokens: a name, the SHA-256 of its secret and its scopes, in one private TOML file.

Secrets are shown once, when made (`idstitch token add`, or the admin token that the first
start writes to `<data_dir>/admin-token`), and never stored: the file holds their hashes only.
A secret is 32 random bytes, so a plain SHA-256 is as good as a slow hash against guessing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ._config import SCOPES, ConfigError, ServerConfig, make_private_dir, refuse_if_shared

log = logging.getLogger("idstitch.server")

PREFIX = "idst_"
ADMIN = "admin"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{64}")
RECHECK_SECONDS = 1.0
_HEADER = """\
# idstitch bearer tokens, managed with `idstitch token add | list | revoke`. Only SHA-256
# hashes of the secrets are kept here. A running server re-reads this file when it changes.
"""


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    sha256: str
    scopes: frozenset[str]
    created: str

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(f"token name {name!r}: up to 64 letters, digits, '.', '_', '-', from a letter or digit")
    return name


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise ValueError(f"scopes {sorted(chosen)}: give one or more of {', '.join(SCOPES)}")
    return chosen


# -- the file ------------------------------------------------------------------------------


def read_tokens(path: Path) -> tuple[Token, ...]:
    """The tokens of `path`; ConfigError naming the file for one others can read or a bad entry."""
    try:
        refuse_if_shared(path)
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such tokens file") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    entries = raw.get("token", [])
    if set(raw) - {"token"} or not isinstance(entries, list):
        raise ConfigError(f"{path}: expected [[token]] tables only")
    tokens: dict[str, Token] = {}
    for n, entry in enumerate(entries, 1):
        try:
            if not isinstance(entry, dict) or set(entry) - {"name", "sha256", "scopes", "created"}:
                raise ValueError("keys are name, sha256, scopes, created")
            name = check_name(str(entry.get("name", "")))
            sha = str(entry.get("sha256", ""))
            if not _HEX.fullmatch(sha):
                raise ValueError("sha256 is 64 lower-case hex digits")
            scopes = entry.get("scopes", [])
            if not isinstance(scopes, list):
                raise ValueError("scopes is a list")
            token = Token(name, sha, check_scopes(str(s) for s in scopes), str(entry.get("created", "")))
        except ValueError as exc:
            raise ConfigError(f"{path}: token {n}: {exc}") from None
        if name in tokens:
            raise ConfigError(f"{path}: token {n}: the name {name!r} is taken")
        tokens[name] = token
    return tuple(tokens.values())


def _write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, mode 0600 from the first byte."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_tokens(path: Path, tokens: Iterable[Token]) -> None:
    parts = [_HEADER]
    for token in tokens:
        scopes = ", ".join(f'"{s}"' for s in sorted(token.scopes))
        # Names, scopes, hashes and stamps are checked to need no escaping.
        parts.append(
            f'\n[[token]]\nname = "{token.name}"\nsha256 = "{token.sha256}"\nscopes = [{scopes}]\n'
            f'created = "{token.created}"\n'
        )
    _write_private(path, "".join(parts))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (the CLI and a first start): a lock on the file's directory."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ensure_tokens(cfg: ServerConfig) -> Path | None:
    """On first start (no tokens file) make the admin token: its secret goes to
    `<data_dir>/admin-token`, its hash to the tokens file, both mode 0600. Returns the secret's
    file when it made one."""
    path = cfg.tokens_path
    if path.exists():
        return None
    make_private_dir(cfg.data_dir)
    if not path.parent.is_dir():
        raise ConfigError(f"[server] tokens_file {path}: no folder {path.parent}")
    with _locked(path):
        if path.exists():
            return None  # another process made it meanwhile
        secret = new_secret()
        # The secret first: a crash in between leaves no token nobody holds the secret of.
        _write_private(cfg.admin_token_path, secret + "\n")
        write_tokens(path, [Token(ADMIN, digest(secret), frozenset({ADMIN}), _now())])
    log.info("created the admin token; its secret is in %s, where clients look by default", cfg.admin_token_path)
    return cfg.admin_token_path


def add_token(cfg: ServerConfig, name: str, scopes: Iterable[str]) -> str:
    """A new token's secret (shown once, never stored); ValueError for a taken name."""
    name, chosen = check_name(name), check_scopes(scopes)
    ensure_tokens(cfg)
    path = cfg.tokens_path
    with _locked(path):
        tokens = read_tokens(path)
        if any(t.name == name for t in tokens):
            raise ValueError(f"a token named {name!r} exists; revoke it first or choose another name")
        secret = new_secret()
        write_tokens(path, [*tokens, Token(name, digest(secret), chosen, _now())])
    return secret


def list_tokens(cfg: ServerConfig) -> tuple[Token, ...]:
    path = cfg.tokens_path
    return read_tokens(path) if path.exists() else ()


def revoke_token(cfg: ServerConfig, name: str) -> Token:
    """Remove the token `name` (KeyError if there is none); the admin-token file goes too if it
    held that token's secret."""
    path = cfg.tokens_path
    if not path.exists():
        raise KeyError(name)
    with _locked(path):
        tokens = read_tokens(path)
        gone = next((t for t in tokens if t.name == name), None)
        if gone is None:
            raise KeyError(name)
        write_tokens(path, [t for t in tokens if t is not gone])
    with contextlib.suppress(OSError):
        if digest(cfg.admin_token_path.read_text(encoding="utf-8").strip()) == gone.sha256:
            cfg.admin_token_path.unlink()
    return gone


# -- the server's view -----------------------------------------------------------------------


class TokenFile:
    """The tokens a running server accepts: the file, re-read when it changes (checked at most
    once a second). A file that is gone, refused or broken is logged and accepts no token
    until it is fixed: a revoked token must not come back because the file went bad."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._tokens = read_tokens(path)
        self._signature = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self._tokens = read_tokens(self._path)
        except ConfigError as exc:
            self._tokens = ()
            log.error("%s: refusing every token until the file is fixed", exc)
            return
        log.info("re-read %s: %d token(s)", self._path, len(self._tokens))

    def find(self, secret: str) -> Token | None:
        """The token whose secret this is: its hash compared in constant time with every one."""
        self._refresh()
        presented = digest(secret)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(presented, token.sha256):
                found = token
        return found

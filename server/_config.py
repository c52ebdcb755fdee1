"""Server configuration: a TOML file (all optional), environment overrides, typed dataclasses."""

from __future__ import annotations

import logging
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import linkage

log = logging.getLogger("idstitch.server")

SECRET_ENV = "IDSTITCH_HASH_SECRET"


class ConfigError(ValueError):
    """The configuration file or environment is wrong; the message says where."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("var")
    # gRPC refuses larger requests with RESOURCE_EXHAUSTED before they reach a handler.
    max_message_bytes: int = 4 * 1024 * 1024
    shutdown_grace_seconds: float = 10.0
    # Registers idstitch.bench.v1.Noop/Resolve, the ceiling the benchmark compares against.
    bench_noop: bool = False
    # The visitor model (Splink's JSON) for probabilistic stitching; None stitches
    # deterministically only. Its threshold comes from the metrics file beside it unless set.
    model_path: Path | None = linkage.BUNDLED_MODEL
    model_threshold: float | None = None
    # The customer-record model for matching CRM records; None links them by exact keys only.
    customer_model_path: Path | None = linkage.BUNDLED_CUSTOMER_MODEL
    customer_model_threshold: float | None = None
    # A WatchChanges follower that falls this many changes behind the head is cut off
    # (ABORTED, with the cursor to resume from), so that a slow subscriber never holds ingest.
    change_feed_max_lag: int = 100_000
    # TLS: with a certificate and its key the server speaks only TLS; with a client CA too,
    # only to clients presenting a certificate that CA signed (mTLS). See docs/security.md.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Plaintext is refused on any address but loopback unless this says otherwise.
    allow_insecure_remote: bool = False
    # gRPC server reflection (what grpcurl's `list` and `describe` use); off hides the API's shape.
    reflection: bool = True
    # Names, SHA-256 hashes and scopes of the bearer tokens; default <data_dir>/tokens.
    tokens_file: Path | None = None
    # mTLS: the scopes a verified client certificate's subject CN has without a token.
    client_scopes: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.data_dir / "idstitch.duckdb"

    @property
    def tokens_path(self) -> Path:
        return self.tokens_file if self.tokens_file is not None else self.data_dir / "tokens"

    @property
    def admin_token_path(self) -> Path:
        """Where the first start writes the secret of the admin token (beside the hash secret)."""
        return self.data_dir / "admin-token"

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerConfig
    linkage: linkage.LinkageConfig


_LINKAGE_KEYS = {
    "default_phone_region",
    "max_identifiers_per_person",
    "max_signals_per_batch",
    "max_identifiers_per_signal",
    "max_identifiers_per_resolve",
    "max_records_per_message",
    "max_records_per_sync",
    "max_concurrent_syncs",
    "max_value_length",
    "max_clock_skew_seconds",
    "event_id_window_seconds",
}


def load_settings(path: Path | None = None, **server_overrides: Any) -> Settings:
    """Read `path` (TOML) if given, apply overrides, and find or create the hash secret.

    The secret comes from $IDSTITCH_HASH_SECRET, else from `identity.hash_secret_file`,
    else from `<data_dir>/hash-secret`, which is created (random, mode 0600) on first start.
    """
    raw = _read(path)
    server = _server_config(raw.get("server", {}), server_overrides)
    identity = raw.get("identity", {})
    unknown = set(identity) - _LINKAGE_KEYS - {"hash_secret_file", "blocked_values"}
    if unknown:
        raise ConfigError(f"[identity]: unknown keys {sorted(unknown)}")
    secret = _hash_secret(identity.get("hash_secret_file"), server.data_dir)
    namespaces = _namespaces(raw.get("namespaces", {}))
    blocked = linkage.DEFAULT_BLOCKED_VALUES + tuple(identity.get("blocked_values", ()))
    try:
        config = linkage.LinkageConfig(
            hash_secret=secret,
            namespaces=namespaces,
            blocked_values=blocked,
            **{k: v for k, v in identity.items() if k in _LINKAGE_KEYS},
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[identity]: {exc}") from exc
    return Settings(server=server, linkage=config)


def load_server_config(path: Path | None = None, **server_overrides: Any) -> ServerConfig:
    """The `[server]` part of the configuration alone: no hash secret is read or created."""
    return _server_config(_read(path).get("server", {}), server_overrides)


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _server_config(table: dict[str, Any], overrides: dict[str, Any]) -> ServerConfig:
    known = {f.name for f in fields(ServerConfig)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[server]: unknown keys {sorted(unknown)}")
    values = dict(table)
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    for key in ("model_path", "customer_model_path", *_OPTIONAL_FILES):
        if key in values:
            values[key] = Path(values[key]) if values[key] else None
    if "client_scopes" in values:
        values["client_scopes"] = _client_scopes(values["client_scopes"])
    for flag in ("allow_insecure_remote", "reflection"):
        if not isinstance(values.get(flag, False), bool):
            raise ConfigError(f"[server]: {flag} is true or false")
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = ServerConfig(**values)
    _check_tls_keys(config)
    return config


_OPTIONAL_FILES = ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "tokens_file")
# The scopes of docs/security.md; server/_auth.py says which RPC needs which.
SCOPES = ("ingest", "resolve", "read", "changes", "admin")


def _client_scopes(table: object) -> dict[str, frozenset[str]]:
    if not isinstance(table, dict):
        raise ConfigError('[server.client_scopes]: a table of certificate CN = ["scope", ...]')
    out = {}
    for name, scopes in table.items():
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ConfigError(f'[server.client_scopes]: {name} = ["scope", ...], a list of {", ".join(SCOPES)}')
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ConfigError(f"[server.client_scopes]: {name}: unknown scopes {unknown} (known: {', '.join(SCOPES)})")
        out[name] = frozenset(scopes)
    return out


def _check_tls_keys(config: ServerConfig) -> None:
    """The TLS keys that only make sense together (the files are read when the server starts)."""
    if (config.tls_cert_file is None) != (config.tls_key_file is None):
        raise ConfigError("[server]: tls_cert_file and tls_key_file go together (the certificate and its key)")
    if config.tls_client_ca_file is not None and config.tls_cert_file is None:
        raise ConfigError("[server]: tls_client_ca_file (mTLS) needs TLS: set tls_cert_file and tls_key_file")
    if config.client_scopes and config.tls_client_ca_file is None:
        raise ConfigError("[server.client_scopes] maps client certificates: it needs tls_client_ca_file (mTLS)")


def _namespaces(table: dict[str, Any]) -> tuple[linkage.NamespaceConfig, ...]:
    """Defaults, with entries of the file replacing or adding namespaces by name."""
    merged = {ns.name: ns for ns in linkage.DEFAULT_NAMESPACES}
    allowed = {f.name for f in fields(linkage.NamespaceConfig)} - {"name"}
    for name, options in table.items():
        unknown = set(options) - allowed
        if unknown:
            raise ConfigError(f"[namespaces.{name}]: unknown keys {sorted(unknown)}")
        if options.get("normalise", "trim") not in ("trim", "lower", "email", "phone"):
            raise ConfigError(f"[namespaces.{name}]: normalise is one of trim, lower, email, phone")
        if "blocked_values" in options:
            options = {**options, "blocked_values": tuple(options["blocked_values"])}
        merged[name] = linkage.NamespaceConfig(name=name, **options)
    return tuple(merged.values())


def _hash_secret(secret_file: str | None, data_dir: Path) -> bytes:
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode()
    path = Path(secret_file) if secret_file else data_dir / "hash-secret"
    if path.exists():
        refuse_if_shared(path)
        secret = path.read_bytes().strip()
        if not secret:
            raise ConfigError(f"{path} is empty")
        return secret
    if secret_file:
        raise ConfigError(f"identity.hash_secret_file {path} does not exist")
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    log.warning("created a new hash secret in %s: back it up, stored hashes depend on it", path)
    return path.read_bytes().strip()


def refuse_if_shared(path: Path) -> None:
    """A secret others can read is no secret: refuse it, saying how to fix it."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:04o}); make it private: chmod 600 {path}")


def make_private_dir(path: Path) -> None:
    """Create the data directory private to the service's user (0700), or make it so: it
    holds personal data (the store) and the hash secret."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(0o700)
        log.warning("made the data directory %s private (it was %04o)", path, mode)

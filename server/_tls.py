"""Transport security: TLS or mTLS from the config, and plaintext only on loopback unless allowed."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import grpc

from ._config import ConfigError, ServerConfig, refuse_if_shared

log = logging.getLogger("idstitch.server")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, ::, a name) may face a network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_credentials(cfg: ServerConfig) -> grpc.ServerCredentials | None:
    """The TLS credentials to listen with, or None for plaintext, which only loopback gets by
    default: bearer tokens would cross the network in the clear."""
    if cfg.tls_cert_file is None or cfg.tls_key_file is None:
        if is_loopback(cfg.host):
            return None
        if not cfg.allow_insecure_remote:
            raise ConfigError(
                f"[server] host {cfg.host!r} is not a loopback address, and plaintext there would send tokens "
                "in the clear: set tls_cert_file and tls_key_file (TLS), or allow_insecure_remote = true "
                "(plaintext anyway, e.g. behind a proxy that terminates TLS)"
            )
        log.warning("serving plaintext on %s (allow_insecure_remote): tokens cross the network unencrypted", cfg.host)
        return None
    certificate = _pem(cfg.tls_cert_file, "tls_cert_file")
    key = _pem(cfg.tls_key_file, "tls_key_file")
    refuse_if_shared(cfg.tls_key_file)  # the private key; the certificates are public
    client_ca = _pem(cfg.tls_client_ca_file, "tls_client_ca_file") if cfg.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _pem(path: Path, key: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"[server] {key} {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data:
        raise ConfigError(f"[server] {key} {path}: not a PEM file")
    return data

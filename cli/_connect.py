"""How the clients (demo, import, watch) reach a server: its address, a bearer token, TLS.

The token comes from `--token-file`, else `$IDSTITCH_TOKEN`, else `<data-dir>/admin-token`
(the admin token a server writes on first start, readable on the server's machine). It
travels as `authorization: Bearer <token>` metadata on every call, added by a channel
interceptor, over TLS when `--tls-ca-file` (or a client certificate, for mTLS) is given.
Tests and benchmarks build their channels here too, so that they talk like a real client.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc

TOKEN_ENV = "IDSTITCH_TOKEN"
DEFAULT_TARGET = "127.0.0.1:50051"
Options = Sequence[tuple[str, Any]]


class ConnectError(Exception):
    """No token, or a TLS file that cannot be read; the message says which and how to fix it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=DEFAULT_TARGET, help=f"server address (default {DEFAULT_TARGET})")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var"),
        help="the server's data directory, for its admin-token (default ./var)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the bearer token (default: ${TOKEN_ENV}, else DATA_DIR/admin-token)",
    )
    parser.add_argument(
        "--tls-ca-file", type=Path, help="connect with TLS, verifying the server by this CA certificate"
    )
    parser.add_argument("--tls-cert-file", type=Path, help="client certificate for mTLS (with --tls-key-file)")
    parser.add_argument("--tls-key-file", type=Path, help="the client certificate's private key")


@dataclass(frozen=True, slots=True)
class Connection:
    target: str
    token: str | None
    tls: bool = False
    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        if (args.tls_cert_file is None) != (args.tls_key_file is None):
            raise ConnectError("--tls-cert-file and --tls-key-file go together")
        tls = args.tls_ca_file is not None or args.tls_cert_file is not None
        try:
            token = read_token(args.token_file, args.data_dir)
        except ConnectError:
            if args.tls_cert_file is None:
                raise
            token = None  # a client certificate the server maps to scopes may do instead
        return cls(
            args.target,
            token,
            tls,
            _read(args.tls_ca_file, "--tls-ca-file"),
            _read(args.tls_cert_file, "--tls-cert-file"),
            _read(args.tls_key_file, "--tls-key-file"),
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)

    def channel(self, options: Options = ()) -> grpc.Channel:
        """A blocking channel that sends the token on every call."""
        if self.tls:
            raw = grpc.secure_channel(self.target, self.credentials(), options=options)
        else:
            raw = grpc.insecure_channel(self.target, options=options)
        return raw if self.token is None else with_token(raw, self.token)

    def aio_channel(self, options: Options = ()) -> grpc.aio.Channel:
        """An asyncio channel that sends the token on every call."""
        interceptors = [] if self.token is None else aio_token_interceptors(self.token)
        if self.tls:
            return grpc.aio.secure_channel(self.target, self.credentials(), options=options, interceptors=interceptors)
        return grpc.aio.insecure_channel(self.target, options=options, interceptors=interceptors)


def read_token(token_file: Path | None, data_dir: Path) -> str:
    """The token from `token_file`, else `$IDSTITCH_TOKEN`, else `<data_dir>/admin-token`."""
    if token_file is None and os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip()
    path = token_file if token_file is not None else data_dir / "admin-token"
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        if token_file is not None:
            raise ConnectError(f"--token-file {path}: {exc.strerror or exc}") from exc
        raise ConnectError(
            f"no token: give --token-file FILE, set ${TOKEN_ENV}, or --data-dir of the server (no {path}); "
            "`idstitch token add` makes one"
        ) from exc
    if not token:
        raise ConnectError(f"{path} is empty")
    return token


def _read(path: Path | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConnectError(f"{option} {path}: {exc.strerror or exc}") from exc


# -- the token on every call -------------------------------------------------------------------


def _metadata(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class _CallDetails(_Details, grpc.ClientCallDetails):
    pass


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._entry = _metadata(token)

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._entry],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]) -> Any:
        return continuation(self._with_token(details), requests)


def with_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    """`channel`, sending `authorization: Bearer <token>` on every call."""
    return grpc.intercept_channel(channel, _TokenInterceptor(token))


def _aio_details(details: grpc.aio.ClientCallDetails, entry: tuple[str, str]) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), entry)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _AioUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._entry = _metadata(token)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._entry), request)


class _AioUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._entry = _metadata(token)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._entry), request)


class _AioStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._entry = _metadata(token)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_aio_details(details, self._entry), requests)


class _AioStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._entry = _metadata(token)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_aio_details(details, self._entry), requests)


def aio_token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for `grpc.aio.*_channel(..., interceptors=...)` sending the token on every call."""
    return [_AioUnaryUnary(token), _AioUnaryStream(token), _AioStreamUnary(token), _AioStreamStream(token)]

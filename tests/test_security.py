"""Secure by default, against real servers: every RPC needs a token with its scope (or a mapped
client certificate), over TLS or mTLS from the config; plaintext on loopback only; secrets on
disk private; the token commands; health checks without a token.

The certificates are tests/certs/ (scripts/gen_test_certs.sh): a CA, a server certificate for
localhost and 127.0.0.1, clients CN=campaign-tool and CN=unmapped-tool, and a client of a CA
nobody trusts. Their keys are copied to mode 0600 first, as the server demands.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import cli
from cli._connect import TOKEN_ENV, ConnectError, read_token
from server import METHOD_SCOPES, ConfigError, ServerConfig, add_token, load_server_config
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._tls import is_loopback
from tests._servers import REPO, ThreadServer
from tests._signals import batch, ident, signal

SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
CERTS = REPO / "tests" / "certs"
NON_ADMIN = ("ingest", "resolve", "read", "changes")
AUTH_ERRORS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@dataclass(frozen=True)
class Certs:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]  # CN=campaign-tool
    unmapped: tuple[Path, Path]  # CN=unmapped-tool
    rogue: tuple[Path, Path]  # CN=campaign-tool, signed by a CA the server does not trust

    def tls(self, **more: Any) -> dict[str, Any]:
        return {"tls_cert_file": self.server[0], "tls_key_file": self.server[1], **more}

    def mtls(self, **more: Any) -> dict[str, Any]:
        return self.tls(tls_client_ca_file=self.ca, **more)


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    folder = tmp_path / "certs"
    shutil.copytree(CERTS, folder)
    for key in folder.glob("*.key"):
        key.chmod(0o600)  # git keeps no modes but the executable bit

    def pair(name: str) -> tuple[Path, Path]:
        return folder / f"{name}.pem", folder / f"{name}.key"

    return Certs(folder / "ca.pem", pair("server"), pair("client"), pair("unmapped"), pair("rogue"))


def _config(data: Path) -> ServerConfig:
    return load_server_config(None, data_dir=data)


def _channel(server: ThreadServer, certs: Certs | None, client: tuple[Path, Path] | None = None) -> grpc.Channel:
    """A channel of the test's own: no token unless a call passes one."""
    if certs is None:
        return grpc.insecure_channel(server.target)
    cert, key = (client[0].read_bytes(), client[1].read_bytes()) if client else (None, None)
    credentials = grpc.ssl_channel_credentials(certs.ca.read_bytes(), key, cert)
    return grpc.secure_channel(server.target, credentials)


def _request(method_name: str) -> Any:
    method = SERVICE.methods_by_name[method_name]
    request = getattr(pb, method.input_type.name)()
    if method_name == "WatchChanges":
        request.stop_at_end = True
    if method_name == "Resolve":
        request.identifiers.append(ident("cookie", "c-1"))
    return request


def _call(channel: grpc.Channel, method_name: str, token: str | None) -> grpc.StatusCode:
    """The status one call of `method_name` ends with (its request mostly empty: auth is what matters)."""
    method = SERVICE.methods_by_name[method_name]
    request = _request(method_name)
    response_type = getattr(pb, method.output_type.name)
    kind = (method.client_streaming, method.server_streaming)
    make = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[kind]
    call = make(
        f"/{SERVICE.full_name}/{method_name}",
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_type.FromString,
    )
    metadata = [] if token is None else [("authorization", f"Bearer {token}")]
    try:
        answer = call(iter([request]) if kind[0] else request, timeout=10, metadata=metadata)
        if kind[1]:
            list(answer)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _details(channel: grpc.Channel, token: str | None, metadata: list[tuple[str, str]] | None = None) -> str:
    call = channel.unary_unary(
        f"/{SERVICE.full_name}/Resolve",
        request_serializer=pb.ResolveRequest.SerializeToString,
        response_deserializer=pb.ResolveResponse.FromString,
    )
    sent = metadata if metadata is not None else ([("authorization", f"Bearer {token}")] if token else [])
    with pytest.raises(grpc.RpcError) as caught:
        call(pb.ResolveRequest(identifiers=[ident("cookie", "c")]), timeout=10, metadata=sent)
    return f"{caught.value.code().name}: {caught.value.details()}"


# -- the authorisation matrix ---------------------------------------------------------------


def test_every_rpc_needs_a_token_with_its_scope_over_tls(tmp_path: Path, certs: Certs) -> None:
    data = tmp_path / "data"
    cfg = _config(data)
    # Made before the server starts, so that it reads them at once (it re-reads once a second).
    only = {scope: add_token(cfg, f"only-{scope}", [scope]) for scope in NON_ADMIN}
    all_but_admin = add_token(cfg, "all-but-admin", NON_ADMIN)
    server = ThreadServer(data, ca=certs.ca, **certs.tls())
    channel = _channel(server, certs)
    assert {m.name for m in SERVICE.methods} == {p.rpartition("/")[2] for p in METHOD_SCOPES if SERVICE.full_name in p}
    wrong = "idst_" + "x" * 43
    outcomes: dict[str, tuple[grpc.StatusCode, ...]] = {}
    try:
        for method in SERVICE.methods:
            scope = METHOD_SCOPES[f"/{SERVICE.full_name}/{method.name}"]
            if scope == "admin":
                lacking, right = all_but_admin, server.admin_token
            else:
                lacking = only[next(s for s in NON_ADMIN if s != scope)]
                right = only[scope]
            outcomes[method.name] = tuple(_call(channel, method.name, t) for t in (None, wrong, lacking, right))
    finally:
        channel.close()
        server.stop()
    for name, (none, bad, lacking_scope, granted) in outcomes.items():
        assert none == grpc.StatusCode.UNAUTHENTICATED, name
        assert bad == grpc.StatusCode.UNAUTHENTICATED, name
        assert lacking_scope == grpc.StatusCode.PERMISSION_DENIED, name
        assert granted not in AUTH_ERRORS, (name, granted)
    assert outcomes["Resolve"][3] == grpc.StatusCode.OK and outcomes["WatchChanges"][3] == grpc.StatusCode.OK


def test_refusals_are_short_name_the_scope_and_never_echo_the_token(server: ThreadServer) -> None:
    cfg = _config(server.data_dir)
    reader = add_token(cfg, "reader", ["read"])
    channel = _channel(server, None)
    wrong = "idst_not-a-token-anyone-holds"
    try:
        time.sleep(1.1)  # past the server's once-a-second look at the tokens file
        assert _details(channel, None) == "UNAUTHENTICATED: no token: send metadata 'authorization: Bearer <token>'"
        assert _details(channel, wrong) == "UNAUTHENTICATED: unknown or revoked token"
        malformed = _details(channel, None, [("authorization", f"Basic {wrong}")])
        assert malformed.startswith("UNAUTHENTICATED: malformed authorization") and wrong not in malformed
        assert _details(channel, reader) == "PERMISSION_DENIED: this call needs the 'resolve' scope"
    finally:
        channel.close()


def test_health_checks_and_reflection_need_no_token(server: ThreadServer) -> None:
    channel = _channel(server, None)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE.full_name):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == (
                health_pb2.HealthCheckResponse.SERVING
            )
        assert _call(channel, "Resolve", None) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()


# -- mTLS --------------------------------------------------------------------------------------


@pytest.fixture
def mtls_server(tmp_path: Path, certs: Certs) -> Iterator[ThreadServer]:
    running = ThreadServer(
        tmp_path / "data",
        ca=certs.ca,
        client_cert=certs.unmapped,
        **certs.mtls(client_scopes={"campaign-tool": frozenset({"resolve", "changes"})}),
    )
    try:
        yield running
    finally:
        running.stop()


def test_mtls_refuses_a_client_without_a_certificate_of_its_ca_at_the_handshake(
    mtls_server: ThreadServer, certs: Certs
) -> None:
    for client in (None, certs.rogue):
        channel = _channel(mtls_server, certs, client)
        try:
            health = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            # No status from a handler: the TLS handshake failed, before any call.
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, client
            assert _call(channel, "Resolve", mtls_server.admin_token) == grpc.StatusCode.UNAVAILABLE
        finally:
            channel.close()
    # The server's own client (an unmapped certificate and the admin token) is still served.
    mtls_server.stub.Ingest(batch(signal(("cookie", "c-1"))))


def test_a_mapped_certificate_gets_its_scopes_without_a_token(mtls_server: ThreadServer, certs: Certs) -> None:
    mapped = _channel(mtls_server, certs, certs.client)
    unmapped = _channel(mtls_server, certs, certs.unmapped)
    try:
        assert _call(mapped, "Resolve", None) == grpc.StatusCode.OK
        assert _call(mapped, "WatchChanges", None) == grpc.StatusCode.OK
        assert _call(mapped, "Ingest", None) == grpc.StatusCode.PERMISSION_DENIED
        assert _call(mapped, "Forget", None) == grpc.StatusCode.PERMISSION_DENIED
        # A token, when sent, decides alone: a wrong one is refused even from a mapped certificate.
        assert _call(mapped, "Resolve", "idst_wrong") == grpc.StatusCode.UNAUTHENTICATED
        assert _call(mapped, "Ingest", mtls_server.admin_token) not in AUTH_ERRORS
        # A certificate whose CN is not mapped is a client like any other: it needs a token.
        assert _call(unmapped, "Resolve", None) == grpc.StatusCode.UNAUTHENTICATED
        assert _call(unmapped, "Resolve", mtls_server.admin_token) == grpc.StatusCode.OK
    finally:
        mapped.close()
        unmapped.close()


def test_the_servicer_knows_who_called(mtls_server: ThreadServer, certs: Certs) -> None:
    """The principal (token name or certificate CN) reaches the servicer: the audit log has it."""
    mapped = _channel(mtls_server, certs, certs.client)
    try:
        assert _call(mapped, "WatchChanges", None) == grpc.StatusCode.OK
    finally:
        mapped.close()
    list(mtls_server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))
    entries = mtls_server.stub.ListAudit(pb.ListAuditRequest()).entries
    assert [e.principal for e in entries if e.action == "watch_changes"] == ["cert:campaign-tool", "token:admin"]


# -- the loopback rule, TLS files -------------------------------------------------------------


def test_plaintext_beyond_loopback_is_refused_unless_allowed(tmp_path: Path, certs: Certs) -> None:
    with pytest.raises(ConfigError, match=r"tls_cert_file and tls_key_file.*allow_insecure_remote = true"):
        ThreadServer(tmp_path / "refused", host="0.0.0.0")
    assert not [p.name for p in (tmp_path / "refused").iterdir() if p.name != "hash-secret"], "refused at once"
    for name, options in (("insecure", {"allow_insecure_remote": True}), ("tls", certs.tls())):
        server = ThreadServer(tmp_path / name, ca=certs.ca if name == "tls" else None, host="0.0.0.0", **options)
        try:
            server.stub.Ingest(batch(signal(("cookie", f"c-{name}"))))
        finally:
            server.stop()


def test_serve_says_which_keys_to_set_for_a_remote_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "allow_insecure_remote" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("", False),
        ("idstitch.internal", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tls_cert_file = "s.pem"', "tls_cert_file and tls_key_file go together"),
        ('tls_client_ca_file = "ca.pem"', r"tls_client_ca_file \(mTLS\) needs TLS"),
        ('[server.client_scopes]\ntool = ["resolve"]', "needs tls_client_ca_file"),
        (
            'tls_cert_file = "s.pem"\ntls_key_file = "s.key"\ntls_client_ca_file = "ca.pem"\n[server.client_scopes]\n'
            'tool = ["resolve", "write"]',
            r"unknown scopes \['write'\]",
        ),
        ("allow_insecure_remote = 1", "allow_insecure_remote is true or false"),
    ],
)
def test_tls_keys_that_go_together_and_known_scopes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[server]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_server_config(path)


def test_a_tls_key_others_can_read_is_refused_with_the_fix(tmp_path: Path, certs: Certs) -> None:
    certs.server[1].chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by others .*chmod 600"):
        ThreadServer(tmp_path / "data", **certs.tls())
    certs.server[0].chmod(0o644)  # a certificate is public: fine
    certs.server[1].chmod(0o600)
    ThreadServer(tmp_path / "data", ca=certs.ca, **certs.tls()).stop()


# -- files and the token commands -------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_makes_a_private_admin_token_and_a_later_one_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ThreadServer(data)
    token = first.admin_token
    first.stop()
    assert token.startswith("idst_") and len(token) > 40
    assert _mode(data / "admin-token") == 0o600 and _mode(data / "tokens") == 0o600
    tokens_text = (data / "tokens").read_text()
    assert token not in tokens_text and 'name = "admin"' in tokens_text
    again = ThreadServer(data)
    try:
        assert again.admin_token == token
        again.stub.Ingest(batch(signal(("cookie", "c-1"))))
    finally:
        again.stop()


def test_a_tokens_file_others_can_read_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ThreadServer(data).stop()
    (data / "tokens").chmod(0o644)
    with pytest.raises(ConfigError, match=r"tokens is readable by others \(mode 0644\); make it private: chmod 600"):
        ThreadServer(data)


def _wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_token_add_list_revoke_and_a_running_server_follows(
    server: ThreadServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(server.data_dir)]
    assert cli.main(["token", "add", "--name", "crm", "--scope", "ingest", "--scope", "resolve", *data]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("idst_") and "\n" not in secret and "shown only now" in err
    assert cli.main(["token", "add", "--name", "crm", "--scope", "read", *data]) == 2  # the name is taken
    capsys.readouterr()

    assert cli.main(["token", "list", *data]) == 0
    listed, _ = capsys.readouterr()
    names = {line.split("\t")[0]: line.split("\t")[1] for line in listed.splitlines()}
    assert names == {"admin": "admin", "crm": "ingest,resolve"}
    assert secret not in listed and server.admin_token not in listed

    channel = _channel(server, None)
    try:
        # Added while it runs: the server reads the file again within a second or so.
        assert _wait_for(lambda: _call(channel, "Resolve", secret) == grpc.StatusCode.OK)
        assert _call(channel, "GetPerson", secret) == grpc.StatusCode.PERMISSION_DENIED
        assert cli.main(["token", "revoke", "--name", "crm", *data]) == 0
        assert _wait_for(lambda: _call(channel, "Resolve", secret) == grpc.StatusCode.UNAUTHENTICATED)
        assert cli.main(["token", "revoke", "--name", "crm", *data]) == 1
        capsys.readouterr()
        # A tokens file gone bad refuses every token rather than keeping old ones alive.
        (server.data_dir / "tokens").chmod(0o644)
        assert _wait_for(lambda: _call(channel, "Resolve", server.admin_token) == grpc.StatusCode.UNAUTHENTICATED)
        (server.data_dir / "tokens").chmod(0o600)
        assert _wait_for(lambda: _call(channel, "Resolve", server.admin_token) == grpc.StatusCode.OK)
    finally:
        channel.close()


def test_revoking_the_admin_token_removes_its_secret_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert cli.main(["token", "add", "--name", "ops", "--scope", "admin", "--data-dir", str(data)]) == 0
    assert (data / "admin-token").exists()  # the store of a fresh data directory starts with its admin token
    assert cli.main(["token", "revoke", "--name", "admin", "--data-dir", str(data)]) == 0
    assert not (data / "admin-token").exists()
    assert cli.main(["token", "list", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split("\t")[0] == "ops"


# -- the clients ------------------------------------------------------------------------------


def test_clients_take_the_token_file_then_the_environment_then_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "admin-token").write_text("from-data-dir\n")
    (tmp_path / "given").write_text("from-file\n")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert read_token(tmp_path / "given", tmp_path) == "from-file"
    assert read_token(None, tmp_path) == "from-env"
    monkeypatch.delenv(TOKEN_ENV)
    assert read_token(None, tmp_path) == "from-data-dir"
    with pytest.raises(ConnectError, match="--token-file"):
        read_token(None, tmp_path / "elsewhere")


def test_import_and_demo_over_tls_with_the_data_dirs_token(
    tmp_path: Path, certs: Certs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    server = ThreadServer(tmp_path / "data", ca=certs.ca, **certs.tls())
    records = tmp_path / "hotel.csv"
    records.write_text("source_system,source_key,given_name,family_name\nhotel,h1,Anna,Schmidt\n")
    connect = ["--target", server.target, "--data-dir", str(server.data_dir), "--tls-ca-file", str(certs.ca)]
    try:
        assert cli.main(["import", str(records), *connect]) == 0
        assert "1 created" in capsys.readouterr().out
        # No token anywhere: the client says so before it connects.
        assert cli.main(["import", str(records), "--target", server.target, "--data-dir", str(tmp_path)]) == 2
        assert "no token" in capsys.readouterr().err
        demo = subprocess.run(
            [sys.executable, "-m", "cli", "demo", *connect],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        reader = tmp_path / "reader.token"
        reader.write_text(add_token(_config(server.data_dir), "reader", ["read"]))
        time.sleep(1.1)
        refused = subprocess.run(
            [sys.executable, "-m", "cli", "demo", *connect, "--token-file", str(reader)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stdout, refused.stdout + refused.stderr
        assert reader.read_text() not in refused.stdout + refused.stderr
    finally:
        server.stop()


def test_a_watcher_keeps_a_file_the_server_refused_the_token_for(server: ThreadServer, tmp_path: Path) -> None:
    """A refused token is not the file's fault: it stays in the inbox for when the token is fixed."""
    from cli._connect import Connection
    from cli._import import import_file
    from cli._watch import Watcher
    from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "hotel.csv").write_text("source_system,source_key,given_name\nhotel,h1,Anna\n")
    said: list[str] = []

    async def go() -> int:
        async with Connection(server.target, "idst_revoked").aio_channel() as channel:
            stub = pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
            watcher = Watcher(inbox, lambda p: import_file(stub, p), interval=0.01, say=said.append)
            return sum([len(await watcher.poll_once()) for _ in range(3)])

    assert asyncio.run(go()) == 0
    assert (inbox / "hotel.csv").exists() and not list((inbox / "failed").iterdir())
    assert any("refused the token (UNAUTHENTICATED" in line and "will retry" in line for line in said)


def _reflected_services(channel: grpc.Channel) -> list[str]:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [answer] = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    return [s.name for s in answer.list_services_response.service]


@pytest.mark.parametrize("enabled", [True, False])
def test_reflection_follows_the_config_and_needs_no_token(tmp_path: Path, enabled: bool) -> None:
    running = ThreadServer(tmp_path / "data", reflection=enabled)
    channel = _channel(running, None)
    try:
        if enabled:
            assert SERVICE.full_name in _reflected_services(channel)
        else:
            with pytest.raises(grpc.RpcError) as off:
                _reflected_services(channel)
            assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    finally:
        channel.close()
        running.stop()

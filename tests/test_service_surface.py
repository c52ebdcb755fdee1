"""What grpcurl-style tools and operators see: health, reflection, the demo, privacy at rest."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server import ConfigError, load_settings
from tests._servers import REPO, ProcessServer, ThreadServer
from tests._signals import batch, signal


def test_health_checking_reports_serving(server: ThreadServer) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "idstitch.v1.IdentityService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_the_api(server: ThreadServer) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="idstitch.v1.IdentityService"),
    ]
    listed, described = list(stub.ServerReflectionInfo(iter(requests)))
    names = {s.name for s in listed.list_services_response.service}
    assert {"idstitch.v1.IdentityService", "grpc.health.v1.Health"} <= names
    assert described.file_descriptor_response.file_descriptor_proto


def test_demo_tells_its_story_against_a_running_server(server: ThreadServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--target", server.target, "--data-dir", str(server.data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "merged p_" in result.stdout
    assert "shared: follows the last login" in result.stdout
    assert "replayed, nothing changed" in result.stdout
    assert "keyed hash" in result.stdout
    # The probabilistic chapter: a Safari cookie's successor joins the person softly, and the
    # Explain waterfall (prior first) sums to the link's match weight.
    assert "(probabilistic, p = 0." in result.stdout
    total = re.search(r"soft link, match weight ([+-][0-9.]+)", result.stdout)
    assert total is not None
    steps = re.findall(r"^    (prior|place|user_agent|active_days) +([+-][0-9.]+)$", result.stdout, re.MULTILINE)
    assert steps and steps[0][0] == "prior" and len(steps) >= 3
    assert abs(sum(float(w) for _, w in steps) - float(total.group(1))) < 0.05


def test_demo_says_when_no_server_is_there() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--target", "127.0.0.1:1"],
        cwd=REPO,
        env={**os.environ, "IDSTITCH_TOKEN": "idst_nothing-to-send-it-to"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "make serve" in result.stdout


def test_raw_email_and_phone_never_reach_the_store_or_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ProcessServer(data)
    server.stub.Ingest(batch(signal(("email", "Zelda.Private@Example.org"), ("phone", "+4930123456789"))))
    assert server.terminate() == 0
    stored = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("idstitch.duckdb"))
    assert stored, "the store file exists"
    for secret in (b"zelda.private", b"Zelda.Private", b"4930123456789", b"+49 30"):
        assert secret not in stored
        assert secret.decode() not in server.log()


def test_serving_path_does_not_import_splink_and_linkage_does_not_import_grpc() -> None:
    probe = (
        "import sys, server, server._app, server._servicer, linkage\n"
        "assert not [m for m in sys.modules if m.startswith('splink')], 'splink imported'\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, timeout=60)
    only_linkage = "import sys, linkage\nassert 'grpc' not in sys.modules, 'linkage imported grpc'\n"
    subprocess.run([sys.executable, "-c", only_linkage], cwd=REPO, check=True, timeout=60)


def test_generated_protobuf_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_second_server_on_the_same_data_dir_refuses_to_start(tmp_path: Path) -> None:
    owner = ProcessServer(tmp_path / "data")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "cannot open" in second.stderr and "Traceback" not in second.stderr
    finally:
        owner.terminate()


def test_the_data_directory_and_its_files_are_private_to_the_service_user(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as an older version (or a careless umask) left it
    running = ThreadServer(data)
    try:
        running.stub.Ingest(batch(signal(("cookie", "c-1"))))
    finally:
        running.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} is readable by others"


def test_a_hash_secret_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    secret = data / "hash-secret"
    secret.write_text("s" * 64)
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0644\); make it private: chmod 600"):
        load_settings(None, data_dir=data)

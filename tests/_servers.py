"""Real servers for integration tests: in-process on a thread, or a separate process.

Their `channel` and `stub` talk as a real client does: the data directory's admin token as
`authorization: Bearer` metadata over the real channel (cli/_connect.py), over TLS when the
server has TLS (`ca` names the CA to verify it by).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli._connect import Connection
from server._app import RunningServer, start
from server._config import load_settings
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent


class ThreadServer:
    """The real asyncio gRPC server and DuckDB store, run on an event loop in a thread."""

    def __init__(
        self,
        data_dir: Path,
        *,
        ca: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        config: Path | None = None,
        **server_overrides: Any,
    ) -> None:
        self.data_dir = data_dir
        settings = load_settings(config, port=0, data_dir=data_dir, **server_overrides)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self.running: RunningServer = self._call(start(settings))
        except BaseException:
            self._end_loop()
            raise
        self.target = f"127.0.0.1:{self.running.port}"
        self.admin_token = admin_token(data_dir)
        cert, key = (client_cert[0].read_bytes(), client_cert[1].read_bytes()) if client_cert else (None, None)
        self.connection = Connection(
            self.target, self.admin_token, ca is not None, ca.read_bytes() if ca else None, cert, key
        )
        self.channel = self.connection.channel()
        self.stub = pb_grpc.IdentityServiceStub(self.channel)

    def _call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        self.channel.close()
        self._call(self.running.stop())
        self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class ProcessServer:
    """`python -m cli serve` as a child process, for restarts, SIGTERM and SIGKILL."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        env = {**os.environ, **(extra_env or {})}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.port = self._read_port(timeout=60)
        self.target = f"127.0.0.1:{self.port}"
        self.admin_token = admin_token(data_dir)
        self.connection = Connection(self.target, self.admin_token)
        self.channel = self.connection.channel()
        self.stub = pb_grpc.IdentityServiceStub(self.channel)

    def _read_port(self, timeout: float) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith("idstitch listening on "):
                        return int(line.rsplit(":", 1)[1])
            if self.process.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"server did not start; log: {self.log_path.read_text(errors='replace')[-2000:]}")

    def terminate(self, timeout: float = 30) -> int:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.wait(30)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()
            if self.process.stdout is not None:
                self.process.stdout.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def admin_token(data_dir: Path) -> str:
    """The secret a server wrote to `<data_dir>/admin-token` on its first start."""
    return (data_dir / "admin-token").read_text().strip()


def serving(data_dir: Path, history: Sequence[pb.IngestRequest]) -> ThreadServer:
    """A server on a fresh data directory that has ingested `history`, in order."""
    server = ThreadServer(data_dir)
    try:
        for request in history:
            server.stub.Ingest(request, timeout=60)
    except BaseException:
        server.stop()
        raise
    return server

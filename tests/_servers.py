"""Real servers for integration tests: in-process on a thread, or a separate process."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from server._app import RunningServer, start
from server._config import load_settings
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent


class ThreadServer:
    """The real asyncio gRPC server and DuckDB store, run on an event loop in a thread."""

    def __init__(self, data_dir: Path, **server_overrides: Any) -> None:
        self.data_dir = data_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        settings = load_settings(None, port=0, data_dir=data_dir, **server_overrides)
        self.running: RunningServer = self._call(start(settings))
        self.target = f"127.0.0.1:{self.running.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.IdentityServiceStub(self.channel)

    def _call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        self.channel.close()
        self._call(self.running.stop())
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
        self.channel = grpc.insecure_channel(self.target)
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

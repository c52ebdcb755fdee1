"""What the benchmarks share: the server as a separate process, a load meter, the machine line.

The real server runs as `python -m cli serve --port 0 --data-dir <dir>` on a fresh data
directory; the benchmark reads the port it prints, drives it over gRPC with the admin token the
server wrote to `<dir>/admin-token` (as `authorization: Bearer` metadata on every call, like any
client: `ServerHandle.channel`, `aio_channel`, `client_args` for `idstitch` subcommands), and
stops it with SIGTERM (then SIGKILL) whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from cli._connect import Connection

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Anchored on the newline so a port split across two reads is never taken half-read.
LISTENING = re.compile(rb"idstitch listening on 127\.0\.0\.1:(\d+)\r?\n")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# Cores other processes may use during a phase before its figure is flagged as disturbed.
OTHER_LOAD_LIMIT = 0.25


# -- the server process ---------------------------------------------------------------------


@dataclass(slots=True)
class ServerHandle:
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    target: str = ""
    token: str = ""  # the admin token of data_dir, sent on every call
    exit_code: int | None = None
    stop_seconds: float | None = None

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def connection(self) -> Connection:
        return Connection(self.target, self.token)

    def channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A blocking channel sending the admin token."""
        return self.connection().channel(options)

    def aio_channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        """An asyncio channel sending the admin token."""
        return self.connection().aio_channel(options)

    def client_args(self) -> list[str]:
        """What an `idstitch` client subcommand (import, demo) needs to reach this server."""
        return ["--target", self.target, "--data-dir", str(self.data_dir)]


@contextlib.contextmanager
def running_server(data_dir: Path, log_path: Path, extra_args: Sequence[str] = ()) -> Iterator[ServerHandle]:
    """The server on a free port; SIGTERM (then SIGKILL) on the way out, whatever happened.

    `extra_args` go after the common ones, e.g. `--bench-noop` or `--model PATH`.
    """
    command = [sys.executable, "-m", "cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
    command += ["--log-level", "WARNING", *extra_args]
    # A fixed secret keeps the first-start warning out of the log; the data is thrown away.
    env = {**os.environ, "IDSTITCH_HASH_SECRET": "benchmark-only-secret"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log)
        handle = ServerHandle(process, log_path, data_dir)
        try:
            handle.target = f"127.0.0.1:{read_port(process, START_TIMEOUT)}"
            handle.token = (data_dir / "admin-token").read_text().strip()  # written before the port is bound
            yield handle
        except BaseException:
            sys.stderr.write(f"server log (tail):\n{tail(log_path)}\n")
            raise
        finally:
            handle.exit_code, handle.stop_seconds = terminate(process)


def read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], min(left, 0.5))
        if not ready:
            if process.poll() is not None:
                break
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        if match := LISTENING.search(seen):
            return int(match.group(1))
    code = process.poll()
    if code is not None:
        raise RuntimeError(f"the server exited with code {code} before reporting its port")
    raise RuntimeError(f"the server did not report its port within {timeout:.0f} s")


def terminate(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Exit code and seconds from SIGTERM to exit (graceful shutdown commits and checkpoints)."""
    began = time.perf_counter()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait(10)
    if process.stdout is not None:
        process.stdout.close()
    return code, time.perf_counter() - began


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def log_problems(path: Path) -> list[str]:
    """Warnings, errors and tracebacks the server logged (it runs at WARNING, so all of them)."""
    with contextlib.suppress(OSError):
        return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return []


def stop_on_sigterm() -> None:
    """Turn a SIGTERM of the benchmark into an exception, so the server is still stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# -- other load on the machine --------------------------------------------------------------


class LoadMeter:
    """Cores that processes other than this one and the server used, phase by phase.

    Client and server already share the machine; a test run or build next to them is what
    turns a figure into noise, and this says when that happened.
    """

    def __init__(self, server_pid: int | None = None) -> None:
        pids = [os.getpid()] if server_pid is None else [os.getpid(), server_pid]
        self._ours = tuple(psutil.Process(pid) for pid in pids)
        self.other_cores: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = self._sample()
        yield
        wall, busy, ours = (after - before for before, after in zip(began, self._sample(), strict=True))
        self.other_cores[name] = max(0.0, (busy - ours) / wall) if wall > 0 else 0.0

    def _sample(self) -> tuple[float, float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        busy += getattr(t, "steal", 0.0)
        ours = 0.0
        for process in self._ours:
            with contextlib.suppress(psutil.Error):  # the server may have exited already
                times = process.cpu_times()
                ours += times.user + times.system
        return time.perf_counter(), busy, ours


def busy_phases(other_cores: dict[str, float]) -> str | None:
    """A note when other processes were busy during some phases, else None."""
    busy = {phase: cores for phase, cores in other_cores.items() if cores > OTHER_LOAD_LIMIT}
    if not busy:
        return None
    listed = ", ".join(f"{phase} {cores:.2f}" for phase, cores in busy.items())
    return f"other processes were busy (cores: {listed}); those figures are noisy, re-run on a quiet machine"


# -- the machine ----------------------------------------------------------------------------


def machine(data_dir: Path) -> dict[str, Any]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "data_filesystem": filesystem_of(data_dir),
    }


def filesystem_of(path: Path) -> str:
    """Durable ingest means fsync; on tmpfs that costs nothing, so the figure says where it ran."""
    resolved = path.resolve()
    mounts = [p for p in psutil.disk_partitions(all=True) if resolved.is_relative_to(p.mountpoint)]
    return max(mounts, key=lambda p: len(p.mountpoint)).fstype if mounts else "unknown"


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']} ({m['system']}); data on "
        f"{m['data_filesystem']}; client and server on the same machine."
    )


def code_version() -> str:
    """The commit measured, and the tracked files changed since (others edit the same tree)."""
    try:
        head = _git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes in {', '.join(changed)}" if changed else head


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True).stdout

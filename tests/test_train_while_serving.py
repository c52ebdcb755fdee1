"""Training on a running server's history: the server writes a snapshot, training reads it, and
the service answers all the while (issue: model lifecycle, train while serving)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer
from tests._signals import ident
from training import SimulationConfig, simulate


def _to_proto(simulated: list) -> list[pb.IngestRequest]:  # type: ignore[type-arg]
    requests = []
    for start in range(0, len(simulated), 500):
        request = pb.IngestRequest()
        for item in simulated[start : start + 500]:
            s = item.signal
            message = request.signals.add(event_id=s.event_id, channel=s.channel)
            message.timestamp.FromNanoseconds(round(s.timestamp * 1e9))
            for identifier in s.identifiers:
                message.identifiers.add(namespace=identifier.namespace, value=identifier.value)
            message.context.ip = s.context.ip
            message.context.user_agent = s.context.user_agent
            message.context.geo.country = s.context.geo.country
            message.context.geo.city = s.context.geo.city
            if s.context.geo.latitude is not None:
                message.context.geo.latitude = s.context.geo.latitude
                message.context.geo.longitude = s.context.geo.longitude
        requests.append(request)
    return requests


def test_train_reads_a_snapshot_of_a_running_server_which_keeps_answering(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ThreadServer(data)
    try:
        for request in _to_proto(simulate(SimulationConfig(persons=1000, days=14, seed=7))):
            server.stub.Ingest(request, timeout=60)
        out = tmp_path / "model"
        training = subprocess.Popen(
            [sys.executable, "-m", "cli", "train", "--data-dir", str(data), "--target", server.target,
             "--no-report", "--out", str(out)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        answered = 0
        while training.poll() is None:
            resolved = server.stub.Resolve(pb.ResolveRequest(identifiers=[ident("cookie", "x")]), timeout=5)
            assert len(resolved.resolutions) == 1
            answered += 1
            time.sleep(0.05)
        stdout, stderr = training.communicate()
        assert training.returncode == 0, stderr
        assert "asking it for a snapshot" in stderr and "held-out links" in stdout
        assert answered > 10, "the service answered while training ran"
        assert (out / "visitor-model.json").stat().st_size > 1000
        assert not list((data / "snapshots").iterdir()), "the snapshot asked for is deleted after training"
        audit = [e.action for e in server.stub.ListAudit(pb.ListAuditRequest()).entries]
        assert audit == ["snapshot"]
        # Kept on request, and trainable on its own.
        written = server.stub.WriteSnapshot(pb.WriteSnapshotRequest())
        snapshot = Path(written.directory)
        assert snapshot.parent == (data / "snapshots").resolve() and written.events > 1000
        assert {p.name for p in snapshot.iterdir()} == {"identifiers.parquet", "events.parquet"}
        assert snapshot.stat().st_mode & 0o077 == 0, "private to the service's user"
    finally:
        server.stop()
    again = subprocess.run(
        [sys.executable, "-m", "cli", "train", "--snapshot", str(snapshot), "--no-report",
         "--out", str(tmp_path / "m2")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "m2" / "visitor-model.json").exists()

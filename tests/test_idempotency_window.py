"""The idempotency window over the real server: a replayed event id within it changes nothing;
after it, the event is applied again as new."""

from __future__ import annotations

import time
from pathlib import Path

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer
from tests._signals import batch, signal

WINDOW = 1.5


def _config(tmp_path: Path, window: float) -> Path:
    path = tmp_path / f"window-{window}.toml"
    path.write_text(f"[identity]\nevent_id_window_seconds = {window}\n")
    return path


def test_a_replay_within_the_window_is_a_duplicate_and_after_it_is_applied_as_new(tmp_path: Path) -> None:
    server = ThreadServer(tmp_path / "data", config=_config(tmp_path, WINDOW))
    try:
        request = batch(signal(("cookie", "c-1"), ("login", "anna")), signal(("cookie", "c-2")))
        first = server.stub.Ingest(request)
        assert [r.decision for r in first.results] == [pb.DECISION_NEW, pb.DECISION_NEW]

        within = server.stub.Ingest(request)
        assert all(r.duplicate for r in within.results)
        log_before = list(server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True)))

        time.sleep(WINDOW + 0.5)
        after = server.stub.Ingest(request)

        # Forgotten ids: applied again, to the persons their identifiers already have.
        assert not any(r.duplicate for r in after.results)
        assert [r.person_id for r in after.results] == [r.person_id for r in first.results]
        assert [r.decision for r in after.results] == [pb.DECISION_DETERMINISTIC] * 2
        assert list(server.stub.WatchChanges(pb.WatchChangesRequest(stop_at_end=True))) == log_before
        # The second application is itself remembered for a window.
        assert all(r.duplicate for r in server.stub.Ingest(request).results)
    finally:
        server.stop()


def test_a_restart_loads_the_event_ids_of_the_window_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old, recent = batch(signal(("cookie", "old"))), batch(signal(("cookie", "recent")))
    server = ThreadServer(data, config=_config(tmp_path, 3600))
    try:
        server.stub.Ingest(old)
        old_at = time.time()
        time.sleep(3.0)
        server.stub.Ingest(recent)
    finally:
        server.stop()

    # A window that ends a second after the old event: the recent one, 3 s younger, is in it
    # as long as the restart takes under two seconds.
    window = time.time() - old_at - 1.0
    server = ThreadServer(data, config=_config(tmp_path, round(window, 3)))
    try:
        assert server.stub.Ingest(recent).results[0].duplicate
        assert not server.stub.Ingest(old).results[0].duplicate
    finally:
        server.stop()

"""WatchChanges: resumable from any cursor, without gaps or repeats, live after the backlog."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import ThreadServer
from tests._signals import batch, signal


def _backlog(server: ThreadServer, after: int = 0) -> list[pb.Change]:
    return list(server.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=after, stop_at_end=True)))


def test_resume_from_a_cursor_without_gaps_or_repeats(server: ThreadServer) -> None:
    for n in range(30):
        server.stub.Ingest(batch(signal(("cookie", f"c{n}"), ("login", f"user{n % 7}"))))
    everything = _backlog(server)
    sequences = [c.sequence for c in everything]
    assert sequences == list(range(1, len(everything) + 1))
    kinds = {c.kind for c in everything}
    assert {pb.CHANGE_KIND_PERSON_CREATED, pb.CHANGE_KIND_IDENTIFIER_ADDED} <= kinds

    for cursor in (0, 1, len(everything) // 2, len(everything) - 1, len(everything)):
        assert _backlog(server, cursor) == everything[cursor:]


def test_follow_streams_new_changes_live_then_resumes(server: ThreadServer) -> None:
    server.stub.Ingest(batch(signal(("cookie", "before"))))
    cursor = _backlog(server)[-1].sequence
    received: queue.Queue[pb.Change] = queue.Queue()
    stream = server.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=cursor))

    def follow() -> None:
        try:
            for change in stream:
                received.put(change)
        except grpc.RpcError:
            pass  # cancelled below

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    server.stub.Ingest(batch(signal(("cookie", "live-1"))))
    first = [received.get(timeout=10) for _ in range(2)]  # person created, identifier added
    server.stub.Ingest(batch(signal(("cookie", "live-2"), ("cookie", "live-1"))))
    second = received.get(timeout=10)
    stream.cancel()
    reader.join(10)

    assert [c.sequence for c in first] == [cursor + 1, cursor + 2]
    assert second.sequence == cursor + 3
    assert second.kind == pb.CHANGE_KIND_IDENTIFIER_ADDED and second.identifier.value == "live-2"
    # A client that missed the live stream resumes from its last cursor and sees the same.
    assert _backlog(server, cursor)[:3] == [*first, second]


def test_a_follower_that_falls_far_behind_is_cut_off_with_its_cursor_and_resumes(tmp_path: Path) -> None:
    server = ThreadServer(tmp_path / "data", change_feed_max_lag=500)
    try:
        server.stub.Ingest(batch(signal(("cookie", "first"))))
        follower = server.stub.WatchChanges(pb.WatchChangesRequest(after_sequence=0), timeout=60)
        seen = [next(follower)]  # caught up: live from here, and then it stops reading
        for n in range(25):
            server.stub.Ingest(batch(*[signal(("cookie", f"c{n}-{k}")) for k in range(1000)]))
        with pytest.raises(grpc.RpcError) as cut:
            seen.extend(follower)
        assert cut.value.code() == grpc.StatusCode.ABORTED
        match = re.search(r"resume with after_sequence=(\d+)$", cut.value.details())
        assert match is not None
        cursor = int(match.group(1))
        assert cursor == seen[-1].sequence  # every change up to the cursor was delivered
        rest = _backlog(server, cursor)
        assert [c.sequence for c in seen + rest] == list(range(1, rest[-1].sequence + 1))
    finally:
        server.stop()


def test_batches_carry_the_same_changes_in_order_and_follow_live(server: ThreadServer) -> None:
    for n in range(40):
        server.stub.Ingest(batch(*[signal(("cookie", f"b{n}-{k}"), ("login", f"bu{n % 5}")) for k in range(3)]))
    everything = _backlog(server)
    for cursor in (0, 7, len(everything)):
        batches = list(server.stub.WatchChangeBatches(pb.WatchChangesRequest(after_sequence=cursor, stop_at_end=True)))
        assert [c for b in batches for c in b.changes] == everything[cursor:]
        assert all(b.changes for b in batches), "no empty batch"

    received: queue.Queue[pb.ChangeBatch] = queue.Queue()
    stream = server.stub.WatchChangeBatches(pb.WatchChangesRequest(after_sequence=len(everything)))

    def follow() -> None:
        try:
            for item in stream:
                received.put(item)
        except grpc.RpcError:
            pass

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        server.stub.Ingest(batch(*[signal(("cookie", f"live-{k}")) for k in range(5)]))
        live = received.get(timeout=10)
        # One commit, one message: the five signals' changes arrive together.
        assert len(live.changes) >= 5
        assert live.changes[0].sequence == len(everything) + 1
        assert [c.sequence for c in live.changes] == list(range(len(everything) + 1, live.changes[-1].sequence + 1))
    finally:
        stream.cancel()
        follower.join(5)


def test_followers_that_keep_up_get_the_same_pages(server: ThreadServer) -> None:
    # Followers that keep up wake on the same commit and linger as long: the server encodes
    # each page once for all of them (server/_feed.py).
    server.stub.Ingest(batch(signal(("cookie", "start"))))
    cursor = _backlog(server)[-1].sequence
    streams = [server.stub.WatchChangeBatches(pb.WatchChangesRequest(after_sequence=cursor)) for _ in range(3)]
    pages: list[list[tuple[int, int]]] = [[] for _ in streams]

    def follow(stream: Iterable[pb.ChangeBatch], into: list[tuple[int, int]]) -> None:
        try:
            for page in stream:
                into.append((page.changes[0].sequence, page.changes[-1].sequence))
        except grpc.RpcError:
            pass

    followers = [threading.Thread(target=follow, args=(s, p), daemon=True) for s, p in zip(streams, pages, strict=True)]
    for follower in followers:
        follower.start()

    def wait_until_all_have(head: int) -> None:
        deadline = time.monotonic() + 10
        for into in pages:
            while not into or into[-1][1] < head:
                assert time.monotonic() < deadline, "a follower did not get every change"
                time.sleep(0.02)

    try:
        # Each stream's first page is whatever is there when its call arrives.
        server.stub.Ingest(batch(signal(("cookie", "warm"))))
        warm = _backlog(server, cursor)[-1].sequence
        wait_until_all_have(warm)
        for n in range(60):  # commits a few milliseconds apart, many within one linger
            server.stub.Ingest(batch(signal(("cookie", f"page-{n}"))))
        wait_until_all_have(_backlog(server, warm)[-1].sequence)
    finally:
        for stream in streams:
            stream.cancel()
        for follower in followers:
            follower.join(5)

    for into in pages:
        assert [first for first, _ in into] == [cursor + 1] + [last + 1 for _, last in into[:-1]], "no gap, no repeat"
    live = [[page for page in into if page[0] > warm] for into in pages]
    assert 1 < len(live[0]) < 60, "pages gather several commits"
    assert live[0] == live[1] == live[2]

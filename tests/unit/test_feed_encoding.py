"""The change feed's batch bytes are what protobuf writes, from encodings shared by followers."""

from __future__ import annotations

import pytest

from linkage import Change, ChangeKind
from server import _convert as convert
from server import _feed as feed
from server._feed import EncodedChanges
from server._proto.idstitch.v1 import idstitch_pb2 as pb


def _change(sequence: int, value: str) -> Change:
    time = 1_700_000_000.0 + sequence
    return Change(sequence, time, ChangeKind.IDENTIFIER_ADDED, sequence, 0, "cookie", value, f"e{sequence}")


def _expected(changes: list[Change]) -> bytes:
    return pb.ChangeBatch(changes=[convert.change(c) for c in changes]).SerializeToString()


def test_a_batch_is_the_protobuf_encoding_of_its_changes_and_decodes_back() -> None:
    encoded = EncodedChanges(page_size=100)
    changes = [_change(n, "x" * (n * 40)) for n in range(1, 9)]  # lengths past one varint byte
    first = encoded.encode_batch(changes)
    assert first == _expected(changes)
    assert encoded.encode_batch(changes[2:5]) == _expected(changes[2:5])
    decoded = pb.ChangeBatch.FromString(first)
    assert [c.sequence for c in decoded.changes] == list(range(1, 9))
    assert decoded.changes[7].identifier.value == "x" * 320


def test_a_change_rewritten_under_the_same_sequence_is_encoded_anew() -> None:
    encoded = EncodedChanges(page_size=100)
    before = [_change(n, f"cookie-{n}") for n in (1, 2, 3)]
    encoded.encode_batch(before)
    # An erasure rewrites the stored change: the store gives another object, value blanked.
    after = [before[0], _change(2, ""), before[2]]
    assert encoded.encode_batch(after) == _expected(after)
    assert encoded.encode(after[1]) == convert.change(after[1]).SerializeToString()


def test_followers_on_one_page_share_its_bytes_and_a_rewritten_page_is_encoded_anew() -> None:
    encoded = EncodedChanges(page_size=100)
    changes = [_change(n, f"cookie-{n}") for n in range(1, 6)]
    first = encoded.encode_batch(changes[1:4])
    assert encoded.encode_batch(list(changes[1:4])) is first  # another follower, the same page
    # The same sequences, a middle change rewritten by an erasure: not the page held.
    rewritten = [changes[1], _change(3, ""), changes[3]]
    assert encoded.encode_batch(rewritten) == _expected(rewritten) != first


def test_every_field_of_a_change_reaches_the_batch() -> None:
    full = Change(
        7, 1_700_000_000.5, ChangeKind.HOUSEHOLD_LINKED, 3, 4, "cookie", "c-1", "e-7", "why", 0.93, 11, (3, 4),
        "6afb6f47fa31", "743ed45e3c8f",
    )  # fmt: skip
    decoded = pb.ChangeBatch.FromString(EncodedChanges(page_size=100).encode_batch([full])).changes[0]
    assert decoded == convert.change(full)
    assert (decoded.other_person_id, list(decoded.household_person_ids), decoded.probability) == (
        "p_4",
        ["p_3", "p_4"],
        0.93,
    )
    assert (decoded.time.seconds, decoded.time.nanos) == (1_700_000_000, 5 * 10**8)
    assert decoded.previous_model_version == "743ed45e3c8f"


def test_a_page_of_whole_commits_encoded_ahead_is_their_encodings_joined() -> None:
    encoded = EncodedChanges(page_size=100)
    encoded.followers = 1
    commits = [[_change(n, f"c-{n}") for n in range(1, 4)], [_change(n, f"c-{n}") for n in range(4, 6)]]
    for commit in commits:
        encoded.encode_ahead(commit)
    page = commits[0] + commits[1]
    joined = encoded.encode_batch(page)
    assert joined == _expected(page)
    assert [c.sequence for c in pb.ChangeBatch.FromString(joined).changes] == [1, 2, 3, 4, 5]
    # A page that cuts a commit, or holds a change rewritten since, is built as before.
    assert encoded.encode_batch(page[1:]) == _expected(page[1:])
    rewritten = [commits[0][0], _change(2, ""), commits[0][2]]
    assert encoded.encode_batch(rewritten) == _expected(rewritten)


def test_nothing_is_encoded_ahead_while_nobody_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    original = convert.change_batch

    def change_batch(changes: list[Change]) -> pb.ChangeBatch:
        built.append(len(changes))
        return original(changes)

    monkeypatch.setattr(feed.convert, "change_batch", change_batch)
    encoded = EncodedChanges(page_size=100)
    commit = [_change(n, f"c-{n}") for n in range(1, 4)]
    encoded.encode_ahead(commit)  # nobody follows: no work for ingest to wait on
    assert built == []
    encoded.followers = 1
    encoded.encode_ahead(commit)
    assert built == [3]
    encoded.encode_batch(commit)  # joined from the commit, not built again
    assert built == [3]
    bulk = [_change(n, f"c-{n}") for n in range(4, 105)]
    encoded.encode_ahead(bulk)  # more than a page: never a page whole, so not encoded ahead
    assert built == [3]

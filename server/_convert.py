"""Proto <-> domain conversion: the only place that knows both shapes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from numpy.typing import NDArray

import linkage

from ._proto.idstitch.v1 import idstitch_pb2 as pb

_PERSON_ID = re.compile(r"^p_([1-9][0-9]{0,17})$")
_HOUSEHOLD_ID = re.compile(r"^[hp]_([1-9][0-9]{0,17})$")

_DECISIONS = {
    linkage.Decision.NEW: pb.DECISION_NEW,
    linkage.Decision.DETERMINISTIC: pb.DECISION_DETERMINISTIC,
    linkage.Decision.PROBABILISTIC: pb.DECISION_PROBABILISTIC,
}
_IGNORED = {linkage.IgnoredReason.BLOCKED_VALUE: pb.IGNORED_REASON_BLOCKED_VALUE}
_CHANGE_KINDS = {
    linkage.ChangeKind.PERSON_CREATED: pb.CHANGE_KIND_PERSON_CREATED,
    linkage.ChangeKind.IDENTIFIER_ADDED: pb.CHANGE_KIND_IDENTIFIER_ADDED,
    linkage.ChangeKind.PERSONS_MERGED: pb.CHANGE_KIND_PERSONS_MERGED,
    linkage.ChangeKind.IDENTIFIER_MOVED: pb.CHANGE_KIND_IDENTIFIER_MOVED,
    linkage.ChangeKind.IDENTIFIER_EVICTED: pb.CHANGE_KIND_IDENTIFIER_EVICTED,
    linkage.ChangeKind.CONFLICT: pb.CHANGE_KIND_CONFLICT,
    linkage.ChangeKind.SOFT_LINKED: pb.CHANGE_KIND_SOFT_LINKED,
    linkage.ChangeKind.SOFT_UNLINKED: pb.CHANGE_KIND_SOFT_UNLINKED,
    linkage.ChangeKind.PERSON_ERASED: pb.CHANGE_KIND_PERSON_ERASED,
    linkage.ChangeKind.HOUSEHOLD_LINKED: pb.CHANGE_KIND_HOUSEHOLD_LINKED,
    linkage.ChangeKind.HOUSEHOLD_UNLINKED: pb.CHANGE_KIND_HOUSEHOLD_UNLINKED,
}
_LINK_KINDS = {linkage.LinkKind.HARD: pb.LINK_KIND_HARD, linkage.LinkKind.SOFT: pb.LINK_KIND_SOFT}


def format_person_id(person_id: int) -> str:
    return f"p_{person_id}"


def parse_person_id(text: str, field: str = "person_id") -> int:
    match = _PERSON_ID.match(text)
    if match is None:
        raise linkage.InvalidArgument(field, "not a person id (p_<number>)")
    return int(match.group(1))


def format_household_id(household_id: int) -> str:
    return f"h_{household_id}"


def parse_household_id(text: str, field: str = "household_id") -> int:
    """A household id, or the id of one of its persons (which finds the same household)."""
    match = _HOUSEHOLD_ID.match(text)
    if match is None:
        raise linkage.InvalidArgument(field, "not a household id (h_<number>) or person id (p_<number>)")
    return int(match.group(1))


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    _set_timestamp(stamp, seconds)
    return stamp


def _set_timestamp(stamp: Timestamp, seconds: float) -> None:
    # Core times are whole microseconds (linkage.quantize), so this is exact.
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    stamp.seconds = whole
    stamp.nanos = micros * 1000


# -- requests --------------------------------------------------------------------------------


def identifier(message: pb.Identifier) -> linkage.Identifier:
    return linkage.Identifier(message.namespace, message.value)


def identifiers(messages: Sequence[pb.Identifier]) -> list[linkage.Identifier]:
    return [identifier(m) for m in messages]


def signal(message: pb.Signal) -> linkage.Signal:
    ctx = message.context
    geo = ctx.geo
    return linkage.Signal(
        event_id=message.event_id,
        identifiers=tuple(identifier(i) for i in message.identifiers),
        timestamp=(
            message.timestamp.seconds + message.timestamp.nanos / 1e9 if message.HasField("timestamp") else None
        ),
        channel=message.channel,
        context=linkage.Context(
            ip=ctx.ip,
            geo=linkage.Geo(
                country=geo.country,
                city=geo.city,
                latitude=geo.latitude if geo.HasField("latitude") else None,
                longitude=geo.longitude if geo.HasField("longitude") else None,
            ),
            user_agent=ctx.user_agent,
        ),
    )


def signals(request: pb.IngestRequest) -> list[linkage.Signal]:
    return [signal(s) for s in request.signals]


def customer_record(message: pb.CustomerRecord) -> linkage.CustomerRecord:
    updated = message.updated_at
    return linkage.CustomerRecord(
        source_system=message.source_system,
        source_key=message.source_key,
        given_name=message.given_name,
        family_name=message.family_name,
        date_of_birth=message.date_of_birth,
        address=message.address,
        postcode=message.postcode,
        city=message.city,
        email=message.email,
        phone=message.phone,
        document_id=message.document_id,
        updated_at=updated.seconds + updated.nanos / 1e9 if message.HasField("updated_at") else None,
    )


# -- responses -------------------------------------------------------------------------------


def ingest_response(results: Sequence[linkage.SignalResult]) -> pb.IngestResponse:
    return pb.IngestResponse(
        results=[
            pb.SignalResult(event_id=r.event_id, suppressed=True)
            if r.suppressed
            else pb.SignalResult(
                event_id=r.event_id,
                person_id=format_person_id(r.person_id),
                person_created=r.person_created,
                decision=_DECISIONS[r.decision],
                probability=r.probability,
                duplicate=r.duplicate,
                ignored=[
                    pb.IgnoredIdentifier(index=i.index, namespace=i.namespace, reason=_IGNORED[i.reason])
                    for i in r.ignored
                ],
                merged_person_ids=[format_person_id(p) for p in r.merged_person_ids],
                conflicts=[
                    pb.Conflict(
                        identifier=pb.Identifier(namespace=c.identifier.namespace, value=c.identifier.value),
                        person_id=format_person_id(c.person_id),
                        other_person_id=format_person_id(c.other_person_id),
                        reason=c.reason,
                    )
                    for c in r.conflicts
                ],
            )
            for r in results
        ]
    )


def sync_response(summary: linkage.SyncSummary) -> pb.SyncCrmRecordsResponse:
    return pb.SyncCrmRecordsResponse(
        received=summary.received,
        created=summary.created,
        updated=summary.updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        linked_probabilistically=summary.linked_probabilistically,
        errors=[pb.RecordError(index=e.index, field=e.field, message=e.message) for e in summary.errors],
    )


def resolve_response(resolutions: Sequence[linkage.Resolution]) -> pb.ResolveResponse:
    out = pb.ResolveResponse()
    for r in resolutions:
        item = out.resolutions.add()
        item.identifier.namespace = r.identifier.namespace
        item.identifier.value = r.identifier.value
        if r.person_id is not None:
            item.found = True
            item.person_id = format_person_id(r.person_id)
            item.shared = r.shared
            item.probability = r.probability
            if r.decision is not None:
                item.decision = _DECISIONS[r.decision]
            if r.household_id is not None:
                item.household_id = format_household_id(r.household_id)
                item.household_probability = r.household_probability
    return out


def person(view: linkage.PersonView) -> pb.Person:
    return pb.Person(
        person_id=format_person_id(view.person_id),
        aliases=[format_person_id(a) for a in view.aliases],
        identifiers=[
            pb.PersonIdentifier(
                namespace=i.namespace,
                value=i.value,
                hashed=i.hashed,
                shared=i.shared,
                first_seen=_timestamp(i.first_seen),
                last_seen=_timestamp(i.last_seen),
            )
            for i in view.identifiers
        ],
        channels=list(view.channels),
        first_seen=_timestamp(view.first_seen),
        last_seen=_timestamp(view.last_seen),
        soft_links=[
            pb.SoftLink(component_id=format_person_id(c), probability=p, model_version=v) for c, p, v in view.soft_links
        ],
    )


def change(c: linkage.Change) -> pb.Change:
    message = pb.Change()
    _fill_change(message, c)
    return message


def change_batch(changes: list[linkage.Change]) -> pb.ChangeBatch:
    batch = pb.ChangeBatch()
    add = batch.changes.add
    for c in changes:
        _fill_change(add(), c)
    return batch


def _fill_change(message: pb.Change, c: linkage.Change) -> None:
    # Every follower of the feed waits on this once per change: fields at their default are
    # left unset and messages are filled in place inside their batch, which takes a fifth
    # less than building each and serializing it alone.
    message.sequence = c.sequence
    _set_timestamp(message.time, c.time)
    message.kind = _CHANGE_KINDS[c.kind]
    message.person_id = format_person_id(c.person_id)
    if c.other_person_id is not None:
        message.other_person_id = format_person_id(c.other_person_id)
    if c.namespace:
        identifier = message.identifier
        identifier.namespace = c.namespace
        identifier.value = c.value
    if c.event_id:
        message.event_id = c.event_id
    if c.detail:
        message.detail = c.detail
    if c.probability:
        message.probability = c.probability
    if c.household_id is not None:
        message.household_id = format_household_id(c.household_id)
        message.household_person_ids.extend(format_person_id(p) for p in c.household_persons)
    if c.model_version:
        message.model_version = c.model_version
    if c.previous_model_version:
        message.previous_model_version = c.previous_model_version


def household(view: linkage.HouseholdView) -> pb.GetHouseholdResponse:
    return pb.GetHouseholdResponse(
        household=pb.Household(
            household_id=format_household_id(view.household_id),
            persons=[person(p) for p in view.persons],
            visitors=[
                pb.HouseholdVisitor(person=person(v), probability=p, model_version=version)
                for v, p, version in view.visitors
            ],
        )
    )


def confidence(request: pb.ResolveRequest) -> tuple[float | None, bool]:
    """(min_probability, deterministic_only) of a Resolve request."""
    which = request.WhichOneof("confidence")
    if which == "min_probability":
        return request.min_probability, False
    return None, which == "deterministic_only" and request.deterministic_only


def explanation(e: linkage.Explanation) -> pb.ExplainResponse:
    return pb.ExplainResponse(
        same_person=e.person_id is not None,
        person_id=format_person_id(e.person_id) if e.person_id is not None else "",
        steps=[
            pb.LinkStep(
                kind=_LINK_KINDS[s.kind],
                from_component_id=format_person_id(s.from_component),
                to_component_id=format_person_id(s.to_component),
                probability=s.probability,
                match_weight=s.match_weight,
                model_version=s.model_version,
                weights=[pb.ComparisonWeight(comparison=n, match_weight=w) for n, w in s.weights],
            )
            for s in e.steps
        ],
    )


def forget_selector(request: pb.ForgetRequest) -> tuple[int | None, linkage.Identifier | None]:
    selector = request.WhichOneof("selector")
    if selector == "person_id":
        return parse_person_id(request.person_id), None
    if selector == "identifier":
        return None, identifier(request.identifier)
    raise linkage.InvalidArgument("selector", "give person_id or identifier")


def audit_response(entries: Sequence[linkage.AuditEntry]) -> pb.ListAuditResponse:
    return pb.ListAuditResponse(
        entries=[
            pb.AuditEntry(
                sequence=e.sequence,
                time=_timestamp(e.time),
                principal=e.principal,
                action=e.action,
                subject=e.subject,
                detail=e.detail,
            )
            for e in entries
        ]
    )


def forget_response(erased: linkage.Erased) -> pb.ForgetResponse:
    return pb.ForgetResponse(
        person_id=format_person_id(erased.person_id),
        identifiers_erased=erased.identifiers,
        customer_records_erased=erased.customer_records,
        events_erased=erased.events,
    )


_MODEL_STATES = {
    "proposed": pb.MODEL_STATE_PROPOSED,
    "in force": pb.MODEL_STATE_IN_FORCE,
    "retired": pb.MODEL_STATE_RETIRED,
}


def model_entry(row: linkage.ModelRow) -> pb.ModelEntry:
    """A registry entry, with the figures a data scientist compares read off its metrics file."""
    threshold = precision = recall = 0.0
    try:
        metrics = json.loads(row.metrics) if row.metrics else {}
        chosen = metrics.get("evaluation", {}).get("chosen", {})
        threshold = float(metrics.get("threshold", 0.0))
        precision, recall = float(chosen.get("precision", 0.0)), float(chosen.get("recall", 0.0))
    except (ValueError, TypeError, AttributeError):
        pass  # a metrics file of another shape: the entry still lists, without the figures
    return pb.ModelEntry(
        version=row.version,
        state=_MODEL_STATES.get(row.state, pb.MODEL_STATE_UNSPECIFIED),
        added_at=_timestamp(row.added_at),
        added_by=row.added_by,
        changed_at=_timestamp(row.changed_at),
        threshold=threshold,
        held_out_precision=precision,
        held_out_recall=recall,
        metrics_json=row.metrics.encode("utf-8"),
    )


def relink_progress(so_far: linkage.Relinked, total: int, done: bool) -> pb.RelinkProgress:
    return pb.RelinkProgress(
        total=total, scored=so_far.scored, made=so_far.made, dropped=so_far.dropped, moved=so_far.moved,
        kept=so_far.kept, done=done,
    )  # fmt: skip


def model_change(version: str, previous: str, relinked: linkage.Relinked) -> pb.ModelChangeResponse:
    return pb.ModelChangeResponse(
        version=version, previous_version=previous, relinked=relink_progress(relinked, relinked.scored, done=True)
    )


def snapshot_response(
    directory: Path, counts: dict[str, int], model: linkage.VisitorModel | None, profiles: bool
) -> pb.WriteSnapshotResponse:
    response = pb.WriteSnapshotResponse(
        directory=str(directory.resolve()), identifiers=counts["identifiers"], events=counts["events"]
    )
    if profiles:
        response.visitor_profiles = counts.get("visitor_profiles", 0)
        if model is not None:
            response.visitor_model_version = model.version
            response.visitor_model_json = model.scorer.settings_json.encode()
    return response


# A relink's pairs are held whole while it is applied: 24 bytes each, so at most ~1.2 GB.
MAX_SCORED_PAIRS = 50_000_000


async def scored_pairs(
    messages: AsyncIterator[pb.ScoredPairs],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], str]:
    """The pairs of a RelinkScored stream as three arrays, and the model version that scored them."""
    lefts: list[NDArray[np.int64]] = []
    rights: list[NDArray[np.int64]] = []
    weights: list[NDArray[np.float64]] = []
    version: str | None = None
    count = 0
    async for message in messages:
        if version is not None and message.model_version != version:
            raise linkage.InvalidArgument("model_version", "every message must name the same model version")
        version = message.model_version
        if not len(message.left) == len(message.right) == len(message.match_weight):
            raise linkage.InvalidArgument("left", "left, right and match_weight must be of one length")
        count += len(message.left)
        if count > MAX_SCORED_PAIRS:
            raise linkage.InvalidArgument("left", f"at most {MAX_SCORED_PAIRS} pairs per relink")
        lefts.append(np.fromiter(message.left, dtype=np.int64, count=len(message.left)))
        rights.append(np.fromiter(message.right, dtype=np.int64, count=len(message.right)))
        weights.append(np.fromiter(message.match_weight, dtype=np.float64, count=len(message.match_weight)))
    if version is None:
        raise linkage.InvalidArgument("model_version", "no pairs were sent")
    if any(not np.isfinite(w).all() for w in weights):
        raise linkage.InvalidArgument("match_weight", "must be finite")
    empty = np.zeros(0, dtype=np.int64)
    return (
        np.concatenate(lefts) if lefts else empty,
        np.concatenate(rights) if rights else empty,
        np.concatenate(weights) if weights else np.zeros(0),
        version,
    )

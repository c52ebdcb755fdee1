"""`idstitch demo`: a small realistic story sent to a running server, printed as it is stitched."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import grpc

from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

from ._connect import Connection

_DECISION = {
    pb.DECISION_NEW: "new person",
    pb.DECISION_DETERMINISTIC: "deterministic",
    pb.DECISION_PROBABILISTIC: "probabilistic",
}
_DAY = 86_400
_IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.4 Mobile/15E148 Safari/604.1"
)
_WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"
)


def _signal(
    event: str,
    channel: str,
    *ids: tuple[str, str],
    ip: str = "",
    city: str = "",
    at: float | None = None,
    user_agent: str = "",
) -> pb.Signal:
    signal = pb.Signal(
        event_id=event, channel=channel, identifiers=[pb.Identifier(namespace=n, value=v) for n, v in ids]
    )
    signal.timestamp.FromSeconds(int(time.time() if at is None else at))
    if ip:
        signal.context.ip = ip
        signal.context.geo.country = "DE"
        signal.context.geo.city = city
    if user_agent:
        signal.context.user_agent = user_agent
    return signal


def _safari_story(tag: str, ev: Callable[[int], str]) -> tuple[list[pb.Signal], str, str]:
    """Neighbours on their own home addresses (so that an address's rarity means something),
    then Clara's iPhone Safari on her home address for a week, logged in once, then its next
    cookie: Safari dropped the old one after seven days. The new cookie carries no login."""
    start = time.time() - 12 * _DAY
    home = f"198.51.100.{10 + int(tag, 16) % 200}"
    signals = [
        _signal(
            ev(100 + k),
            "web",
            ("cookie", f"neighbour-{tag}-{k}"),
            ip=f"192.0.2.{k + 1}",
            city="Berlin",
            at=start + (k % 7) * _DAY + 3600 * (8 + k % 12),
            user_agent=_WINDOWS_CHROME,
        )
        for k in range(40)
    ]
    old, new = f"safari-{tag}-old", f"safari-{tag}-new"
    for day in range(7):
        ids = [("cookie", old)] + ([("login", f"clara-{tag}")] if day == 0 else [])
        at = start + day * _DAY + 19 * 3600
        signals.append(_signal(ev(200 + day), "web", *ids, ip=home, city="Berlin", at=at, user_agent=_IPHONE_SAFARI))
    for day in (8, 9):
        at = start + day * _DAY + 20 * 3600
        signals.append(
            _signal(ev(300 + day), "web", ("cookie", new), ip=home, city="Berlin", at=at, user_agent=_IPHONE_SAFARI)
        )
    return signals, old, new


def run_demo(connection: Connection, out: object = print) -> int:
    say = out if callable(out) else print
    target = connection.target
    tag = secrets.token_hex(3)  # each run tells the story with fresh identifiers

    def ev(n: int) -> str:
        return f"demo-{tag}-{n}"

    laptop, phone, tablet = (f"cookie-{tag}-laptop", f"app-{tag}-phone", f"tablet-{tag}")
    anna, ben = f"anna-{tag}", f"ben-{tag}"
    story = [
        (
            "Anna browses the shop on her laptop, anonymous",
            _signal(ev(1), "web", ("cookie", laptop), ip="203.0.113.7", city="Berlin"),
        ),
        ("Anna opens the app on her phone", _signal(ev(2), "app", ("device", phone), ip="203.0.113.7", city="Berlin")),
        ("Anna logs in on the laptop", _signal(ev(3), "web", ("login", anna), ("cookie", laptop))),
        (
            "Anna logs in on the phone: laptop and phone become one person",
            _signal(ev(4), "app", ("login", anna), ("device", phone)),
        ),
        (
            "Anna clicks the newsletter (email is hashed on arrival)",
            _signal(ev(5), "email", ("email", f" Anna.{tag}@Example.org "), ("cookie", laptop)),
        ),
        ("The family tablet: Anna logs in", _signal(ev(6), "app", ("device", tablet), ("login", anna))),
        (
            "The family tablet: Ben logs in (no merge: the tablet follows Ben, marked shared)",
            _signal(ev(7), "app", ("device", tablet), ("login", ben)),
        ),
        (
            "A tracker sends cookie 'undefined' with Ben's login",
            _signal(ev(8), "web", ("cookie", "undefined"), ("login", ben)),
        ),
        ("The web shop retries event 3 (idempotent)", _signal(ev(3), "web", ("login", anna), ("cookie", laptop))),
    ]
    with connection.channel() as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        try:
            grpc.channel_ready_future(channel).result(timeout=5)
        except grpc.FutureTimeoutError:
            say(f"no idstitch server at {target}; start one with `make serve`")
            return 1
        say(f"Sending {len(story)} signals to {target}\n")
        try:
            _tell(stub, story, tag, ev, say)
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise
            say(
                f"{target} refused the demo ({error.code().name}: {error.details()}); it needs a token with the "
                "ingest, resolve, read and changes scopes, such as the admin token (see docs/security.md)"
            )
            return 1
    return 0


def _tell(
    stub: pb_grpc.IdentityServiceStub,
    story: list[tuple[str, pb.Signal]],
    tag: str,
    ev: Callable[[int], str],
    say: Callable[[str], object],
) -> None:
    laptop, phone, tablet = (f"cookie-{tag}-laptop", f"app-{tag}-phone", f"tablet-{tag}")
    anna, ben = f"anna-{tag}", f"ben-{tag}"
    for title, signal in story:
        result = stub.Ingest(pb.IngestRequest(signals=[signal]), timeout=10).results[0]
        how = "replayed, nothing changed" if result.duplicate else _DECISION.get(result.decision, "?")
        notes = []
        if result.merged_person_ids:
            notes.append(f"merged {', '.join(result.merged_person_ids)} into it")
        if result.conflicts:
            notes.append("; ".join(f"{c.identifier.namespace} conflict: {c.reason}" for c in result.conflicts))
        if result.ignored:
            notes.append(", ".join(f"ignored blocked {i.namespace}" for i in result.ignored))
        say(f"  {title}\n    -> {result.person_id} ({how}){'  ' + '; '.join(notes) if notes else ''}")
    lookups = [("cookie", laptop), ("device", phone), ("device", tablet), ("login", anna), ("login", ben)]
    resolved = stub.Resolve(pb.ResolveRequest(identifiers=[pb.Identifier(namespace=n, value=v) for n, v in lookups]))
    say("\nResolve:")
    for r in resolved.resolutions:
        shared = "  (shared: follows the last login)" if r.shared else ""
        say(f"  {r.identifier.namespace}:{r.identifier.value} -> {r.person_id}{shared}")
    person = stub.GetPerson(pb.GetPersonRequest(identifier=pb.Identifier(namespace="login", value=anna))).person
    say(f"\nGetPerson {person.person_id}: aliases {list(person.aliases)}, channels {list(person.channels)}")
    for i in person.identifiers:
        value = i.value[:16] + "… (keyed hash)" if i.hashed else i.value
        say(f"  {i.namespace}: {value}")
    _probabilistic_chapter(stub, tag, ev, say)
    say("\nChange feed entries of this run:")
    for change in stub.WatchChanges(pb.WatchChangesRequest(after_sequence=0, stop_at_end=True)):
        if change.event_id.startswith(f"demo-{tag}-"):
            kind = pb.ChangeKind.Name(change.kind).removeprefix("CHANGE_KIND_").lower()
            ident = f" {change.identifier.namespace}" if change.identifier.namespace else ""
            other = f" <- {change.other_person_id}" if change.other_person_id else ""
            say(f"  #{change.sequence} {kind}: {change.person_id}{other}{ident}")


def _probabilistic_chapter(
    stub: pb_grpc.IdentityServiceStub, tag: str, ev: Callable[[int], str], say: Callable[[str], object]
) -> None:
    signals, old, new = _safari_story(tag, ev)
    say("\nA probabilistic link: Clara's iPhone Safari drops its 7-day cookie")
    stub.Ingest(pb.IngestRequest(signals=signals), timeout=30)
    first, second = stub.Resolve(
        pb.ResolveRequest(identifiers=[pb.Identifier(namespace="cookie", value=v) for v in (old, new)])
    ).resolutions
    say(f"  cookie:{old} (logged in once) -> {first.person_id} ({_DECISION.get(first.decision, '?')})")
    if second.decision != pb.DECISION_PROBABILISTIC:
        say(f"  cookie:{new} -> {second.person_id}: not linked (the server runs without the visitor model?)")
        return
    say(f"  cookie:{new} (anonymous) -> {second.person_id} (probabilistic, p = {second.probability:.3f})")
    strict = stub.Resolve(
        pb.ResolveRequest(identifiers=[pb.Identifier(namespace="cookie", value=new)], deterministic_only=True)
    ).resolutions[0]
    say(f"  deterministic_only: cookie:{new} -> {strict.person_id} (its own component)")
    a, b = (pb.Identifier(namespace="cookie", value=v) for v in (new, old))
    explained = stub.Explain(pb.ExplainRequest(a=a, b=b))
    for step in explained.steps:
        if step.kind != pb.LINK_KIND_SOFT:
            continue
        say(f"  Explain: soft link, match weight {step.match_weight:+.2f} (model {step.model_version}):")
        for weight in step.weights:
            say(f"    {weight.comparison:<12} {weight.match_weight:+7.2f}")

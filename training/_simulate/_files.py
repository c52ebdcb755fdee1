"""Simulated signals on disk (JSON lines, optionally gzipped) and a summary to print."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any

from linkage import Context, Geo, Identifier, Signal
from linkage.modelling import ip_prefix

from ._traffic import SimulatedSignal, collector_paused

_SHARED_IP_PERSONS = 100
_CHUNK = 20_000  # lines parsed with the garbage collector paused


def write_jsonl(path: str | os.PathLike[str], signals: Iterable[SimulatedSignal]) -> int:
    """Write one JSON object per signal, with its true `person`; gzip when `path` ends in .gz.

    Gzip output leaves out the time of writing, so the same signals give the same bytes.
    Returns how many signals were written.
    """
    count = 0
    with _open(path, "w") as out:
        for item in signals:
            out.write(json.dumps(_as_dict(item), ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[SimulatedSignal]:
    """The signals `write_jsonl` wrote, equal to the originals; raises ValueError on a bad line."""
    reader = _Reader()
    with _open(path, "r") as lines:
        numbered = enumerate(lines, 1)
        while chunk := list(itertools.islice(numbered, _CHUNK)):
            with collector_paused():
                parsed: list[SimulatedSignal] = []
                for number, line in chunk:
                    if not line.strip():
                        continue
                    try:
                        parsed.append(reader.parse(json.loads(line)))
                    except (KeyError, TypeError, ValueError) as exc:
                        raise ValueError(f"{os.fspath(path)}:{number}: not a simulated signal ({exc})") from exc
            yield from parsed


def summary(signals: Iterable[SimulatedSignal]) -> dict[str, float | int]:
    """Counts worth printing about simulated traffic, in one pass.

    `persons`, `signals` and per-person averages; `identifiers_<namespace>` (distinct values);
    `identifiers_shared` (values used by two or more persons, e.g. family tablets);
    `persons_logged_in_share` (ever sent a login) and `persons_clicked_email_share`;
    `ips`, `ip_prefixes`, `max_persons_per_ip` and `ips_shared_by_100_persons` (office NATs,
    CGNAT addresses, hotspots); `signals_with_gps_share`, `signals_with_city_share`,
    `signals_ipv6_share`; `channel_<name>` signal counts; `days` from first to last signal.
    """
    persons: set[int] = set()
    users_of: dict[Identifier, int] = {}  # first person seen with a value, -1 once shared
    logged_in: set[int] = set()
    clicked: set[int] = set()
    ip_persons: dict[str, set[int]] = {}
    channels: Counter[str] = Counter()
    count = gps = city = ipv6 = 0
    first, last = float("inf"), float("-inf")
    for item in signals:
        signal, person = item.signal, item.person
        count += 1
        persons.add(person)
        for identifier in signal.identifiers:
            seen = users_of.setdefault(identifier, person)
            if seen != person and seen != -1:
                users_of[identifier] = -1
            if identifier.namespace == "login":
                logged_in.add(person)
            elif identifier.namespace == "email":
                clicked.add(person)
        context = signal.context
        if context.ip:
            ip_persons.setdefault(context.ip, set()).add(person)
            ipv6 += ":" in context.ip
        gps += context.geo.latitude is not None
        city += bool(context.geo.city)
        channels[signal.channel] += 1
        if signal.timestamp is not None:
            first, last = min(first, signal.timestamp), max(last, signal.timestamp)
    namespaces = Counter(identifier.namespace for identifier in users_of)
    share = ip_persons.values()
    result: dict[str, float | int] = {
        "persons": len(persons),
        "signals": count,
        "signals_per_person": count / len(persons) if persons else 0.0,
        "days": (last - first) / 86_400 if count else 0.0,
        "identifiers": len(users_of),
        **{f"identifiers_{ns}": n for ns, n in sorted(namespaces.items())},
        "identifiers_shared": sum(1 for p in users_of.values() if p == -1),
        "device_identifiers_per_person": (namespaces["cookie"] + namespaces["device"]) / max(len(persons), 1),
        "persons_logged_in_share": len(logged_in) / max(len(persons), 1),
        "persons_clicked_email_share": len(clicked) / max(len(persons), 1),
        "ips": len(ip_persons),
        "ip_prefixes": len({ip_prefix(ip) for ip in ip_persons}),
        "max_persons_per_ip": max((len(p) for p in share), default=0),
        f"ips_shared_by_{_SHARED_IP_PERSONS}_persons": sum(1 for p in share if len(p) >= _SHARED_IP_PERSONS),
        "signals_with_gps_share": gps / max(count, 1),
        "signals_with_city_share": city / max(count, 1),
        "signals_ipv6_share": ipv6 / max(count, 1),
        **{f"channel_{name}": n for name, n in sorted(channels.items())},
    }
    return result


def _open(path: str | os.PathLike[str], mode: str) -> IO[str]:
    if os.fspath(path).endswith(".gz"):
        raw = gzip.GzipFile(path, mode + "b", compresslevel=6, mtime=0)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    return open(path, mode, encoding="utf-8", newline="\n")


def _as_dict(item: SimulatedSignal) -> dict[str, Any]:
    signal = item.signal
    context = signal.context
    geo = context.geo
    return {
        "person": item.person,
        "event_id": signal.event_id,
        "timestamp": signal.timestamp,
        "channel": signal.channel,
        "identifiers": [[i.namespace, i.value] for i in signal.identifiers],
        "ip": context.ip,
        "country": geo.country,
        "city": geo.city,
        "latitude": geo.latitude,
        "longitude": geo.longitude,
        "user_agent": context.user_agent,
    }


class _Reader:
    """Parses rows, sharing the identifiers and contexts that repeat, as `simulate` does."""

    def __init__(self) -> None:
        self._identifiers: dict[tuple[str, str], Identifier] = {}
        self._contexts: dict[tuple[str, str, str, str], Context] = {}

    def parse(self, row: dict[str, Any]) -> SimulatedSignal:
        person = row["person"]
        if not isinstance(person, int):
            raise TypeError("person must be an integer")
        timestamp = row["timestamp"]
        signal = Signal(
            event_id=str(row["event_id"]),
            identifiers=tuple(self._identifier(str(ns), str(value)) for ns, value in row["identifiers"]),
            timestamp=None if timestamp is None else float(timestamp),
            channel=str(row["channel"]),
            context=self._context(row),
        )
        return SimulatedSignal(signal, person)

    def _identifier(self, namespace: str, value: str) -> Identifier:
        key = (namespace, value)
        found = self._identifiers.get(key)
        if found is None:
            found = self._identifiers[key] = Identifier(namespace, value)
        return found

    def _context(self, row: dict[str, Any]) -> Context:
        ip, country, city, user_agent = str(row["ip"]), str(row["country"]), str(row["city"]), str(row["user_agent"])
        latitude, longitude = row["latitude"], row["longitude"]
        if latitude is not None or longitude is not None:
            geo = Geo(country, city, _coordinate(latitude), _coordinate(longitude))
            return Context(ip, geo, user_agent)
        key = (ip, country, city, user_agent)
        found = self._contexts.get(key)
        if found is None:
            found = self._contexts[key] = Context(ip, Geo(country, city), user_agent)
        return found


def _coordinate(value: Any) -> float | None:
    return None if value is None else float(value)

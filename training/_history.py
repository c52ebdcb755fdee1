"""Comparison records from the stored history: one visitor profile per device identifier.

Each cookie or device id gets the evidence of the signals that carried it. Devices that were
hard-linked to the same login are true cross-device pairs; devices of different logins are
not. These labels come free with the data and never feed the unsupervised training itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

import linkage
from linkage.modelling import AddressWeeks, EventRow, Evidence, ProfileRecord, history_records, split_key


@dataclass(frozen=True, slots=True)
class DeviceProfiles:
    """Profiles of device identifiers, with the login each one's person holds (None if none)."""

    records: list[ProfileRecord]
    keys: list[str]
    labels: list[str | None]


def device_profiles(store: linkage.Store, policy: linkage.IdentifierPolicy) -> DeviceProfiles:
    identifiers = [(row.key, row.namespace, row.person_id) for row in store.load().identifiers]
    return _profiles(identifiers, store.iter_events(), policy)


def snapshot_profiles(directory: Path, policy: linkage.IdentifierPolicy) -> DeviceProfiles:
    """`device_profiles` from a snapshot a running server wrote (`WriteSnapshot`): Parquet."""
    con = duckdb.connect()
    try:
        identifiers_file, events_file = (str(directory / f"{name}.parquet").replace("'", "''")
                                         for name in ("identifiers", "events"))  # fmt: skip
        identifiers = con.execute(f"SELECT key, namespace, person_id FROM '{identifiers_file}'").fetchall()
        rows = con.execute(
            "SELECT event_id, ts, received_at, channel, person_id, identifier_keys, ip, country, city, latitude, "
            f"longitude, user_agent FROM '{events_file}' ORDER BY ts, received_at"
        ).fetchall()
    except duckdb.Error as exc:
        raise ValueError(f"{directory} is not a readable snapshot: {exc}") from exc
    finally:
        con.close()
    events = (
        EventRow(e, ts / 1e6, at / 1e6, ch or "", p, tuple(k or ()), ip or "", co or "", ci or "", la, lo, ua or "")
        for e, ts, at, ch, p, k, ip, co, ci, la, lo, ua in rows
    )
    return _profiles([(k, n, int(p)) for k, n, p in identifiers], events, policy)


def _profiles(
    identifiers: list[tuple[str, str, int]], events: Iterable[EventRow], policy: linkage.IdentifierPolicy
) -> DeviceProfiles:
    person_of = {key: person for key, _, person in identifiers}
    login_of = {person: key for key, namespace, person in identifiers if namespace == "login"}
    device_namespaces: dict[str, bool] = {}

    def is_device(key: str) -> bool:
        namespace = split_key(key)[0]
        if namespace not in device_namespaces:
            ns = policy.namespace(namespace)
            device_namespaces[namespace] = ns is not None and not ns.unique and not ns.pii
        return device_namespaces[namespace]

    evidence: dict[str, Evidence] = {}
    weeks = AddressWeeks()
    for event in events:
        if event.ip:
            weeks.observe(event.timestamp, event.ip)
        context = linkage.Context(
            ip=event.ip,
            geo=linkage.Geo(event.country, event.city, event.latitude, event.longitude),
            user_agent=event.user_agent,
        )
        for key in event.identifier_keys:
            if is_device(key):
                evidence.setdefault(key, Evidence()).observe(event.timestamp, context)
    keys = list(evidence)
    records: list[ProfileRecord] = []
    labels: list[str | None] = []
    kept: list[str] = []
    for position, record in history_records(list(evidence.values()), weeks):
        key = keys[position]
        records.append(record)
        kept.append(key)
        person = person_of.get(key)
        labels.append(None if person is None else login_of.get(person))
    return DeviceProfiles(records, kept, labels)

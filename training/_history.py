"""Comparison records from the stored history: one visitor profile per device identifier.

Each cookie or device id gets the evidence of the signals that carried it. Devices that were
hard-linked to the same login are true cross-device pairs; devices of different logins are
not. These labels come free with the data and never feed the unsupervised training itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import linkage
from linkage.modelling import Evidence, ProfileRecord, history_records, split_key


@dataclass(frozen=True, slots=True)
class DeviceProfiles:
    """Profiles of device identifiers, with the login each one's person holds (None if none)."""

    records: list[ProfileRecord]
    keys: list[str]
    labels: list[str | None]


def device_profiles(store: linkage.Store, policy: linkage.IdentifierPolicy) -> DeviceProfiles:
    state = store.load()
    person_of = {row.key: row.person_id for row in state.identifiers}
    login_of = {row.person_id: row.key for row in state.identifiers if row.namespace == "login"}
    device_namespaces: dict[str, bool] = {}

    def is_device(key: str) -> bool:
        namespace = split_key(key)[0]
        if namespace not in device_namespaces:
            ns = policy.namespace(namespace)
            device_namespaces[namespace] = ns is not None and not ns.unique and not ns.pii
        return device_namespaces[namespace]

    evidence: dict[str, Evidence] = {}
    for event in store.iter_events():
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
    for position, record in history_records(list(evidence.values())):
        key = keys[position]
        records.append(record)
        kept.append(key)
        person = person_of.get(key)
        labels.append(None if person is None else login_of.get(person))
    return DeviceProfiles(records, kept, labels)

"""Profile records as the Arrow tables Splink takes."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from linkage.modelling import ProfileRecord

# The column that carries a device's login in training tables (None: no login).
LABEL_COLUMN = "login_label"


def profile_table(records: Sequence[ProfileRecord], labels: Sequence[str | None] | None = None) -> pa.Table:
    """One row per record; with `labels`, also the LABEL_COLUMN."""
    if labels is None:
        return pa.Table.from_pylist([r.as_row() for r in records], schema=PROFILE_SCHEMA)
    rows = [r.as_row() | {LABEL_COLUMN: label} for r, label in zip(records, labels, strict=True)]
    return pa.Table.from_pylist(rows, schema=PROFILE_SCHEMA.append(pa.field(LABEL_COLUMN, pa.string())))


PROFILE_SCHEMA = pa.schema(
    [
        ("unique_id", pa.int64()),
        ("top_ip", pa.string()),
        ("tf_top_ip", pa.float64()),
        ("ips", pa.list_(pa.string())),
        ("ip_prefixes", pa.list_(pa.string())),
        ("city", pa.string()),
        ("country", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("user_agent_family", pa.string()),
        ("device_kind", pa.string()),
        ("active_hours", pa.list_(pa.int64())),
        ("active_days", pa.list_(pa.int64())),
        ("user_agent", pa.string()),
        ("agent_first_seen", pa.int64()),
        ("agent_last_seen", pa.int64()),
        ("homes", pa.list_(pa.string())),
        ("places", pa.list_(pa.string())),
        ("tf_user_agent", pa.float64()),
    ]
)

"""Profile records as the Arrow tables Splink takes."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from linkage.modelling import ProfileRecord, profile_schema

# The column that carries a device's login in training tables (None: no login).
LABEL_COLUMN = "login_label"


def profile_table(records: Sequence[ProfileRecord], labels: Sequence[str | None] | None = None) -> pa.Table:
    """One row per record; with `labels`, also the LABEL_COLUMN."""
    if labels is None:
        return pa.Table.from_pylist([r.as_row() for r in records], schema=PROFILE_SCHEMA)
    rows = [r.as_row() | {LABEL_COLUMN: label} for r, label in zip(records, labels, strict=True)]
    return pa.Table.from_pylist(rows, schema=PROFILE_SCHEMA.append(pa.field(LABEL_COLUMN, pa.string())))


PROFILE_SCHEMA = profile_schema()

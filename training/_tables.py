"""Profile records as the Arrow tables Splink takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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


def term_frequency_lookups(table: pa.Table, model: dict[str, Any]) -> tuple[pa.Table, dict[str, pa.Table]]:
    """The profiles carry the online index's term frequencies (`tf_<column>`): as Splink
    lookups (value -> tf) they are what Splink adjusts by, instead of frequencies it would count
    among these profiles alone; the columns themselves go, or Splink's join would repeat them."""
    columns = sorted(
        {
            level["tf_adjustment_column"]
            for comparison in model["comparisons"]
            for level in comparison["comparison_levels"]
            if level.get("tf_adjustment_column")
        }
    )
    lookups = {}
    for column in columns:
        tf = f"tf_{column}"
        pairs = table.select([column, tf]).filter(pc.is_valid(table.column(column)))
        lookups[column] = pairs.group_by(column).aggregate([(tf, "max")]).rename_columns([column, tf])
    return table.drop_columns([f"tf_{c}" for c in columns]), lookups

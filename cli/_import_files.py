"""Customer-record files for `idstitch import`: CSV and Parquet read through DuckDB.

Every cell is read as text (`all_varchar`), so nothing is type-coerced on the client: a
postcode keeps its leading zero and a bad date reaches the server's validation, which
names the field. Rows are fetched in batches, so a file of a million rows never sits in
one Python list.

Messages built here name a line and a field, never a cell's value: the cells are
personal data.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import re
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb

# The columns a file may carry; anything else is ignored (and said once).
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
    "updated_at",
)
SUFFIXES = (".csv", ".csv.gz", ".parquet")
_DELIMITERS = (",", ";", "\t", "|")


class FileReadError(Exception):
    """The file as a whole cannot be read; nothing of it is sent."""


@dataclass(frozen=True, order=True)
class Issue:
    """A row left out: where (ordinal for sorting, and how to print it), which field, what is wrong."""

    order: int
    where: str
    field: str
    message: str


def is_import_file(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(SUFFIXES)


class CustomerFile:
    """One file opened for reading: its usable columns and a batch iterator over its rows.

    `rows` yields tuples of text in COLUMNS order (absent columns and NULL cells are ""); the n-th row
    yielded (from 0) is located by `locate(n)`. Structurally broken CSV lines are never
    yielded; `unreadable()` lists them once `rows` is exhausted.
    """

    def __init__(
        self,
        path: Path,
        kind: str,
        columns: Sequence[str],
        ignored: Sequence[str],
        approx_rows: int,
        con: Any,
        select: str,
        delimiter: str = ",",
        header: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.kind = kind  # "csv" or "parquet"
        self.columns = tuple(columns)
        self.ignored = tuple(ignored)
        self.approx_rows = approx_rows
        self._con = con
        self._select = select
        self._delimiter = delimiter
        self._header = tuple(header)
        self._unreadable: list[Issue] = []
        self._rejected: list[int] = []  # DuckDB's "line" (a record number) of each rejected CSV record
        self._layout: _CsvLayout | None = None
        self._skip: list[int] | None = None

    def rows(self, batch: int) -> Iterator[list[tuple[str, ...]]]:
        """Batches of rows, each a tuple of text in COLUMNS order ("" for a missing column or cell)."""
        try:
            cursor = self._con.execute(self._select)
            while chunk := cursor.fetchmany(batch):
                yield chunk
            if self.kind == "csv":
                self._collect_rejects()
        except duckdb.Error as exc:
            raise FileReadError(_duckdb_message(exc)) from None

    def unreadable(self) -> list[Issue]:
        return list(self._unreadable)

    def locate(self, index: int) -> Issue:
        """An Issue skeleton (order and where, no field or message) for the `index`-th row yielded."""
        if self.kind == "parquet":
            # One file read in order (DuckDB preserves insertion order), so row n is yielded n-th.
            return Issue(index + 1, f"row {index + 1}", "", "")
        if self._skip is None:
            self._skip = sorted(set(self._rejected) | set(self._csv_layout().blanks))
        return self._at_record(_nth_not_in(index, self._skip))

    def close(self) -> None:
        self._con.close()

    # -- CSV line bookkeeping ---------------------------------------------------------------
    #
    # DuckDB gives no position for a good CSV row, and the "line" of a rejected one counts
    # records (a quoted value spanning lines is one) with blank lines included. So rows are
    # located in two steps: the n-th good row is the n-th record that is neither blank nor
    # rejected, and a record's physical line comes from one pass of Python's csv module, done
    # only when there is something to report.

    def _collect_rejects(self) -> None:
        rejects = self._con.execute(
            "SELECT line, column_name, error_type, error_message FROM reject_errors ORDER BY line, column_idx"
        ).fetchall()
        by_record: dict[int, list[tuple[str | None, str, str]]] = {}
        for line, column, kind, message in rejects:
            by_record.setdefault(int(line), []).append((column, str(kind), str(message)))
        self._rejected = sorted(by_record)
        for record in self._rejected:
            errors = by_record[record]
            base = self._at_record(record)
            field = self._header_name(errors[0][0])
            self._unreadable.append(Issue(base.order, base.where, field, _structural_message(errors[0][1], errors)))

    def _header_name(self, column: str | None) -> str:
        if column is None or not column.startswith("c"):
            return "row"
        try:
            return self._header[int(column[1:])]
        except (ValueError, IndexError):
            return "row"

    def _at_record(self, record: int) -> Issue:
        starts = self._csv_layout().starts
        if 0 < record <= len(starts):
            line = starts[record - 1]
            return Issue(line, str(line), "", "")
        # Past what the line pass could follow: DuckDB's record number is the best we have.
        return Issue(record, f"record {record}", "", "")

    def _csv_layout(self) -> _CsvLayout:
        if self._layout is None:
            self._layout = _record_layout(self.path, self._delimiter)
        return self._layout


def open_customer_file(path: Path) -> CustomerFile:
    if not path.is_file():
        raise FileReadError("no such file")
    name = path.name.lower()
    con = duckdb.connect()
    try:
        # Timestamps in Parquet print in UTC, not in this machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        if name.endswith(".parquet"):
            return _open_parquet(path, con)
        if name.endswith((".csv", ".csv.gz")):
            return _open_csv(path, con)
    except duckdb.Error as exc:
        con.close()
        raise FileReadError(_duckdb_message(exc)) from None
    except FileReadError:
        con.close()
        raise
    con.close()
    raise FileReadError("not a .csv, .csv.gz or .parquet file")


def _open_parquet(path: Path, con: Any) -> CustomerFile:
    literal = _sql_string(str(path))
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal})").fetchall()
    present = [str(row[0]) for row in described]
    known, ignored = _split_columns(present)
    total = con.execute(f"SELECT sum(num_rows) FROM parquet_file_metadata({literal})").fetchone()
    by_name = {p.strip().lower(): p for p in present}
    picks = _picks({c: f"CAST({_sql_ident(by_name[c])} AS VARCHAR)" for c in known})
    select = f"SELECT {picks} FROM read_parquet({literal})"
    return CustomerFile(
        path=path,
        kind="parquet",
        columns=tuple(known),
        ignored=tuple(ignored),
        approx_rows=int(total[0] or 0) if total else 0,
        con=con,
        select=select,
    )


def _open_csv(path: Path, con: Any) -> CustomerFile:
    header_line = _first_line(path)
    if not header_line.strip():
        raise FileReadError("empty file: expected a header line naming the columns")
    delimiter = _sniff_delimiter(header_line)
    header = next(csv.reader([header_line], delimiter=delimiter), [])
    names = tuple(h.strip().lower() for h in header)
    duplicates = sorted({n for n in names if names.count(n) > 1 and n in COLUMNS})
    if duplicates:
        raise FileReadError(f"header names {', '.join(duplicates)} more than once")
    known, ignored = _split_columns(names)
    # The header is read here, not sniffed by DuckDB: its sniffer gives up on a file whose
    # broken quoting it cannot explain, and one bad line must not cost the whole file.
    # Positional column names (c0, c1, ...) keep odd header text out of the SQL.
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
    picks = _picks({c: f"c{names.index(c)}" for c in known})
    select = (
        f"SELECT {picks} FROM read_csv({_sql_string(str(path))}, header = true, auto_detect = false, "
        f"columns = {columns}, delim = {_sql_string(delimiter)}, quote = '\"', escape = '\"', "
        "all_varchar = true, store_rejects = true)"
    )
    return CustomerFile(
        path=path,
        kind="csv",
        columns=tuple(known),
        ignored=tuple(ignored),
        approx_rows=_approx_csv_rows(path),
        con=con,
        select=select,
        delimiter=delimiter,
        header=names,
    )


def _picks(present: dict[str, str]) -> str:
    """The select list: every column of COLUMNS in order, as text, "" where absent or NULL."""
    return ", ".join(f"coalesce({present[c]}, '')" if c in present else "''" for c in COLUMNS)


def _split_columns(present: Sequence[str]) -> tuple[list[str], list[str]]:
    lowered = [p.strip().lower() for p in present]
    known = [c for c in COLUMNS if c in lowered]
    # An empty name (a trailing delimiter in the header) is not worth mentioning.
    ignored = [p for p, low in zip(present, lowered, strict=True) if low and low not in COLUMNS]
    return known, ignored


def _open_text(path: Path) -> IO[str]:
    # Broken bytes must not stop the line count: DuckDB reports them as rows of their own.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as text:
            return text.readline().rstrip("\r\n")
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror or type(exc).__name__}") from None
    except EOFError:
        raise FileReadError("cannot read: truncated compressed file") from None


def _sniff_delimiter(header: str) -> str:
    """The delimiter that splits the header into the most known column names (comma on a tie)."""

    def score(delimiter: str) -> int:
        cells = next(csv.reader([header], delimiter=delimiter), [])
        return sum(1 for c in cells if c.strip().lower() in COLUMNS)

    return max(_DELIMITERS, key=score)


def _approx_csv_rows(path: Path) -> int:
    """Lines after the header, for progress only (a value spanning lines counts twice)."""
    if path.name.lower().endswith(".gz"):
        return 0
    count = 0
    last = b"\n"
    with open(path, "rb") as raw:
        while block := raw.read(1 << 22):
            count += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        count += 1
    return max(count - 1, 0)


@dataclass(frozen=True)
class _CsvLayout:
    starts: array[int]  # physical line (from 1) where each record starts, header included
    blanks: list[int]  # record numbers (from 1) of blank lines, which DuckDB skips but counts


def _record_layout(path: Path, delimiter: str) -> _CsvLayout:
    starts: array[int] = array("q")
    blanks: list[int] = []
    previous_limit = csv.field_size_limit()
    # A value with an unclosed quote runs to the end of the file; it must not stop the count.
    csv.field_size_limit(sys.maxsize)
    try:
        with _open_text(path) as text:
            reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
            line = 1
            for record in reader:
                starts.append(line)
                if not record:
                    blanks.append(len(starts))
                line = reader.line_num + 1
    except (OSError, EOFError, csv.Error):
        pass  # what was counted still locates the rows before the damage; later ones say "record N"
    finally:
        csv.field_size_limit(previous_limit)
    return _CsvLayout(starts, blanks)


def _nth_not_in(index: int, skip: Sequence[int]) -> int:
    """The record number (header = 1) of the `index`-th data record (from 0) not in sorted `skip`.

    A fixed point over the exclusions rather than a walk over the records, so it costs
    their number, not the file's.
    """
    passed = -1
    candidate = index + 2
    while True:
        now = bisect.bisect_right(skip, candidate) - bisect.bisect_right(skip, 1)
        if now == passed:
            return candidate
        passed = now
        candidate = index + 2 + passed


_FOUND = re.compile(r"Found:\s*(\d+)")
_EXPECTED = re.compile(r"Expected Number of Columns:\s*(\d+)")


def _structural_message(kind: str, errors: Sequence[tuple[str | None, str, str]]) -> str:
    # DuckDB's own messages may quote the line; these say what is wrong without the data.
    kind = kind.upper()
    if kind in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        found = [int(m.group(1)) for _, _, text in errors if (m := _FOUND.search(text))]
        expected = next((int(m.group(1)) for _, _, text in errors if (m := _EXPECTED.search(text))), None)
        got = (min(found) if kind == "MISSING COLUMNS" else max(found)) if found else None
        counts = f": expected {expected}, found {got}" if expected is not None and got is not None else ""
        return ("too few columns" if kind == "MISSING COLUMNS" else "too many columns") + counts
    if kind == "UNQUOTED VALUE":
        return "badly quoted value (a quote not closed, or text after a closing quote)"
    if kind in ("INVALID ENCODING", "INVALID UNICODE"):
        return "not valid UTF-8"
    if kind == "LINE SIZE OVER MAXIMUM":
        return "line longer than the reader's maximum line size"
    return f"unreadable row ({kind.lower()})"


def _duckdb_message(exc: Exception) -> str:
    # The first line of DuckDB's message; its later lines can quote file content.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\s+", " ", first)[:300]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

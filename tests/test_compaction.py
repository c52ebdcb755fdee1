"""Compaction and store opening edge cases, on real DuckDB files (the server path is in test_forget)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from linkage import DuckDBStore, StoreLocked, compact_store
from tests._servers import REPO


def _store(path: Path) -> Path:
    DuckDBStore(path).close()
    return path


def _sql(path: Path, *statements: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()


def test_a_table_this_build_does_not_know_stops_compaction_and_stays(tmp_path: Path) -> None:
    path = _store(tmp_path / "idstitch.duckdb")
    _sql(path, "CREATE TABLE notes (text VARCHAR)", "INSERT INTO notes VALUES ('keep me')")
    with pytest.raises(RuntimeError, match="notes"):
        compact_store(path)
    assert "notes" in _tables(path)
    assert not list(tmp_path.glob("*compacting*"))


def test_a_stray_copy_of_an_interrupted_run_is_removed(tmp_path: Path) -> None:
    path = _store(tmp_path / "idstitch.duckdb")
    stray = tmp_path / ".idstitch.duckdb.compacting-x1y2"
    stray.mkdir()
    (stray / "idstitch.duckdb").write_bytes(b"half a file")
    done = compact_store(path)
    assert not stray.exists()
    assert done.rows["meta"] == 1 and "persons" in _tables(path)


def test_a_store_another_process_holds_is_refused_as_locked(tmp_path: Path) -> None:
    path = _store(tmp_path / "idstitch.duckdb")
    hold = f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('open', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreLocked):
            compact_store(path)
    finally:
        holder.communicate("", timeout=30)


def test_a_file_that_is_no_store_is_not_called_locked(tmp_path: Path) -> None:
    path = tmp_path / "idstitch.duckdb"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(RuntimeError, match="cannot open") as raised:
        compact_store(path)
    assert not isinstance(raised.value, StoreLocked)
    result = subprocess.run(
        [sys.executable, "-m", "cli", "compact", "--data-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "stop the server" not in result.stderr and "Traceback" not in result.stderr


def test_a_schema_version_this_build_refuses_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "idstitch.duckdb"
    _sql(
        path,
        "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        "INSERT INTO meta VALUES ('schema_version', '99')",
    )
    with pytest.raises(RuntimeError, match="schema version 99"):
        DuckDBStore(path)
    assert _tables(path) == {"meta"}

"""Training the customer model on FEBRL records, end to end, and reading customer-record files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from splink import DuckDBAPI, Linker

from linkage.customer._catalogue import CUSTOMER_COMPARISONS, CustomerLevel
from scripts.febrl_records import febrl3_records, febrl4_records, write_records
from tests._servers import REPO
from training import CustomerRecordsError, CustomerTrainConfig, read_customer_records, run_train_customer
from training._customer_train import UNOBSERVED_M, fill_unobserved

HEADER = "source_system,source_key,given_name,family_name,date_of_birth,address,postcode,city,email,phone"


def test_training_on_febrl3_gives_a_model_splink_loads_with_every_catalogue_level(tmp_path: Path) -> None:
    records = febrl3_records()
    # Both readers at once: the first half as CSV, the rest as Parquet.
    files = [tmp_path / "a.csv", tmp_path / "b.parquet"]
    write_records(records[:2500], files[0])
    write_records(records[2500:], files[1])
    out = tmp_path / "model"
    lines: list[str] = []

    trained = run_train_customer(files, CustomerTrainConfig(out_dir=out, u_max_pairs=1e6), progress=lines.append)

    assert any("estimating u" in line for line in lines) and any("by EM" in line for line in lines)
    model = json.loads(trained.model_path.read_text())
    found: set[CustomerLevel] = set()
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            parsed = CustomerLevel.parse(level["sql_condition"])
            assert parsed is not None, level["sql_condition"]
            found.add(parsed)
            if not level.get("is_null_level"):
                # Every level has explicit parameters, observed in training or not.
                assert 0 < level["m_probability"] <= 1 and 0 < level["u_probability"] <= 1, level
    assert found == {level for comparison in CUSTOMER_COMPARISONS for level in comparison.levels}
    tf_columns = {
        level["tf_adjustment_column"]
        for comparison in model["comparisons"]
        for level in comparison["comparison_levels"]
        if "tf_adjustment_column" in level
    }
    assert tf_columns == {"given_name", "family_name", "city"}

    metrics = json.loads(trained.metrics_path.read_text())
    assert metrics["threshold"] == 0.9 and metrics["tf_population"] == 5000
    assert metrics["model_version"] == trained.version
    evaluation = metrics["evaluation"]
    assert evaluation["positives"] == 6538  # FEBRL3's true pairs, all across systems
    assert evaluation["at_threshold"]["precision"] > 0.99 and evaluation["at_threshold"]["f1"] > 0.95
    index = (out / "customer-report" / "index.html").read_text()
    assert index.count("<tr>") > 5
    for chart in ("match-weights.html", "m-u-parameters.html", "waterfalls.html"):
        assert f'href="{chart}"' in index and (out / "customer-report" / chart).is_file(), chart

    # Splink loads the very file and scores with it.
    table = read_customer_records(files).table
    linker = Linker(DuckDBAPI().register(table, dataset_display_name="febrl3"), str(trained.model_path))
    left = {
        "unique_id": "hotel:1",
        "source_system": "hotel",
        "given_name": "anna",
        "family_name": "meier",
        "date_of_birth": "1980-03-12",
        "address": "12 harbour street",
        "postcode": "2000",
        "city": "sydney",
        "document_id": None,
    }
    right = {**left, "unique_id": "shop:9", "source_system": "shop", "given_name": "ana", "date_of_birth": "1980-12-03"}
    scored = linker.inference.score_pair(left, right).as_record_list()[0]
    assert scored["match_probability"] > 0.9  # a typo in the name and day and month swapped


def test_records_are_normalised_and_keyed_by_system_and_key(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        HEADER + ",true_id\n"
        "hotel,007,  José ,Müller-Lüdenscheidt,1980-02-30,12 Harbour St.,0800,Zürich,,,p1\n"
        "shop,007,Jose,Mueller,1980-03-01,,0800,zurich,a@b.c,,p1\n"
        "shop,8,Anna,Smith,19800301,,,,,,p1\n"
        "shop,8,Anna,Smith,1980-03-01,,,,,,p1\n"
        ",9,no,system,,,,,,,p2\n"
    )

    records = read_customer_records([path])

    rows = records.table.to_pylist()
    assert [r["unique_id"] for r in rows] == ["hotel:007", "shop:007", "shop:8"]
    assert rows[0] == {
        "unique_id": "hotel:007",
        "source_system": "hotel",
        "given_name": "jose",
        "family_name": "muller ludenscheidt",
        "date_of_birth": None,  # 30 February
        "address": "12 harbour st",
        "postcode": "0800",  # read as text: the leading zero stays
        "city": "zurich",
        "document_id": None,  # an optional column, absent from this file
    }
    assert rows[2]["date_of_birth"] == "1980-03-01"  # the later row of a repeated key wins
    assert (records.rows_read, records.without_key, records.repeated_keys, records.invalid_dates) == (5, 1, 1, 2)
    # Three records of p1, two in one system: the two cross-system pairs count, the other not.
    assert records.true_pair_count() == 2
    assert records.systems() == {"hotel": 1, "shop": 2}


def test_records_without_truth_have_no_true_ids(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(HEADER + "\nhotel,1,a,b,,,,,,\n")
    records = read_customer_records([path])
    assert records.true_ids is None and records.true_pair_count() == 0 and len(records) == 1


def test_unreadable_files_are_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(CustomerRecordsError, match="no such file"):
        read_customer_records([tmp_path / "missing.csv"])
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(CustomerRecordsError, match=r"broken\.parquet: cannot read"):
        read_customer_records([broken])
    odd = tmp_path / "records.xlsx"
    odd.write_text("x")
    with pytest.raises(CustomerRecordsError, match="not a CSV or Parquet"):
        read_customer_records([odd])


def test_train_command_names_the_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text("source_system,source_key,given_name,family_name,address,city\nhotel,1,a,b,c,d\n")
    result = _idstitch("train", "--model", "customer", "--records", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "crm.csv: missing columns date_of_birth, postcode" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_train_command_rejects_records_for_the_visitor_model_and_a_bad_threshold(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(HEADER + "\n")
    visitor = _idstitch("train", "--records", str(path), "--out", str(tmp_path / "out"))
    assert visitor.returncode == 2 and "--model customer" in visitor.stderr
    threshold = _idstitch("train", "--model", "customer", "--records", str(path), "--threshold", "1.5")
    assert threshold.returncode == 2 and "threshold" in threshold.stderr
    missing = _idstitch("train", "--model", "customer", "--records", str(tmp_path / "nope.parquet"))
    assert missing.returncode == 2 and "nope.parquet: no such file" in missing.stderr


def test_unobserved_levels_get_explicit_parameters() -> None:
    model: dict[str, Any] = {
        "comparisons": [
            {
                "comparison_levels": [
                    {"sql_condition": "x IS NULL", "label_for_charts": "missing", "is_null_level": True},
                    {"sql_condition": "a", "label_for_charts": "same", "m_probability": 0.9, "u_probability": 0.01},
                    {"sql_condition": "b", "label_for_charts": "swapped", "u_probability": 0.001},
                    {"sql_condition": "ELSE", "label_for_charts": "else", "m_probability": 0.1},
                ]
            }
        ]
    }

    notes = fill_unobserved(model, u_max_pairs=1e6)

    levels: list[dict[str, Any]] = model["comparisons"][0]["comparison_levels"]
    assert levels[2]["m_probability"] == UNOBSERVED_M and levels[3]["u_probability"] == 1e-6
    assert sum(level.get("m_probability", 0.0) for level in levels) == pytest.approx(1.0)
    assert "m_probability" not in levels[0] and len(notes) == 2


def test_febrl4_records_have_two_systems_and_iso_dates() -> None:
    records = febrl4_records()
    assert len(records) == 10_000
    assert {r["source_system"] for r in records} == {"hotel", "shop"}
    assert len({r["true_id"] for r in records}) == 5000
    first = next(r for r in records if r["source_key"] == "rec-1070-org")
    assert first["date_of_birth"] == "1915-11-11" and first["city"] == "winston hills"
    assert first["address"] == "8 stanley street miami" and first["true_id"] == "1070"
    assert all(r["date_of_birth"] == "" or len(r["date_of_birth"]) == 10 for r in records)


def test_febrl3_puts_no_two_records_of_a_person_in_one_system() -> None:
    records = febrl3_records()
    keys = [(r["true_id"], r["source_system"]) for r in records]
    assert len(records) == 5000 and len(set(keys)) == len(keys)


def _idstitch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120)

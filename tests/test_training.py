"""Training on simulated traffic, end to end: simulate, replay, train with Splink, load the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from splink import DuckDBAPI, Linker

import linkage
from linkage.visitor._model import VisitorModel
from linkage.visitor._profile import ProfileRecord
from linkage.visitor._scorer import VisitorScorer
from tests._servers import REPO
from training import SimulationConfig, TrainConfig, read_jsonl, run_train, simulate, write_jsonl
from training._tables import profile_table


def test_training_on_simulated_traffic_gives_a_model_splink_and_the_scorer_both_load(tmp_path: Path) -> None:
    signals_path = tmp_path / "signals.jsonl.gz"
    simulated = simulate(SimulationConfig(persons=1500, days=14, seed=5))
    write_jsonl(signals_path, simulated)
    out = tmp_path / "model"
    lines: list[str] = []

    trained = run_train(
        linkage.LinkageConfig(hash_secret=b"test"),
        TrainConfig(out_dir=out, u_max_pairs=1e6),
        signals=signals_path,
        progress=lines.append,
    )

    assert any("device profiles" in line for line in lines) and any("held-out links" in line for line in lines)
    metrics = json.loads(trained.metrics_path.read_text())
    assert 0 < metrics["threshold"] < 1 and metrics["tf_population"] > 0
    assert metrics["evaluation"]["positives"] > 0
    index = (out / "report" / "index.html").read_text()
    assert index.count("<tr>") > 5
    for chart in ("match-weights.html", "m-u-parameters.html", "waterfalls.html"):
        assert f'href="{chart}"' in index and (out / "report" / chart).stat().st_size > 10_000, chart

    model = VisitorModel.load(trained.model_path)
    assert model.threshold == metrics["threshold"] and model.version
    assert sum(1 for _ in read_jsonl(signals_path)) == len(simulated)
    # Splink loads the very file and scores with it, as the scorer does.
    db = DuckDBAPI()
    pair = [
        ProfileRecord(1, "81.2.3.4", 0.001, ("81.2.3.4",), ("81.2.3.0/24",), "DE/berlin", "DE", None, None,
                      "ios/safari/phone", "phone", (19, 20), (20000, 20001)),
        ProfileRecord(2, "81.2.3.4", 0.001, ("81.2.3.4",), ("81.2.3.0/24",), "DE/berlin", "DE", None, None,
                      "windows/chrome/desktop", "desktop", (19, 21), (20000, 20002)),
    ]  # fmt: skip
    linker = Linker(db.register(profile_table(pair), dataset_display_name="pair"), str(trained.model_path))
    splink_weight = linker.inference.score_pair(pair[0].as_row(), pair[1].as_row()).as_record_list()[0]["match_weight"]
    encoded = model.scorer.encode(pair)
    ours = model.scorer.score(encoded.take([0]), encoded.take([1])).match_weight[0]
    assert ours == pytest.approx(splink_weight, abs=1e-6)


def test_simulate_command_writes_signals_with_the_truth(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "cli", "simulate", "--persons", "200", "--days", "5", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "persons_logged_in_share" in result.stdout
    first = json.loads(out.read_text().splitlines()[0])
    assert "person" in json.dumps(first)


def test_train_command_trains_on_simulated_signals_in_a_private_scratch_directory(tmp_path: Path) -> None:
    signals = tmp_path / "sim.jsonl.gz"
    write_jsonl(signals, simulate(SimulationConfig(persons=400, days=7, seed=8)))
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-m", "cli", "train", "--signals", str(signals), "--out", str(out), "--no-report"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "held-out links" in result.stdout
    assert VisitorModel.load(out / "visitor-model.json").version


@pytest.mark.slow
def test_training_on_spark_gives_the_model_training_on_duckdb_gives(tmp_path: Path) -> None:
    """`train --engine spark` estimates on Splink's Spark backend (local[2]) and writes the
    model in the catalogue's dialect: m from the labels is the same as on DuckDB, and so is u
    wherever random sampling takes every pair; both serve the same held-out figures."""
    signals = tmp_path / "signals.jsonl.gz"
    write_jsonl(signals, simulate(SimulationConfig(persons=400, days=14, seed=5)))
    models = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / engine
        result = subprocess.run(
            [sys.executable, "-m", "cli", "train", "--signals", str(signals), "--out", str(out), "--no-report",
             "--engine", engine],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        models[engine] = json.loads((out / "visitor-model.json").read_text())
        VisitorScorer.from_model(out / "visitor-model.json")  # the online scorer compiles it
    duckdb, spark = models["duckdb"], models["spark"]
    assert spark["sql_dialect"] == "duckdb"
    for ours, theirs in zip(duckdb["comparisons"], spark["comparisons"], strict=True):
        for a, b in zip(ours["comparison_levels"], theirs["comparison_levels"], strict=True):
            assert a["sql_condition"] == b["sql_condition"]
            if a.get("m_probability") is not None:
                assert b["m_probability"] == pytest.approx(a["m_probability"], rel=1e-9), a["label_for_charts"]
            if ours["output_column_name"] == "place" and a.get("u_probability") is not None:
                assert b["u_probability"] == pytest.approx(a["u_probability"], rel=1e-9), a["label_for_charts"]
    metrics = {
        engine: json.loads((tmp_path / engine / "visitor-model.metrics.json").read_text())["evaluation"]["chosen"]
        for engine in models
    }
    assert metrics["spark"]["precision"] == pytest.approx(metrics["duckdb"]["precision"], abs=0.05)
    assert metrics["spark"]["recall"] == pytest.approx(metrics["duckdb"]["recall"], abs=0.05)

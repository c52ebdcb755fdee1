"""Train the visitor model with Splink, evaluate it on held-out logins, write model and report."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from splink import DuckDBAPI, Linker

from linkage.modelling import ProfileRecord, VisitorScorer, model_version

from ._evaluate import Evaluation, count_positive_pairs, evaluate, held_out_logins
from ._history import DeviceProfiles
from ._home_u import split_home_u
from ._link_evaluation import evaluate_links
from ._spark import SparkConfig, duckdb_model, spark_linker, spark_session
from ._tables import LABEL_COLUMN, profile_table
from ._visitor_settings import training_blocking_rules, visitor_settings

Progress = Callable[[str], None]

MODEL_FILE = "visitor-model.json"
METRICS_FILE = "visitor-model.metrics.json"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    out_dir: Path
    holdout_share: float = 0.3  # share of logins whose devices are kept for evaluation only
    u_max_pairs: float = 5e6
    em_max_pairs: float = 2e6
    # Held-out pairs are scored on whole histories; online a component is scored on what it has
    # shown so far, and the soft links made there were measured less precise than the held-out
    # pairs at the same threshold (0.80 against 0.96 at 0.7 on simulated traffic). Hence a margin
    # over the service's goal of 0.95.
    min_precision: float = 0.97
    # The probability to link at, fixed; None: chosen on the held-out links by `min_precision`.
    threshold: float | None = None
    seed: int = 42
    report: bool = True
    # How m is estimated: "labels" from the devices of the training logins (pairs of one
    # login's devices are true matches), or "em", expectation maximisation over the
    # training blocking passes, which needs no labels.
    m_estimation: Literal["labels", "em"] = "labels"
    # Split the u of the two home levels by the labelled household pairs (`training._home_u`):
    # random sampling alone cannot tell them apart.
    split_home_u: bool = True
    # Term-frequency adjust the "same user agent, in turn" levels on the full string.
    user_agent_tf: bool = False
    # A level of its own for the same rare user-agent string (`USER_AGENT_RARE_SHARE`).
    rare_user_agent: bool = False
    # A level of its own for the same home and user agent, one in use after the other.
    home_and_agent: bool = True
    # Where Splink estimates u and m: DuckDB in this process, or Spark (`spark`: its master).
    # The model file is the same either way, in the catalogue's DuckDB dialect.
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = field(default_factory=SparkConfig)


@dataclass(frozen=True, slots=True)
class TrainedModel:
    model_path: Path
    metrics_path: Path
    report_dir: Path | None
    evaluation: Evaluation
    version: str


def train_visitor_model(profiles: DeviceProfiles, config: TrainConfig, progress: Progress = print) -> TrainedModel:
    """Estimate u by random sampling and m by EM over several blocking passes, then evaluate.

    Devices of a held-out share of logins are left out of training and scored afterwards:
    their labels give precision, recall and F1 by threshold, and the chosen threshold.
    """
    if len(profiles.records) < 50:
        raise ValueError(f"{len(profiles.records)} device profiles are too few to train on")
    config.out_dir.mkdir(parents=True, exist_ok=True)
    held_out = held_out_logins(profiles.labels, config.seed, config.holdout_share)
    train_idx = [i for i, label in enumerate(profiles.labels) if label not in held_out]
    test_idx = [i for i, label in enumerate(profiles.labels) if label in held_out]
    progress(
        f"{len(profiles.records):,} device profiles: {len(train_idx):,} to train on, "
        f"{len(test_idx):,} from {len(held_out):,} held-out logins to evaluate on"
    )

    started = time.monotonic()
    train_labels = [profiles.labels[i] for i in train_idx]
    settings = visitor_settings(
        user_agent_tf=config.user_agent_tf, rare_user_agent=config.rare_user_agent, home_and_agent=config.home_and_agent
    )
    settings["probability_two_random_records_match"] = _prior(train_labels)
    db = DuckDBAPI()
    table = profile_table([profiles.records[i] for i in train_idx], train_labels)
    model_path = config.out_dir / MODEL_FILE
    if config.engine == "spark":
        estimated = _estimate_on_spark(table, settings, config, progress)
        model_path.write_text(json.dumps(estimated, indent=4) + "\n", encoding="utf-8")
        linker = Linker(db.register(table, dataset_display_name="train"), str(model_path), log_level=logging.WARNING)
    else:
        linker = Linker(db.register(table, dataset_display_name="train"), settings, log_level=logging.WARNING)
        _estimate(linker, config, train_labels, progress)
        linker.misc.save_model_to_json(str(model_path), overwrite=True)
    positives = count_positive_pairs(train_labels) if config.m_estimation == "labels" else None
    smoothed = smooth_unobserved(model_path, positives, config.u_max_pairs)
    if smoothed:
        progress(f"levels no training pair fell on, given half a pair: {', '.join(smoothed)}")
    home_split = (
        split_home_u(model_path, [profiles.records[i] for i in train_idx], train_labels)
        if config.split_home_u
        else None
    )
    if home_split is not None:
        progress(
            f"the home levels' u split by {home_split.household_pairs:,} labelled household pairs: "
            + "; ".join(
                f"{label} {home_split.pairs[label]:,} pairs, u {home_split.u_before[label]:.3g} -> {u:.3g}"
                for label, u in home_split.u.items()
            )
        )
    if smoothed or home_split is not None:
        # The report's charts come from this linker: it reads the file as written.
        linker = Linker(
            db.register(table, dataset_display_name="train_smoothed"), str(model_path), log_level=logging.WARNING
        )
    version = model_version(json.loads(model_path.read_text()))
    progress(f"trained in {time.monotonic() - started:.1f} s; model {version} written to {model_path}")

    progress(f"scoring the {len(test_idx):,} held-out devices ...")
    test_records = [profiles.records[i] for i in test_idx]
    test_labels = [profiles.labels[i] for i in test_idx]
    pairwise, test_linker = _evaluate_held_out(model_path, test_records, test_labels, config)
    progress(f"linking the {len(test_idx):,} held-out devices against all {len(profiles.records):,} as online ...")
    evaluation = evaluate_links(
        VisitorScorer.from_model(model_path),
        profiles.records,
        profiles.labels,
        held_out,
        config.min_precision,
        config.threshold,
    )
    chosen = evaluation.chosen
    progress(
        f"held-out links: precision {chosen.precision:.3f}, recall {chosen.recall:.3f}, F1 {chosen.f1:.3f} "
        f"at probability ≥ {chosen.threshold}"
    )
    metrics = {
        "model_version": version,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threshold": chosen.threshold,
        "profiles": len(profiles.records),
        # Term frequencies in training are shares of this many profiles; online ones are too.
        "tf_population": len(profiles.records),
        "train_profiles": len(train_idx),
        "held_out_profiles": len(test_idx),
        "held_out_logins": len(held_out),
        "probability_two_random_records_match": settings["probability_two_random_records_match"],
        "m_estimation": config.m_estimation,
        "home_u_split": None if home_split is None else home_split.as_dict(),
        "evaluation": evaluation.as_dict(),
        "pairwise_evaluation": pairwise.as_dict(),
    }
    metrics_path = config.out_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    report_dir = None
    if config.report:
        from ._report import write_report

        report_dir = write_report(config.out_dir / "report", linker, test_linker, metrics)
        progress(f"report: {report_dir / 'index.html'}")
    return TrainedModel(model_path, metrics_path, report_dir, evaluation, version)


def _estimate(linker: Linker, config: TrainConfig, labels: Sequence[str | None], progress: Progress) -> None:
    """u by random sampling, then m from the labels or by EM: the same on either backend."""
    progress(f"estimating u from up to {config.u_max_pairs:,.0f} random pairs ...")
    linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs, seed=config.seed)
    if config.m_estimation == "labels":
        progress(f"estimating m from the {count_positive_pairs(labels):,} device pairs of training logins ...")
        linker.training.estimate_m_from_label_column(LABEL_COLUMN)
    else:
        for rule in training_blocking_rules():
            progress(f"estimating m by EM on pairs blocked by {_describe(rule)} ...")
            linker.training.estimate_parameters_using_expectation_maximisation(rule, max_pairs=config.em_max_pairs)


def _estimate_on_spark(
    table: pa.Table, settings: dict[str, Any], config: TrainConfig, progress: Progress
) -> dict[str, Any]:
    """`_estimate` on Splink's Spark backend, over the settings in Spark's dialect; the model
    it saves, back in the catalogue's dialect (the levels' estimates onto `settings`' SQL)."""
    progress(f"starting Spark ({config.spark.master}) ...")
    session = spark_session(config.spark)
    try:
        linker = spark_linker(session, table, settings, "train")
        labels = table.column(LABEL_COLUMN).to_pylist()
        _estimate(linker, config, labels, progress)
        trained: dict[str, Any] = linker.misc.save_model_to_json()
    finally:
        session.stop()
    return duckdb_model(trained, settings)


def smooth_unobserved(model_path: Path, positives: int | None, random_pairs: float) -> list[str]:
    """Give every non-null level that training never saw an estimate of half a pair, rewriting
    the model file: m of 0.5 / (positives + 1) where no labelled pair fell on it (`positives`
    the labelled true pairs; None: m came from EM, left alone), u of 0.5 / (random_pairs + 1)
    where no random pair did. The levels so changed, as "comparison: label (m|u)".

    Splink leaves such a number out of the file and scores the level with a made-up default
    (and warns at every predict); half a pair is the additive-smoothing estimate of a rare
    event, and says what training did see: the level is rare among matches (or non-matches)."""
    model = json.loads(model_path.read_text(encoding="utf-8"))
    estimates = {"u_probability": 0.5 / (random_pairs + 1)}
    if positives is not None:
        estimates["m_probability"] = 0.5 / (positives + 1)
    changed = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            for key, estimate in estimates.items():
                if not isinstance(level.get(key), int | float):
                    level[key] = estimate
                    changed.append(f"{comparison['output_column_name']}: {level.get('label_for_charts')} ({key[0]})")
    if changed:
        model_path.write_text(json.dumps(model, indent=4) + "\n", encoding="utf-8")
    return changed


def _prior(labels: Sequence[str | None]) -> float:
    """Share of true pairs among labelled pairs: the chance two random devices are one person."""
    labelled = sum(1 for label in labels if label is not None)
    pairs = labelled * (labelled - 1) // 2
    positives = count_positive_pairs(labels)
    return min(max(positives / pairs, 1e-7), 0.5) if pairs else 1e-4


def _evaluate_held_out(
    model_path: Path, records: list[ProfileRecord], labels: list[str | None], config: TrainConfig
) -> tuple[Evaluation, Linker]:
    db = DuckDBAPI()
    linker = Linker(
        db.register(profile_table(records), dataset_display_name="held_out"), str(model_path), log_level=logging.WARNING
    )
    scored = linker.inference.predict().as_dict()
    label_of = {r.unique_id: label for r, label in zip(records, labels, strict=True)}
    left = scored["unique_id_l"]
    right = scored["unique_id_r"]
    same = np.array([label_of[a] == label_of[b] for a, b in zip(left, right, strict=True)], dtype=bool)
    probabilities = np.asarray(scored["match_probability"], dtype=float)
    return evaluate(probabilities, same, count_positive_pairs(labels), config.min_precision), linker


def _describe(rule: Any) -> str:
    sql = getattr(rule, "blocking_rule_sql", None) or str(rule)
    return " ".join(sql.split())[:80]

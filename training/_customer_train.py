"""Train the customer-record model with Splink, unsupervised, and score it when the truth is known.

u comes from random pairs, the chance that two records of different systems match from
deterministic rules, and m from EM over two blocking passes (date of birth; given and family
name), so that every comparison is estimated in at least one pass. A `true_id` column in the
records is never shown to Splink: it only scores the predicted pairs afterwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from splink import DuckDBAPI, Linker

from linkage.modelling import TF_COLUMNS, blocking_rule_sql, customer_settings, model_version

from ._customer_data import CustomerRecords
from ._evaluate import THRESHOLDS, ThresholdMetrics, metrics_at

Progress = Callable[[str], None]

MODEL_FILE = "customer-model.json"
METRICS_FILE = "customer-model.metrics.json"
DEFAULT_THRESHOLD = 0.9

# Only pairs from two systems are ever linked, so every rule below is restricted to them.
_CROSS_SYSTEM = "l.source_system <> r.source_system"
# EM passes: each estimates m for the comparisons its rule does not fix, so together they
# estimate all six (the first fixes date of birth, the second the two names).
EM_BLOCKING: tuple[tuple[str, ...], ...] = (("date_of_birth",), ("given_name", "family_name"))
# Rules that admit (almost) no false pairs, for the prior. Their recall has to be assumed: on
# FEBRL's heavily corrupted records it is about 0.6 to 0.7, on real CRM rows usually higher.
# m of a level no training pair fell into (e.g. swapped day and month when the records have
# none): an assumed share of true pairs, small but positive evidence.
UNOBSERVED_M = 0.005
PRIOR_RULES: tuple[tuple[str, ...], ...] = (
    ("given_name", "family_name", "date_of_birth"),
    ("family_name", "date_of_birth", "postcode"),
    ("given_name", "date_of_birth", "postcode"),
)


@dataclass(frozen=True, slots=True)
class CustomerTrainConfig:
    out_dir: Path
    threshold: float = DEFAULT_THRESHOLD  # match probability at which the service soft-links
    u_max_pairs: float = 1e7
    em_max_pairs: float | None = 5e6  # None: EM on every blocked pair
    prior_recall: float = 0.7  # assumed recall of PRIOR_RULES
    seed: int = 42
    report: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be a match probability in (0, 1), got {self.threshold}")
        if not 0.0 < self.prior_recall <= 1.0:
            raise ValueError(f"prior_recall must be in (0, 1], got {self.prior_recall}")


@dataclass(frozen=True, slots=True)
class CustomerEvaluation:
    """Predicted pairs scored against `true_id`: pairs of one person in two systems are true."""

    positives: int  # true cross-system pairs, found by blocking or not
    scored_pairs: int  # predicted pairs with both records labelled, at the lowest threshold
    at_threshold: ThresholdMetrics
    best: ThresholdMetrics  # best F1 over the table, for comparison
    by_threshold: list[ThresholdMetrics]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrainedCustomerModel:
    model_path: Path
    metrics_path: Path
    report_dir: Path | None
    evaluation: CustomerEvaluation | None
    version: str
    training_seconds: float


def train_customer_model(
    records: CustomerRecords, config: CustomerTrainConfig, progress: Progress = print
) -> TrainedCustomerModel:
    """Train on the records, write `customer-model.json` and its metrics (and a report)."""
    systems = records.systems()
    if len(records) < 50:
        raise ValueError(f"{len(records)} customer records are too few to train on")
    if len(systems) < 2:
        raise ValueError("the records come from one source system; the model links records of different systems")
    config.out_dir.mkdir(parents=True, exist_ok=True)
    progress(
        f"{len(records):,} customer records from {len(systems)} systems "
        f"({', '.join(f'{s} {n:,}' for s, n in systems.items())})"
        + (f"; {records.without_key:,} rows without a key skipped" if records.without_key else "")
        + (f"; {records.repeated_keys:,} repeated keys (the last row kept)" if records.repeated_keys else "")
    )

    started = time.monotonic()
    prior = estimate_prior(records, config.prior_recall)
    progress(
        f"{prior.observed_pairs:,} pairs agree on a deterministic rule; assuming recall {config.prior_recall} "
        f"of {prior.cross_system_pairs:,} cross-system pairs, two random ones match with p = {prior.probability:.3g}"
    )
    settings = customer_settings()
    settings["probability_two_random_records_match"] = prior.probability
    model_path = config.out_dir / MODEL_FILE
    with _quiet_splink():
        linker = _linker(records, settings)
        progress(f"estimating u from up to {config.u_max_pairs:,.0f} random pairs ...")
        linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs, seed=config.seed)
        for columns in EM_BLOCKING:
            rule = f"{blocking_rule_sql(columns)} AND {_CROSS_SYSTEM}"
            progress(f"estimating m by EM on pairs with the same {' and '.join(columns)} ...")
            linker.training.estimate_parameters_using_expectation_maximisation(rule, max_pairs=config.em_max_pairs)
        linker.misc.save_model_to_json(str(model_path), overwrite=True)
    model = json.loads(model_path.read_text())
    for note in fill_unobserved(model, config.u_max_pairs):
        progress(f"  {note}")
    model_path.write_text(json.dumps(model, indent=2) + "\n")
    training_seconds = time.monotonic() - started
    version = model_version(model)
    progress(f"trained in {training_seconds:.1f} s; model {version} written to {model_path}")

    # Everything below uses the model file as written, as the service will.
    progress("predicting pairs over the prediction blocking rules ...")
    linker, scored = score_records(model_path, records, config.threshold)
    linked, evaluation = scored.linked, scored.evaluation
    progress(f"{linked:,} pairs at match probability ≥ {config.threshold} (predicted in {scored.seconds:.1f} s)")
    if evaluation is not None:
        at = evaluation.at_threshold
        progress(
            f"against true_id ({evaluation.positives:,} true pairs): precision {at.precision:.4f}, "
            f"recall {at.recall:.4f}, F1 {at.f1:.4f} at match probability ≥ {at.threshold}"
        )

    metrics: dict[str, Any] = {
        "model": "customer",
        "model_version": version,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threshold": config.threshold,
        "records": len(records),
        # Term frequencies in training are shares of this many records; online ones should be too.
        "tf_population": len(records),
        "systems": systems,
        "files": [p.name for p in records.files],
        "rows_read": records.rows_read,
        "rows_without_key": records.without_key,
        "repeated_keys": records.repeated_keys,
        "invalid_dates_of_birth": records.invalid_dates,
        "probability_two_random_records_match": prior.probability,
        "prior": asdict(prior),
        "u_max_pairs": config.u_max_pairs,
        "em_blocking": [list(c) for c in EM_BLOCKING],
        "training_seconds": round(training_seconds, 2),
        "pairs_at_threshold": linked,
        # Labels were not used in training, so scoring the training records is fair.
        "evaluation": evaluation.as_dict() if evaluation is not None else None,
    }
    metrics_path = config.out_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    progress(f"metrics written to {metrics_path}")
    report_dir = None
    if config.report:
        from ._customer_report import write_customer_report

        report_dir = write_customer_report(config.out_dir / "customer-report", linker, metrics)
        progress(f"report: {report_dir / 'index.html'}")
    return TrainedCustomerModel(model_path, metrics_path, report_dir, evaluation, version, training_seconds)


@dataclass(frozen=True, slots=True)
class ScoredRecords:
    linked: int  # predicted pairs at or above the threshold
    evaluation: CustomerEvaluation | None  # when the records carry `true_id`
    seconds: float  # prediction time


def score_records(model_path: Path, records: CustomerRecords, threshold: float) -> tuple[Linker, ScoredRecords]:
    """Predict pairs among the records with a model file (Splink, the model's own blocking
    rules) and score them against `true_id` when the records have it; the Linker is returned
    for charts. Also how a trained model is checked on other records (e.g. FEBRL4)."""
    started = time.monotonic()
    with _quiet_splink():
        linker = _linker(records, str(model_path))
        lowest = min(THRESHOLDS[0], threshold)
        scored = linker.inference.predict(threshold_match_probability=lowest).as_dict()
    probabilities = np.asarray(scored["match_probability"], dtype=float)
    linked = int(np.sum(probabilities >= threshold))
    evaluation = None
    if records.true_ids is not None:
        evaluation = evaluate_pairs(scored["unique_id_l"], scored["unique_id_r"], probabilities, records, threshold)
    return linker, ScoredRecords(linked, evaluation, time.monotonic() - started)


def _linker(records: CustomerRecords, settings: dict[str, Any] | str) -> Linker:
    # log_level None: Splink leaves logging alone, so `_quiet_splink` decides what is shown.
    linker = Linker(DuckDBAPI().register(records.table, dataset_display_name="customers"), settings, log_level=None)
    # Registered once, so EM, prediction and the report all use the same term frequencies.
    for column in TF_COLUMNS:
        linker.table_management.compute_tf_table(column)
    return linker


@contextlib.contextmanager
def _quiet_splink() -> Iterator[None]:
    """Splink warns about levels EM did not see; `fill_unobserved` deals with those and says so."""
    splink_logger = logging.getLogger("splink")
    level = splink_logger.level
    splink_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        splink_logger.setLevel(level)


def fill_unobserved(model: dict[str, Any], u_max_pairs: float) -> list[str]:
    """Give levels that training never observed explicit m and u probabilities, in place.

    Splink leaves them out of the JSON and then scores such a level with m = 1e-6, which
    would make e.g. a day-month swap of the date of birth evidence *against* a match just
    because the training records had no such pair. An explicit, assumed share keeps the level
    meaningful and the file self-contained (the online scorer reads the same numbers). The
    other levels' m are scaled so that m still sums to one. Returns what was filled."""
    notes = []
    for comparison in model["comparisons"]:
        levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
        missing_m = [level for level in levels if "m_probability" not in level]
        if missing_m and len(missing_m) < len(levels):
            scale = 1.0 - UNOBSERVED_M * len(missing_m)
            for level in levels:
                if "m_probability" in level:
                    level["m_probability"] *= scale
                else:
                    level["m_probability"] = UNOBSERVED_M
                    notes.append(f"{level['label_for_charts']}: no training pair; assumed m = {UNOBSERVED_M}")
        for level in levels:
            if "u_probability" not in level:
                # Unseen among that many random pairs: its share is at most about one in as many.
                level["u_probability"] = 1.0 / u_max_pairs
                notes.append(f"{level['label_for_charts']}: no random pair; assumed u = {1.0 / u_max_pairs:.3g}")
    return notes


@dataclass(frozen=True, slots=True)
class Prior:
    probability: float
    observed_pairs: int
    cross_system_pairs: int
    assumed_recall: float
    rules: list[str]


def estimate_prior(records: CustomerRecords, recall: float) -> Prior:
    """The chance that two random records of different systems are one person.

    Splink's own estimate divides by all pairs, same-system ones included; predict only
    scores cross-system pairs, so they are the right denominator here (with two equal
    systems it is half as many, which would understate the prior by one bit)."""
    rules = [f"({blocking_rule_sql(columns)})" for columns in PRIOR_RULES]
    con = duckdb.connect()
    try:
        con.register("records", records.table)
        row = con.execute(
            "SELECT count(*) FROM records l JOIN records r ON l.unique_id < r.unique_id "
            f"AND {_CROSS_SYSTEM} AND ({' OR '.join(rules)})"
        ).fetchone()
    finally:
        con.close()
    observed = int(row[0]) if row is not None else 0
    total = len(records) ** 2 - sum(n * n for n in records.systems().values())
    cross_pairs = total // 2
    # No agreeing pair at all says little; fall back to Splink's usual small default.
    probability = observed / recall / cross_pairs if observed and cross_pairs else 1e-4
    return Prior(min(max(probability, 1e-9), 0.5), observed, cross_pairs, recall, rules)


def evaluate_pairs(
    left: Sequence[str],
    right: Sequence[str],
    probabilities: np.ndarray,
    records: CustomerRecords,
    threshold: float,
) -> CustomerEvaluation:
    """Precision, recall and F1 by threshold of predicted pairs against `true_id`.

    Recall is over every true cross-system pair, so pairs that blocking missed count as missed;
    pairs with an unlabelled record are left out."""
    true_ids = records.true_ids or {}
    labelled = np.array([a in true_ids and b in true_ids for a, b in zip(left, right, strict=True)], dtype=bool)
    same = np.array([true_ids.get(a) == true_ids.get(b) for a, b in zip(left, right, strict=True)], dtype=bool)
    probabilities = probabilities[labelled]
    same = same[labelled]
    positives = records.true_pair_count()
    rows = [metrics_at(probabilities, same, positives, t) for t in sorted({*THRESHOLDS, threshold})]
    at = next(r for r in rows if r.threshold == threshold)
    best = max(rows, key=lambda r: (r.f1, -r.threshold))
    return CustomerEvaluation(positives, len(probabilities), at, best, rows)

"""Score a snapshot's visitor profiles with Splink's `predict`, on DuckDB or on Spark: the pairs
a relink by Splink sends back to the server (`RelinkScored`), which decides them by the rules
of online.

The profiles are the server's own (`WriteSnapshot` with `visitor_profiles`), so the weights
are those the online scorer gives the same pairs; only the blocking differs: Splink's rules
find every pair, without the online index's caps on bucket size and candidates.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray
from splink import DuckDBAPI, Linker

from ._spark import SparkConfig, spark_linker, spark_session
from ._tables import term_frequency_lookups

Engine = Literal["duckdb", "spark"]
# Pairs below this probability change no decision: a person's share is o / (1 + the sum of
# all odds), and odds under 1/1000 move it by less than the rounding of the threshold.
MIN_PROBABILITY = 1e-3


@dataclass(frozen=True, slots=True)
class ScoredPairs:
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    match_weight: NDArray[np.float64]
    seconds: float  # Splink's predict, reading the profiles included


def score_profiles(
    profiles: Path,
    model_json: bytes,
    engine: Engine = "duckdb",
    spark: SparkConfig | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> ScoredPairs:
    """Every pair of profiles the model's blocking rules find, with its match weight, above
    `MIN_PROBABILITY`."""
    model: dict[str, Any] = json.loads(model_json)
    began = time.perf_counter()
    table = pq.read_table(profiles).drop_columns(["anonymous"])
    if engine == "duckdb":
        table, lookups = term_frequency_lookups(table, model)
        api = DuckDBAPI()
        linker = Linker(api.register(table, dataset_display_name="profiles"), model, log_level=logging.WARNING)
        for column, lookup in lookups.items():
            linker.table_management.register_term_frequency_lookup(api.register(lookup), column)
        progress(f"Splink predict on DuckDB over {table.num_rows:,} profiles ...")
        predicted = linker.inference.predict(threshold_match_probability=MIN_PROBABILITY)
        pairs = predicted.as_duckdbpyrelation().select("unique_id_l, unique_id_r, match_weight").to_arrow_table()
    else:
        pairs = _spark_pairs(table, model, spark or SparkConfig(), progress)
    left = pairs.column("unique_id_l").to_numpy().astype(np.int64)
    right = pairs.column("unique_id_r").to_numpy().astype(np.int64)
    weight = pairs.column("match_weight").to_numpy().astype(np.float64)
    return ScoredPairs(left, right, weight, time.perf_counter() - began)


def _spark_pairs(
    table: pa.Table, model: dict[str, Any], config: SparkConfig, progress: Callable[[str], None]
) -> pa.Table:
    progress(f"starting Spark ({config.master}) ...")
    session = spark_session(config)
    try:
        linker = spark_linker(session, table, model, "profiles")
        progress(f"Splink predict on Spark over {table.num_rows:,} profiles ...")
        predicted = linker.inference.predict(threshold_match_probability=MIN_PROBABILITY)
        rows = predicted.as_spark_dataframe().select("unique_id_l", "unique_id_r", "match_weight").toPandas()
        return pa.Table.from_pandas(rows, preserve_index=False)
    finally:
        session.stop()

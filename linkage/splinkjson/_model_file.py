"""What every Splink model file the service compiles shares: reading it, the checks before any
comparison is looked at, and the metrics file training writes beside it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .._errors import ModelError

_LEVEL_KEYS: Final = frozenset(
    {
        "sql_condition",
        "label_for_charts",
        "is_null_level",
        "m_probability",
        "u_probability",
        "fix_m_probability",
        "fix_u_probability",
        "tf_adjustment_column",
        "tf_adjustment_weight",
        "tf_minimum_u_value",
        "disable_tf_exact_match_detection",
    }
)
_COMPARISON_KEYS: Final = frozenset({"output_column_name", "comparison_levels", "comparison_description"})


@dataclass(frozen=True, slots=True)
class ModelFile:
    model: Mapping[str, Any]
    prior: float  # probability_two_random_records_match
    comparisons: list[Any]  # raw, for the scorer's own compiler


def read_model(model: Mapping[str, Any] | str | os.PathLike[str], catalogue: str) -> ModelFile:
    """The model dict (given, or read from a path) checked for what every scorer needs: DuckDB
    SQL (what the `catalogue` renders), a prior in (0, 1), and at least one comparison."""
    if isinstance(model, str | os.PathLike):
        try:
            loaded = json.loads(Path(model).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read model {os.fspath(model)!r}: {e}") from e
    else:
        loaded = model
    if not isinstance(loaded, Mapping):
        raise ModelError(f"a model is a JSON object, got {type(loaded).__name__}")
    dialect = loaded.get("sql_dialect", "duckdb")
    if dialect != "duckdb":
        raise ModelError(f"sql_dialect {dialect!r}: the {catalogue}'s SQL is DuckDB's")
    prior = loaded.get("probability_two_random_records_match")
    if isinstance(prior, bool) or not isinstance(prior, int | float) or not 0.0 < prior < 1.0:
        raise ModelError(f"probability_two_random_records_match must be in (0, 1), got {prior!r}")
    raw = loaded.get("comparisons")
    if not isinstance(raw, list) or not raw:
        raise ModelError("the model has no comparisons")
    return ModelFile(loaded, float(prior), raw)


def comparison_shape(raw: object, index: int) -> tuple[str, list[Mapping[str, Any]]]:
    """A comparison's name and its levels, checked for the keys and types Splink writes."""
    if not isinstance(raw, Mapping):
        raise ModelError(f"comparison {index}: expected an object, got {raw!r}")
    name = raw.get("output_column_name")
    if not isinstance(name, str) or not name:
        raise ModelError(f"comparison {index}: output_column_name must be a non-empty string")
    unknown = set(raw) - _COMPARISON_KEYS
    if unknown:
        raise ModelError(f"comparison {name!r}: unknown keys {sorted(unknown)}")
    raw_levels = raw.get("comparison_levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        raise ModelError(f"comparison {name!r}: comparison_levels must be a non-empty list")
    for position, raw_level in enumerate(raw_levels):
        if not isinstance(raw_level, Mapping):
            raise ModelError(f"comparison {name!r}, level {position}: expected an object, got {raw_level!r}")
        unknown = set(raw_level) - _LEVEL_KEYS
        if unknown:
            raise ModelError(f"comparison {name!r}, level {position}: unknown keys {sorted(unknown)}")
    return name, raw_levels


def check_names(names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise ModelError(f"comparison names repeat: {names}")


def link_settings(
    model_path: Path, threshold: float | None, default_threshold: float, default_population: int
) -> tuple[float, int]:
    """The threshold a model links at and the population its term frequencies are shares of:
    the threshold from the argument, else from `<name>.metrics.json` beside the model (training
    writes it), else the default; the population from that file, else the default."""
    population = default_population
    path = model_path.with_name(model_path.name.removesuffix(".json") + ".metrics.json")
    if path.exists():
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
            population = int(written.get("tf_population", population))
            if threshold is None:
                threshold = float(written["threshold"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{path}: no usable threshold ({exc})") from exc
    threshold = default_threshold if threshold is None else threshold
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"threshold must be in (0, 1), got {threshold}")
    if population < 1:
        raise ModelError(f"tf_population must be positive, got {population}")
    return threshold, population

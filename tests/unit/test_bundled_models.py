"""The models shipped with the package: every level trained, and each compiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linkage import BUNDLED_CUSTOMER_MODEL, BUNDLED_MODEL, CustomerScorer, VisitorScorer

_NOT_OBSERVED = "level not observed in training dataset"


def _levels(path: Path) -> list[tuple[str, dict[str, Any]]]:
    model = json.loads(path.read_text(encoding="utf-8"))
    return [
        (comparison["output_column_name"], level)
        for comparison in model["comparisons"]
        for level in comparison["comparison_levels"]
        if not level.get("is_null_level")
    ]


@pytest.mark.parametrize("path", [BUNDLED_MODEL, BUNDLED_CUSTOMER_MODEL], ids=lambda p: p.name)
def test_every_level_of_a_bundled_model_has_a_trained_m_and_u(path: Path) -> None:
    """A level without m or u scores with Splink's made-up defaults (and Splink warns about it
    at every predict): a bundled model must have estimated every one."""
    untrained = [
        f"{comparison}: {level.get('label_for_charts')} ({key})"
        for comparison, level in _levels(path)
        for key in ("m_probability", "u_probability")
        if not isinstance(level.get(key), int | float) or level.get(key) == _NOT_OBSERVED
    ]
    assert untrained == []


def test_the_bundled_models_compile() -> None:
    assert VisitorScorer.from_model(BUNDLED_MODEL).comparison_names
    assert CustomerScorer.from_model(BUNDLED_CUSTOMER_MODEL).comparison_names

"""The visitor model as the service uses it: a compiled scorer and the threshold it links at."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ._comparisons import ModelError
from ._scorer import VisitorScorer

BUNDLED_MODEL = Path(__file__).parent / "models" / "visitor-model.json"
DEFAULT_THRESHOLD = 0.99
DEFAULT_TF_POPULATION = 10_000


@dataclass(frozen=True, slots=True)
class VisitorModel:
    scorer: VisitorScorer
    threshold: float  # minimum match probability for a soft link
    # Term frequencies are "visitors on this address / tf_population", the population the
    # model was trained on, so an address shared by 2 visitors weighs the same online as in
    # training however many components the service holds.
    tf_population: int = DEFAULT_TF_POPULATION

    @property
    def version(self) -> str:
        return self.scorer.version

    @classmethod
    def load(cls, path: Path, threshold: float | None = None) -> VisitorModel:
        """Load Splink's model JSON; the threshold comes from the argument, else from the
        metrics file training wrote beside it (`<name>.metrics.json`), else DEFAULT_THRESHOLD.
        The metrics file also gives the term-frequency population."""
        scorer = VisitorScorer.from_model(path)
        population = DEFAULT_TF_POPULATION
        metrics = path.with_name(path.name.removesuffix(".json") + ".metrics.json")
        if metrics.exists():
            try:
                written = json.loads(metrics.read_text())
                population = int(written.get("tf_population", population))
                if threshold is None:
                    threshold = float(written["threshold"])
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelError(f"{metrics}: no usable threshold ({exc})") from exc
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"threshold must be in (0, 1), got {threshold}")
        if population < 1:
            raise ModelError(f"tf_population must be positive, got {population}")
        return cls(scorer, threshold, population)

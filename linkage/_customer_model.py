"""The customer-record model as the service uses it: a compiled scorer and the threshold it links at."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ._comparisons import ModelError
from ._customer_scorer import CustomerScorer

# Written by training (`idstitch train --model customer`); shipped with the package.
BUNDLED_CUSTOMER_MODEL = Path(__file__).parent / "models" / "customer-model.json"
DEFAULT_THRESHOLD = 0.9
DEFAULT_TF_POPULATION = 10_000


@dataclass(frozen=True, slots=True)
class CustomerModel:
    scorer: CustomerScorer
    threshold: float  # minimum match probability for a soft link between customer profiles
    # Term frequencies are "records with this name / at least tf_population", the number of
    # records the model was trained on, so a name weighs online what it weighed in training
    # even while the service holds only a few records.
    tf_population: int = DEFAULT_TF_POPULATION

    @property
    def version(self) -> str:
        return self.scorer.version

    @classmethod
    def load(cls, path: Path, threshold: float | None = None) -> CustomerModel:
        """Load Splink's customer model JSON. The threshold comes from the argument, else from
        the metrics file training wrote beside it (`<name>.metrics.json`, key `threshold`),
        else DEFAULT_THRESHOLD; the metrics file's `tf_population` (else
        DEFAULT_TF_POPULATION) is the term-frequency population. Raises ModelError for an
        unusable model or metrics file."""
        scorer = CustomerScorer.from_model(path)
        population = DEFAULT_TF_POPULATION
        metrics = path.with_name(path.name.removesuffix(".json") + ".metrics.json")
        if metrics.exists():
            try:
                written = json.loads(metrics.read_text(encoding="utf-8"))
                population = int(written.get("tf_population", population))
                if threshold is None:
                    threshold = float(written["threshold"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelError(f"{metrics}: no usable threshold ({exc})") from exc
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"threshold must be in (0, 1), got {threshold}")
        if population < 1:
            raise ModelError(f"tf_population must be positive, got {population}")
        return cls(scorer, threshold, population)

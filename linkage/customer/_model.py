"""The customer-record model as the service uses it: a compiled scorer and the threshold it links at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..splinkjson._model_file import link_settings
from ._scorer import CustomerScorer

# Written by training (`idstitch train --model customer`); shipped with the package.
BUNDLED_CUSTOMER_MODEL = Path(__file__).parent.parent / "models" / "customer-model.json"
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
        threshold, population = link_settings(path, threshold, DEFAULT_THRESHOLD, DEFAULT_TF_POPULATION)
        return cls(scorer, threshold, population)

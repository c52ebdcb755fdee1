"""The visitor model as the service uses it: a compiled scorer and the threshold it links at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..splinkjson._model_file import link_settings
from ._scorer import VisitorScorer

BUNDLED_MODEL = Path(__file__).parent.parent / "models" / "visitor-model.json"
DEFAULT_THRESHOLD = 0.99
DEFAULT_TF_POPULATION = 10_000


@dataclass(frozen=True, slots=True)
class VisitorModel:
    scorer: VisitorScorer
    threshold: float  # minimum probability for a soft link (shared among candidate persons)
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
        threshold, population = link_settings(path, threshold, DEFAULT_THRESHOLD, DEFAULT_TF_POPULATION)
        return cls(scorer, threshold, population)

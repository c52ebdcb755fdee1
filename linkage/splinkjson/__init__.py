"""Splink model files, read and compiled once for every online scorer.

`compile_model(model, catalogue)` resolves a model JSON as Splink does when it loads it (levels
recognised by the model family's `Catalogue`, gammas, m/u with Splink's defaults and floor,
the prior, term-frequency adjustments); each scorer then builds its own way of putting pairs
on levels over the `CompiledModel`. `link_settings` reads the threshold and term-frequency
population that training writes beside a model (`<name>.metrics.json`).
"""

from ._compiler import (
    M_U_FLOOR,
    Catalogue,
    CatalogueLevel,
    CompiledComparison,
    CompiledLevel,
    CompiledModel,
    TermFrequencyAdjustment,
    compile_model,
    model_version,
    probabilities_from_weights,
)
from ._model_file import link_settings

__all__ = [
    "M_U_FLOOR",
    "Catalogue",
    "CatalogueLevel",
    "CompiledComparison",
    "CompiledLevel",
    "CompiledModel",
    "TermFrequencyAdjustment",
    "compile_model",
    "link_settings",
    "model_version",
    "probabilities_from_weights",
]

"""The visitor model: behavioural evidence per component (addresses, homes, places in time,
devices), the profile record the model compares, its catalogue of comparison levels, the numpy
scorer compiled from a Splink model, and the soft-link state it links through."""

from ._encoding import EncodedProfiles, encode_profiles
from ._linker import SoftLinks
from ._model import BUNDLED_MODEL, VisitorModel
from ._profile import ProfileRecord
from ._scorer import Scores, VisitorScorer, Waterfall, WaterfallStep

__all__ = [
    "BUNDLED_MODEL",
    "EncodedProfiles",
    "ProfileRecord",
    "Scores",
    "SoftLinks",
    "VisitorModel",
    "VisitorScorer",
    "Waterfall",
    "WaterfallStep",
    "encode_profiles",
]

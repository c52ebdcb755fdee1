"""The identity graph and its deterministic rules: persons, their identifiers and persistent
ids, merges, moves and refusals, erasure, and the `Stitcher` that validates a batch, applies
it under the rules, commits it to the store and answers from the graph."""

from ._graph import IdentityGraph
from ._stitcher import Stitcher

__all__ = ["IdentityGraph", "Stitcher"]

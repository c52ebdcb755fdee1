"""Soft links, whichever model makes them: the link record, the state linkers share, and how
candidate persons share one visitor's probability."""

from ._link import LinkState, Record, SoftLink, UniquesOf, person_probabilities, person_shares

__all__ = ["LinkState", "Record", "SoftLink", "UniquesOf", "person_probabilities", "person_shares"]

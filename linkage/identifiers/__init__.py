"""Identifiers and signals as the core accepts them: namespaces, normalisation, blocked values,
keyed hashing of personal values, validation of a whole batch before anything is applied, and
the unique-namespace rule every link obeys (`clash`)."""

from ._namespaces import IdentifierPolicy, PreparedIdentifier, clash, join_key, split_key
from ._signals import PreparedSignal, prepare_batch, prepare_signal

__all__ = [
    "IdentifierPolicy",
    "PreparedIdentifier",
    "PreparedSignal",
    "clash",
    "join_key",
    "prepare_batch",
    "prepare_signal",
    "split_key",
]

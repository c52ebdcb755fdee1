"""Durable truth behind the in-memory graph: the `Store` protocol, the DuckDB file that is the
default store, a memory fake for unit tests, the row types a commit carries, and compaction
(rewriting the file so that erased rows leave no bytes behind)."""

from ._compaction import Compaction, compact_store
from ._duckdb import SCHEMA_VERSION, DuckDBStore, StoreLocked
from ._protocol import MemoryStore, Store
from ._rows import (
    CommitBatch,
    CustomerRecordRow,
    Erasure,
    EventRow,
    IdentifierRow,
    ModelRow,
    PersonRow,
    SoftLinkRow,
    StoredState,
)

__all__ = [
    "SCHEMA_VERSION",
    "CommitBatch",
    "Compaction",
    "CustomerRecordRow",
    "DuckDBStore",
    "Erasure",
    "EventRow",
    "IdentifierRow",
    "MemoryStore",
    "ModelRow",
    "PersonRow",
    "SoftLinkRow",
    "Store",
    "StoreLocked",
    "StoredState",
    "compact_store",
]

"""The idstitch core: identifiers, the identity graph and its rules, persistent ids, storage.

Knows nothing of gRPC or Splink. The server drives a `Stitcher`; a `Store` keeps the truth.
"""

from ._config import DEFAULT_BLOCKED_VALUES, DEFAULT_NAMESPACES, LinkageConfig, NamespaceConfig
from ._duckdb_store import DuckDBStore, StoreLocked
from ._errors import InvalidArgument, LinkageError, NotFound, Unavailable
from ._namespaces import IdentifierPolicy
from ._stitcher import Stitcher
from ._store import MemoryStore, Store
from ._types import (
    Change,
    ChangeKind,
    Conflict,
    Context,
    Decision,
    Geo,
    Identifier,
    IgnoredIdentifier,
    IgnoredReason,
    PersonIdentifier,
    PersonView,
    Resolution,
    Signal,
    SignalResult,
)

__all__ = [
    "DEFAULT_BLOCKED_VALUES",
    "DEFAULT_NAMESPACES",
    "Change",
    "ChangeKind",
    "Conflict",
    "Context",
    "Decision",
    "DuckDBStore",
    "Geo",
    "Identifier",
    "IdentifierPolicy",
    "IgnoredIdentifier",
    "IgnoredReason",
    "InvalidArgument",
    "LinkageConfig",
    "LinkageError",
    "MemoryStore",
    "NamespaceConfig",
    "NotFound",
    "PersonIdentifier",
    "PersonView",
    "Resolution",
    "Signal",
    "SignalResult",
    "Stitcher",
    "Store",
    "StoreLocked",
    "Unavailable",
]

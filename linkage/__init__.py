"""The idstitch core: identifiers, the identity graph and its rules, persistent ids, storage.

Knows nothing of gRPC or Splink. The server drives a `Stitcher`; a `Store` keeps the truth.
"""

from ._compaction import Compaction, compact_store
from ._comparisons import ModelError
from ._config import DEFAULT_BLOCKED_VALUES, DEFAULT_NAMESPACES, LinkageConfig, NamespaceConfig
from ._customer_model import BUNDLED_CUSTOMER_MODEL, CustomerModel
from ._customer_records import CustomerRecord, RecordError, SyncSummary
from ._customer_scorer import CustomerScorer
from ._duckdb_store import DuckDBStore, StoreLocked
from ._errors import InvalidArgument, LinkageError, NotFound, Unavailable
from ._namespaces import IdentifierPolicy
from ._scorer import VisitorScorer
from ._stitcher import Stitcher
from ._store import MemoryStore, Store
from ._types import (
    Change,
    ChangeKind,
    Conflict,
    Context,
    Decision,
    Erased,
    Explanation,
    Geo,
    Identifier,
    IgnoredIdentifier,
    IgnoredReason,
    LinkKind,
    LinkStep,
    PersonIdentifier,
    PersonView,
    Resolution,
    Signal,
    SignalResult,
)
from ._visitor_model import BUNDLED_MODEL, VisitorModel

__all__ = [
    "BUNDLED_CUSTOMER_MODEL",
    "BUNDLED_MODEL",
    "DEFAULT_BLOCKED_VALUES",
    "DEFAULT_NAMESPACES",
    "Change",
    "ChangeKind",
    "Compaction",
    "Conflict",
    "Context",
    "CustomerModel",
    "CustomerRecord",
    "CustomerScorer",
    "Decision",
    "DuckDBStore",
    "Erased",
    "Explanation",
    "Geo",
    "Identifier",
    "IdentifierPolicy",
    "IgnoredIdentifier",
    "IgnoredReason",
    "InvalidArgument",
    "LinkKind",
    "LinkStep",
    "LinkageConfig",
    "LinkageError",
    "MemoryStore",
    "ModelError",
    "NamespaceConfig",
    "NotFound",
    "PersonIdentifier",
    "PersonView",
    "RecordError",
    "Resolution",
    "Signal",
    "SignalResult",
    "Stitcher",
    "Store",
    "StoreLocked",
    "SyncSummary",
    "Unavailable",
    "VisitorModel",
    "VisitorScorer",
    "compact_store",
]

"""The idstitch core: identifiers, the identity graph and its rules, persistent ids, storage.

Knows nothing of gRPC or Splink. The server drives a `Stitcher`; a `Store` keeps the truth.
"""

from ._config import DEFAULT_BLOCKED_VALUES, DEFAULT_NAMESPACES, LinkageConfig, NamespaceConfig
from ._errors import InvalidArgument, LinkageError, ModelError, NotFound, Unavailable
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
from .customer._model import BUNDLED_CUSTOMER_MODEL, CustomerModel
from .customer._records import CustomerRecord, RecordError, SyncSummary
from .customer._scorer import CustomerScorer
from .identifiers._namespaces import IdentifierPolicy
from .identity._stitcher import Stitcher
from .store._compaction import Compaction, compact_store
from .store._duckdb import DuckDBStore, StoreLocked
from .store._protocol import MemoryStore, Store
from .visitor._model import BUNDLED_MODEL, VisitorModel
from .visitor._scorer import VisitorScorer

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

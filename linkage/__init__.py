"""The idstitch core: identifiers, the identity graph and its rules, persistent ids, storage,
and the two linkage models that run online.

Knows nothing of gRPC or Splink. The server drives a `Stitcher`; a `Store` keeps the truth.
The packages, by domain: `identifiers` (namespaces, hashing, signal validation), `identity`
(the graph and its deterministic rules), `store` (the `Store` seam, DuckDB, compaction),
`splinkjson` (model files and the one compiler to numpy), `softlinks` (what both models'
links share), `visitor` and `customer` (the two models). Training's face is `linkage.modelling`.
"""

from ._config import DEFAULT_BLOCKED_VALUES, DEFAULT_NAMESPACES, LinkageConfig, NamespaceConfig
from ._errors import Busy, FellBehind, InvalidArgument, LinkageError, ModelError, NotFound, Unavailable
from ._types import (
    AuditEntry,
    Change,
    ChangeKind,
    Conflict,
    Context,
    Decision,
    Erased,
    Explanation,
    Geo,
    HouseholdView,
    Identifier,
    IgnoredIdentifier,
    IgnoredReason,
    LinkKind,
    LinkStep,
    PersonIdentifier,
    PersonView,
    Relinked,
    Resolution,
    Signal,
    SignalResult,
)
from .customer import BUNDLED_CUSTOMER_MODEL, CustomerModel, CustomerRecord, CustomerScorer, RecordError, SyncSummary
from .identifiers import IdentifierPolicy
from .identity import Stitcher
from .store import Compaction, DuckDBStore, MemoryStore, ModelRow, Store, StoreLocked, compact_store
from .visitor import BUNDLED_MODEL, VisitorModel, VisitorScorer

__all__ = [
    "BUNDLED_CUSTOMER_MODEL",
    "BUNDLED_MODEL",
    "DEFAULT_BLOCKED_VALUES",
    "DEFAULT_NAMESPACES",
    "AuditEntry",
    "Busy",
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
    "FellBehind",
    "Geo",
    "HouseholdView",
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
    "ModelRow",
    "NamespaceConfig",
    "NotFound",
    "PersonIdentifier",
    "PersonView",
    "RecordError",
    "Relinked",
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

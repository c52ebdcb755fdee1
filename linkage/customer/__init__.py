"""The customer model: CRM records from source systems (validation, normalisation, the signal
each becomes), their comparison catalogue, the blocking index, the scorer compiled from a
Splink model, and the soft links it makes."""

from ._index import CustomerIndex
from ._links import CustomerLinks
from ._model import BUNDLED_CUSTOMER_MODEL, CustomerModel
from ._records import CustomerRecord, RecordError, SyncSummary
from ._scorer import CustomerScorer, CustomerScores

__all__ = [
    "BUNDLED_CUSTOMER_MODEL",
    "CustomerIndex",
    "CustomerLinks",
    "CustomerModel",
    "CustomerRecord",
    "CustomerScorer",
    "CustomerScores",
    "RecordError",
    "SyncSummary",
]

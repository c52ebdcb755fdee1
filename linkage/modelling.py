"""Training's face on the core: what a model is built from and checked against.

Training (`training/`) builds Splink settings from the same catalogues the online scorers
recognise, turns stored or simulated history into the profile records the visitor model
compares, and evaluates a trained model with the scorers the service runs. The contract is
the model file and its `<name>.metrics.json` sidecar (threshold, term-frequency population);
everything training needs of the core is named here, and nothing else of `linkage` is.
"""

from .customer._catalogue import (
    ATTRIBUTE_COLUMNS,
    CUSTOMER_BLOCKING,
    TF_COLUMNS,
    blocking_rule_sql,
    customer_settings,
    normalise_document_id,
    normalise_text,
)
from .customer._scorer import CustomerScorer
from .identifiers._namespaces import split_key
from .softlinks import person_shares
from .splinkjson import model_version
from .store._rows import EventRow
from .visitor._catalogue import (
    Both,
    Else,
    ExactMatch,
    LevelPlan,
    ListOverlap,
    NullLevel,
    Rare,
    Successive,
    TermFrequency,
    WithinKm,
    comparison_settings,
)
from .visitor._encoding import EncodedProfiles, encode_profiles
from .visitor._evidence import Evidence, history_records, ip_prefix
from .visitor._places import AddressWeeks
from .visitor._profile import ProfileRecord, profile_schema
from .visitor._scorer import VisitorScorer
from .visitor._user_agents import parse_user_agent

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "CUSTOMER_BLOCKING",
    "TF_COLUMNS",
    "AddressWeeks",
    "Both",
    "CustomerScorer",
    "Else",
    "EncodedProfiles",
    "EventRow",
    "Evidence",
    "ExactMatch",
    "LevelPlan",
    "ListOverlap",
    "NullLevel",
    "ProfileRecord",
    "Rare",
    "Successive",
    "TermFrequency",
    "VisitorScorer",
    "WithinKm",
    "blocking_rule_sql",
    "comparison_settings",
    "customer_settings",
    "encode_profiles",
    "history_records",
    "ip_prefix",
    "model_version",
    "normalise_document_id",
    "normalise_text",
    "parse_user_agent",
    "person_shares",
    "profile_schema",
    "split_key",
]

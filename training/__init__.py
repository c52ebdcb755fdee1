"""Splink pipelines: traffic simulation, comparison records, training, evaluation, model files.

Imported only by the `idstitch simulate`, `train`, `model shadow` and `relink --engine`
subcommands, never by the serving path.
The model file, Splink's own JSON, is the contract with `linkage`'s online scorer.
"""

from ._commands import run_shadow, run_simulate, run_train, run_train_customer
from ._customer_data import CustomerRecords, CustomerRecordsError, read_customer_records
from ._customer_train import CustomerTrainConfig, TrainedCustomerModel, train_customer_model
from ._profile_scoring import ScoredPairs, score_profiles
from ._simulate import SimulatedSignal, SimulationConfig, read_jsonl, simulate, summary, write_jsonl
from ._spark import SparkConfig, SparkUnavailable, spark_session
from ._train import TrainConfig, TrainedModel, train_visitor_model

__all__ = [
    "CustomerRecords",
    "CustomerRecordsError",
    "CustomerTrainConfig",
    "ScoredPairs",
    "SimulatedSignal",
    "SimulationConfig",
    "SparkConfig",
    "SparkUnavailable",
    "TrainConfig",
    "TrainedCustomerModel",
    "TrainedModel",
    "read_customer_records",
    "read_jsonl",
    "run_shadow",
    "run_simulate",
    "run_train",
    "run_train_customer",
    "score_profiles",
    "simulate",
    "spark_session",
    "summary",
    "train_customer_model",
    "train_visitor_model",
    "write_jsonl",
]

"""Splink pipelines: traffic simulation, comparison records, training, evaluation, model files.

Imported only by the `idstitch simulate` and `train` subcommands, never by the serving path.
The model file, Splink's own JSON, is the contract with `linkage`'s online scorer.
"""

from ._commands import run_simulate, run_train
from ._simulate import SimulatedSignal, SimulationConfig, read_jsonl, simulate, summary, write_jsonl
from ._train import TrainConfig, TrainedModel, train_visitor_model

__all__ = [
    "SimulatedSignal",
    "SimulationConfig",
    "TrainConfig",
    "TrainedModel",
    "read_jsonl",
    "run_simulate",
    "run_train",
    "simulate",
    "summary",
    "train_visitor_model",
    "write_jsonl",
]

"""What `idstitch simulate` and `idstitch train` do, behind the edge's argument parsing."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import linkage

from ._customer_data import read_customer_records
from ._customer_train import CustomerTrainConfig, TrainedCustomerModel, train_customer_model
from ._history import DeviceProfiles, device_profiles, snapshot_profiles
from ._replay import replay_into_store
from ._shadow import ShadowModel, ShadowReport, shadow, summary_lines, write_report
from ._simulate import SimulationConfig, read_jsonl, simulate, summary, write_jsonl
from ._train import TrainConfig, TrainedModel, train_visitor_model

Progress = Callable[[str], None]


def run_simulate(config: SimulationConfig, out: Path, progress: Progress = print) -> int:
    """Generate traffic with ground truth and write it as JSON lines; returns the signal count."""
    started = time.monotonic()
    progress(f"simulating {config.persons:,} persons over {config.days} days (seed {config.seed}) ...")
    signals = simulate(config)
    count = write_jsonl(out, signals)
    progress(f"wrote {count:,} signals to {out} in {time.monotonic() - started:.1f} s")
    for name, value in summary(signals).items():
        progress(f"  {name}: {value:,}" if isinstance(value, int) else f"  {name}: {value:.3f}")
    return count


def run_train(
    linkage_config: linkage.LinkageConfig,
    train_config: TrainConfig,
    *,
    signals: Path | None = None,
    store_path: Path | None = None,
    snapshot: Path | None = None,
    progress: Progress = print,
) -> TrainedModel:
    """Train the visitor model on a stored history, a running server's snapshot of it, or
    signals replayed into a scratch store.

    `store_path` is a data directory's DuckDB file; the server that owns it must be stopped
    (one process owns a store). `snapshot` is a directory a running server wrote
    (`WriteSnapshot`): it trains while the server serves.
    """
    profiles = load_profiles(
        linkage_config, signals=signals, store_path=store_path, snapshot=snapshot, progress=progress
    )
    return train_visitor_model(profiles, train_config, progress)


def run_shadow(
    linkage_config: linkage.LinkageConfig,
    candidate: Path,
    current: Path,
    out_dir: Path,
    *,
    signals: Path | None = None,
    store_path: Path | None = None,
    snapshot: Path | None = None,
    progress: Progress = print,
) -> ShadowReport:
    """Shadow the candidate model file beside the current one on a history (as `run_train`
    reads it) and write the report (`shadow.json`, `shadow.html`) into `out_dir`."""
    models = []
    for path in (current, candidate):
        loaded = linkage.VisitorModel.load(path)
        models.append(ShadowModel(loaded.scorer, loaded.threshold, path))
    profiles = load_profiles(
        linkage_config, signals=signals, store_path=store_path, snapshot=snapshot, progress=progress
    )
    report = shadow(profiles, models[0], models[1], progress=progress)
    page = write_report(report, out_dir)
    for line in summary_lines(report):
        progress(line)
    progress(f"report: {page}")
    return report


def load_profiles(
    linkage_config: linkage.LinkageConfig,
    *,
    signals: Path | None = None,
    store_path: Path | None = None,
    snapshot: Path | None = None,
    progress: Progress = print,
) -> DeviceProfiles:
    """Device profiles of a history: a snapshot, a stopped store, or signals replayed into a
    scratch store. Raises `StoreLocked` for the store of a running server."""
    if sum(source is not None for source in (signals, store_path, snapshot)) != 1:
        raise ValueError("give one of signals, store_path and snapshot")
    policy = linkage.IdentifierPolicy(linkage_config)
    if snapshot is not None:
        progress(f"building device profiles from the snapshot {snapshot} ...")
        return snapshot_profiles(snapshot, policy)
    with tempfile.TemporaryDirectory(prefix="idstitch-train-") as scratch:
        if signals is not None:
            store_path = Path(scratch) / "replay.duckdb"
            progress(f"replaying {signals} through the deterministic rules ...")
            count = replay_into_store(
                (s.signal for s in read_jsonl(signals)), store_path, linkage_config, progress=progress
            )
            progress(f"replayed {count:,} signals")
        assert store_path is not None
        store = linkage.DuckDBStore(store_path)
        try:
            progress("building device profiles from the stored history ...")
            return device_profiles(store, policy)
        finally:
            store.close()


def run_train_customer(
    records: Sequence[Path], config: CustomerTrainConfig, progress: Progress = print
) -> TrainedCustomerModel:
    """Train the customer model on customer-record files (CSV or Parquet, the import format).

    Raises CustomerRecordsError for a missing or unreadable file or a missing column."""
    started = time.monotonic()
    progress(f"reading customer records from {len(records)} file{'s' if len(records) != 1 else ''} ...")
    loaded = read_customer_records(records)
    progress(f"read {loaded.rows_read:,} rows in {time.monotonic() - started:.1f} s")
    if loaded.invalid_dates:
        progress(f"  {loaded.invalid_dates:,} dates of birth are not YYYY-MM-DD calendar dates: treated as unknown")
    return train_customer_model(loaded, config, progress)

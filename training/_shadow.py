"""Shadow a candidate visitor model beside the one in force, on the same history, changing nothing.

Both models link every anonymous device of the history the way the service links an anonymous
visitor (`training._link_evaluation`: the service's blocking, the online scorer, the candidate
persons' shares of the probability against the model's own threshold). The report is the
difference: links the candidate would make and drop, devices it would move to another person,
persons that would gain or lose devices, the probability bands where that happens, and the
held-out precision and recall of both on the same held-out logins. It reads a snapshot of the
history (or a stopped store, or simulated signals), never the running graph: shadowing costs
the server one snapshot and nothing else.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from linkage.modelling import EncodedProfiles, VisitorScorer, encode_profiles

from ._evaluate import Evaluation, held_out_logins
from ._history import DeviceProfiles
from ._link_evaluation import Blocks, best_person, evaluate_links

Progress = Callable[[str], None]

# Bands of match probability the report counts changed links in.
BANDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True, slots=True)
class ShadowModel:
    """A model as the shadow compares it: its scorer, threshold, version and file."""

    scorer: VisitorScorer
    threshold: float
    path: Path

    @property
    def version(self) -> str:
        return self.scorer.version


@dataclass(slots=True)
class ShadowReport:
    current: str
    candidate: str
    thresholds: tuple[float, float]
    devices: int  # anonymous devices both models linked or left alone
    links: tuple[int, int]  # in force under each
    made: int  # linked by the candidate only
    dropped: int  # linked by the current model only
    moved: int  # linked by both, to different persons
    persons_gaining: int
    persons_losing: int
    made_by_band: dict[str, int] = field(default_factory=dict)  # the candidate's probability
    dropped_by_band: dict[str, int] = field(default_factory=dict)  # the current model's
    held_out: dict[str, Any] = field(default_factory=dict)  # per model: by threshold, and at its own
    weights: list[dict[str, Any]] = field(default_factory=list)  # per level: both models' weights
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow(
    profiles: DeviceProfiles,
    current: ShadowModel,
    candidate: ShadowModel,
    *,
    holdout_share: float = 0.3,
    seed: int = 42,
    progress: Progress = print,
) -> ShadowReport:
    """Compare what `candidate` would link on `profiles` with what `current` links there."""
    started = time.monotonic()
    records, labels = profiles.records, profiles.labels
    anonymous = [i for i, label in enumerate(labels) if label is None]
    progress(f"linking {len(anonymous):,} anonymous devices of {len(records):,} with both models ...")
    encoded = encode_profiles(records)
    blocks = Blocks(records)
    person_of = [f"login:{label}" if label is not None else f"device:{i}" for i, label in enumerate(labels)]
    linked_now = _links(current, encoded, blocks, person_of, anonymous, progress)
    linked_then = _links(candidate, encoded, blocks, person_of, anonymous, progress)
    made = [i for i in linked_then if i not in linked_now]
    dropped = [i for i in linked_now if i not in linked_then]
    moved = [i for i in linked_then if i in linked_now and linked_then[i][0] != linked_now[i][0]]
    gaining = {linked_then[i][0] for i in (*made, *moved)}
    losing = {linked_now[i][0] for i in (*dropped, *moved)}

    progress("held-out precision and recall of both, on the same held-out logins ...")
    held_out = held_out_logins(labels, seed, holdout_share)
    held = {
        name: _held_out_figures(evaluate_links(model.scorer, records, labels, held_out, 0.95), model.threshold)
        for name, model in (("current", current), ("candidate", candidate))
    }
    return ShadowReport(
        current=current.version,
        candidate=candidate.version,
        thresholds=(current.threshold, candidate.threshold),
        devices=len(anonymous),
        links=(len(linked_now), len(linked_then)),
        made=len(made),
        dropped=len(dropped),
        moved=len(moved),
        persons_gaining=len(gaining),
        persons_losing=len(losing),
        made_by_band=_bands(linked_then[i][1] for i in made),
        dropped_by_band=_bands(linked_now[i][1] for i in dropped),
        held_out=held,
        weights=_weights_side_by_side(current.path, candidate.path),
        seconds=time.monotonic() - started,
    )


def write_report(report: ShadowReport, out_dir: Path) -> Path:
    """`shadow.json` and `shadow.html` (charts) into `out_dir`; returns the page's path."""
    from ._shadow_html import render

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "shadow.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    page = out_dir / "shadow.html"
    page.write_text(render(report), encoding="utf-8")
    return page


def summary_lines(report: ShadowReport) -> list[str]:
    """The report in a few terminal lines."""
    now, then = report.held_out["current"]["at_threshold"], report.held_out["candidate"]["at_threshold"]
    return [
        f"current {report.current} (links at {report.thresholds[0]:g}) -> candidate {report.candidate} "
        f"(at {report.thresholds[1]:g}), {report.devices:,} anonymous devices",
        f"links: {report.links[0]:,} -> {report.links[1]:,}: {report.made:,} made, {report.dropped:,} dropped, "
        f"{report.moved:,} moved to another person",
        f"persons: {report.persons_gaining:,} would gain devices, {report.persons_losing:,} would lose some",
        f"held-out: precision {now['precision']:.3f} -> {then['precision']:.3f}, "
        f"recall {now['recall']:.3f} -> {then['recall']:.3f} (each at its own threshold)",
    ]


def _links(
    model: ShadowModel,
    encoded: EncodedProfiles,
    blocks: Blocks,
    person_of: Sequence[str],
    devices: Sequence[int],
    progress: Progress,
) -> dict[int, tuple[str, float]]:
    """Device -> (person, probability) for every device the model links."""
    linked: dict[int, tuple[str, float]] = {}
    last = time.monotonic()
    for done, i in enumerate(devices, 1):
        best = best_person(model.scorer, encoded, blocks, person_of, i)
        if best is not None and best.probability >= model.threshold:
            linked[i] = (person_of[best.candidate], best.probability)
        if time.monotonic() - last > 5:
            last = time.monotonic()
            progress(f"  model {model.version}: {done:,} of {len(devices):,} devices")
    return linked


def _bands(probabilities: Any) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for p in probabilities:
        for low, high in pairwise(BANDS):
            if low <= p < high or (high == 1.0 and p == 1.0):
                counts[f"{low:g}-{high:g}"] += 1
                break
    return {f"{low:g}-{high:g}": counts[f"{low:g}-{high:g}"] for low, high in pairwise(BANDS)}


def _held_out_figures(evaluation: Evaluation, threshold: float) -> dict[str, Any]:
    rows = [asdict(m) for m in evaluation.by_threshold]
    nearest = min(rows, key=lambda m: abs(m["threshold"] - threshold))
    return {"positives": evaluation.positives, "by_threshold": rows, "at_threshold": nearest}


def _weights_side_by_side(current: Path, candidate: Path) -> list[dict[str, Any]]:
    """Each level's match weight, log2(m/u), in both models (None where a model lacks it)."""

    def weights(path: Path) -> dict[tuple[str, str], float | None]:
        model = json.loads(path.read_text(encoding="utf-8"))
        found: dict[tuple[str, str], float | None] = {}
        for comparison in model["comparisons"]:
            for level in comparison["comparison_levels"]:
                if level.get("is_null_level"):
                    continue
                m, u = level.get("m_probability"), level.get("u_probability")
                key = (comparison["output_column_name"], level.get("label_for_charts", level["sql_condition"]))
                found[key] = math.log2(m / u) if m and u else None
        return found

    now, then = weights(current), weights(candidate)
    keys = list(dict.fromkeys([*now, *then]))
    return [
        {"comparison": c, "level": label, "current": now.get((c, label)), "candidate": then.get((c, label))}
        for c, label in keys
    ]

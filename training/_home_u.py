"""u of the home levels, split by the household pairs that random sampling cannot see.

`estimate_u_using_random_sampling` counts how often two random profiles fall on each level.
Two random profiles almost never share a home, so it sees how many non-matching pairs share
one (the home levels together) but not how those split between "the same home and another
shared place" (or "the same home and user agent, in turn") and "the same home": the first
is left at the half-a-pair floor, a few bits above the last whatever the data say. Yet the
split is the evidence that tells a person's devices from their household's. The non-matching
pairs that share a home are the household's members, and labelled ones are there to count:
devices of two different logins of one home.
By the chain rule,

    u(level) = P(shares a home | non-match) * P(level | non-match, shares a home),

so the home levels keep random sampling's total and divide it as the labelled household pairs
do (additive smoothing of half a pair each, as for unobserved levels).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linkage.modelling import ProfileRecord, VisitorScorer

from ._visitor_settings import HOME_LABEL, HOME_LABELS, PLACE_COMPARISON

# A "home" more labelled profiles share than this is no household's (a student hall, an
# address the homes heuristic let through): its pairs would say nothing about one household.
MAX_PROFILES_PER_HOME = 30


@dataclass(frozen=True, slots=True)
class HomeSplit:
    """What the split saw and wrote: labelled household pairs on each home level, and the u's."""

    pairs: dict[str, int]  # labelled non-matching pairs sharing a home, on each home level
    u: dict[str, float]  # each home level's u as written
    u_before: dict[str, float]  # as random sampling left it

    @property
    def household_pairs(self) -> int:
        """Labelled non-matching pairs sharing a home, on any home level."""
        return sum(self.pairs.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "household_pairs": self.household_pairs,
            "pairs": self.pairs,
            "u": self.u,
            "u_from_random_pairs": self.u_before,
        }


def split_home_u(model_path: Path, records: Sequence[ProfileRecord], labels: Sequence[str | None]) -> HomeSplit | None:
    """Rewrite the u of the home levels (`HOME_LABELS` the model has, "the same home" among
    them) of `model_path` as the labelled household pairs among `records` divide them (see the
    module docstring). None, and the file left alone, when the model has fewer than two home
    levels or no labelled household pair falls on any."""
    model = json.loads(model_path.read_text(encoding="utf-8"))
    comparison_index, levels = _home_levels(model)
    if comparison_index is None:
        return None
    counts = _household_levels(VisitorScorer.from_model(model), comparison_index, records, labels)
    on_level = {label: counts.get(position, 0) for label, position in levels.items()}
    seen = sum(on_level.values())
    if seen == 0:
        return None
    comparison_levels = model["comparisons"][comparison_index]["comparison_levels"]
    before = {label: float(comparison_levels[position]["u_probability"]) for label, position in levels.items()}
    total = sum(before.values())
    smoothing = 0.5 * len(levels)
    written: dict[str, float] = {}
    for label, position in levels.items():
        written[label] = total * (on_level[label] + 0.5) / (seen + smoothing)
        comparison_levels[position]["u_probability"] = written[label]
    model_path.write_text(json.dumps(model, indent=4) + "\n", encoding="utf-8")
    return HomeSplit(on_level, written, before)


def _home_levels(model: dict[str, Any]) -> tuple[int | None, dict[str, int]]:
    """The place comparison's index and the positions of its home levels, by label."""
    for c, comparison in enumerate(model.get("comparisons", [])):
        if comparison.get("output_column_name") != PLACE_COMPARISON:
            continue
        positions = {level.get("label_for_charts"): k for k, level in enumerate(comparison["comparison_levels"])}
        found = {label: positions[label] for label in HOME_LABELS if label in positions}
        if HOME_LABEL in found and len(found) >= 2:
            return c, found
    return None, {}


def _household_levels(
    scorer: VisitorScorer, comparison: int, records: Sequence[ProfileRecord], labels: Sequence[str | None]
) -> dict[int, int]:
    """How many labelled non-matching pairs that share a home fall on each level of the
    comparison, as the online scorer assigns them (each pair once)."""
    by_home: dict[str, list[int]] = defaultdict(list)
    for i, (record, label) in enumerate(zip(records, labels, strict=True)):
        # A pair on a home level shares a home, which one of them may only have passed through.
        if label is not None:
            for home in dict.fromkeys((*(record.homes or ()), *(record.homes_seen or ()))):
                by_home[home].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in by_home.values():
        if len(members) <= MAX_PROFILES_PER_HOME:
            pairs.update((a, b) for k, a in enumerate(members) for b in members[k + 1 :] if labels[a] != labels[b])
    partners: dict[int, list[int]] = defaultdict(list)
    for a, b in pairs:
        partners[a].append(b)
    counts: dict[int, int] = defaultdict(int)
    for left, rights in partners.items():
        encoded = scorer.encode([records[left], *(records[r] for r in rights)])
        levels = scorer.score(encoded.take([0]), encoded.take(np.arange(1, len(encoded)))).levels[:, comparison]
        for level in levels.tolist():
            counts[level] += 1
    return dict(counts)

"""Held-out evaluation the way the service links: each held-out device against everyone.

Pairwise metrics over held-out devices alone flatter a model: a held-out device then never
meets the household members, neighbours and office mates it must be told from online. Here
each held-out device is the anonymous visitor: blocked like the service blocks (a shared
address; a shared network in the same city) against every profile, scored with the online
scorer, and linked to its best candidate person when that person's share of the probability
(`linkage.visitor._linker.person_shares`, as online) reaches the threshold.

Candidate persons: training devices grouped by their login (hard-linked online), every other
device on its own (held-out devices have their labels hidden; unlabelled ones have none). A link
to a held-out device of the same login is right; to another login's device, wrong; to an
unlabelled device, unknown — counted apart, never in precision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from linkage.modelling import EncodedProfiles, ProfileRecord, VisitorScorer, encode_profiles, person_shares

from ._evaluate import THRESHOLDS, Evaluation, ThresholdMetrics, choose

# As online (`SoftLinks` candidate limit): the most candidates one visitor is scored against.
CANDIDATE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class _Link:
    probability: float
    right: bool | None  # None: the person linked to carries no label


def evaluate_links(
    scorer: VisitorScorer,
    records: Sequence[ProfileRecord],
    labels: Sequence[str | None],
    held_out: set[str],
    min_precision: float,
    threshold: float | None = None,
) -> Evaluation:
    """Link metrics by threshold over the devices of the `held_out` logins.

    `positives` are held-out devices with another device of their login (a link to find);
    precision is over links whose person is labelled, recall over `positives`. The chosen
    threshold is `threshold` when given, else the one `choose` picks."""
    encoded = encode_profiles(records)
    person_of = [
        f"login:{label}" if label is not None and label not in held_out else f"device:{i}"
        for i, label in enumerate(labels)
    ]
    blocks = Blocks(records)
    tested = [i for i, label in enumerate(labels) if label in held_out]
    devices_of_login: dict[str | None, int] = defaultdict(int)
    for i in tested:
        devices_of_login[labels[i]] += 1
    positives = sum(1 for i in tested if devices_of_login[labels[i]] > 1)
    links: list[_Link] = []
    scored = 0
    for i in tested:
        best = best_person(scorer, encoded, blocks, person_of, i)
        if best is None:
            continue
        scored += best.scored
        label = labels[best.candidate]
        right = None if label is None else label == labels[i]
        links.append(_Link(best.probability, right))
    by_threshold = [_metrics(links, positives, t) for t in THRESHOLDS]
    chosen = choose(by_threshold, min_precision) if threshold is None else _metrics(links, positives, threshold)
    return Evaluation(positives, scored, by_threshold, chosen, min_precision)


@dataclass(frozen=True, slots=True)
class BestPerson:
    candidate: int  # the best-scoring profile of the person
    probability: float  # the person's share of the probability
    scored: int  # candidate pairs scored


def best_person(
    scorer: VisitorScorer, encoded: EncodedProfiles, blocks: Blocks, person_of: Sequence[str], i: int
) -> BestPerson | None:
    """The candidate person profile `i` would be linked to, as online: blocked, scored, and
    the persons' shares of the probability; None when blocking finds no candidate."""
    candidates = blocks.candidates(i)
    if not candidates:
        return None
    scores = scorer.score(scorer.probe(encoded, i), encoded.take(candidates))
    rows, probabilities = person_shares(scores.match_weight, [person_of[c] for c in candidates])
    top = int(np.argmax(probabilities))
    return BestPerson(candidates[int(rows[top])], float(probabilities[top]), len(candidates))


def _metrics(links: list[_Link], positives: int, threshold: float) -> ThresholdMetrics:
    made = [link for link in links if link.probability >= threshold]
    tp = sum(1 for link in made if link.right is True)
    fp = sum(1 for link in made if link.right is False)
    return ThresholdMetrics.from_counts(threshold, tp, fp, positives)


class Blocks:
    """The service's blocking indexes over profile records: address, home, network + city."""

    def __init__(self, records: Sequence[ProfileRecord]) -> None:
        self._records = records
        self._by_ip: dict[str, list[int]] = defaultdict(list)
        self._by_network: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._by_home: dict[str, list[int]] = defaultdict(list)
        for i, record in enumerate(records):
            for ip in record.ips or ():
                self._by_ip[ip].append(i)
            for home in record.homes_seen or ():
                self._by_home[home].append(i)
            if record.city is not None:
                for prefix in record.ip_prefixes or ():
                    self._by_network[(prefix, record.city)].append(i)

    def candidates(self, i: int) -> list[int]:
        record = self._records[i]
        buckets = [self._by_ip[ip] for ip in record.ips or ()]
        buckets += [self._by_home[home] for home in record.homes_seen or ()]
        if record.city is not None:
            buckets += [self._by_network[(prefix, record.city)] for prefix in record.ip_prefixes or ()]
        found: dict[int, None] = {}
        for bucket in buckets:
            for other in bucket:
                if other != i:
                    found[other] = None
                    if len(found) >= CANDIDATE_LIMIT:
                        return list(found)
        return list(found)

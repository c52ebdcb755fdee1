"""Soft links from the customer model: a record's component joins the person whose customer
records match it best, under the same rules as visitor links."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..identifiers import clash
from ..softlinks import LinkState, Record, SoftLink, UniquesOf
from ._catalogue import CustomerAttributes
from ._index import CustomerIndex
from ._model import CustomerModel


class CustomerLinks:
    """The customer index and the model that links by it."""

    def __init__(self, model: CustomerModel | None, candidate_limit: int = 200) -> None:
        self.model = model
        self.index = CustomerIndex(candidate_limit, model.tf_population if model is not None else 1)

    def match(
        self,
        component: int,
        key: str,
        soft: LinkState,
        owner_of: Callable[[str], int],
        uniques_of: UniquesOf,
        record: Record,
        now: float,
    ) -> SoftLink | None:
        """Score the record at `key` (held by `component`) against the records it blocks with,
        and soft-link the component to the best person above the threshold.

        A component that roots soft links stays a root (it is matched from the other side); a
        link the customer model made and no longer finds is dropped."""
        model = self.model
        current = soft.link_of(component)
        if model is None or soft.members(component):
            return current
        index = self.index
        attributes_of = index.attributes
        root_of = soft.root_of
        attributes = attributes_of(key)
        roots: list[int] = []  # of each candidate
        candidates: list[CustomerAttributes] = []
        for other in index.candidates(attributes, leave_out=key):
            owner = owner_of(other)
            if owner == component:
                continue
            root = root_of(owner)
            if root == component:
                continue
            roots.append(root)
            candidates.append(attributes_of(other))
        mine = uniques_of(component)
        if candidates:
            scores = model.scorer.score(attributes, candidates, index.term_frequency)
            # Most records match nobody: then the walk below would stop at its first row.
            passing = bool((scores.match_probability >= model.threshold).any())
            rows = np.argsort(-scores.match_probability, kind="stable") if passing else ()
            for row in rows:
                probability = float(scores.match_probability[row])
                if probability < model.threshold:
                    break
                root = roots[int(row)]
                if clash(mine, soft.group_uniques(root, uniques_of)) is not None:
                    continue
                if current is not None and current.target == root:
                    return current
                link = SoftLink(
                    component=component,
                    target=root,
                    probability=probability,
                    match_weight=float(scores.match_weight[row]),
                    model_version=model.scorer.version,
                    weights=tuple(model.scorer.waterfall(scores, int(row))),
                    linked_at=now,
                )
                soft.attach(link, record)
                return link
        if current is not None and current.model_version == model.scorer.version:
            soft.detach(component, record, "the customer record changed: no match above the threshold")
            return None
        return current

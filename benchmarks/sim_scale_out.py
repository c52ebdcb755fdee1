"""Simulate the scale-out design of docs/scaling.md on simulated traffic: how often a write
crosses partitions, for two ways of partitioning the identity graph.

    python benchmarks/sim_scale_out.py                 # 20,000 persons, 30 days
    python benchmarks/sim_scale_out.py --persons 5000

The traffic is the simulator's (households, offices, cookie churn, logins, newsletter clicks),
stitched deterministically the way the service stitches hard links: identifiers seen in one
signal are one person (the unique-namespace guard and the visitor model aside: both only ever
keep persons apart or join them softly, so they add no cross-partition writes of their own).
For each partition count it replays the signals in time order and counts:

- **by identifier** (each identifier lives on the partition of its key's hash): signals whose
  identifiers live on two or more partitions — each a distributed transaction;
- **by person** (a person and all its identifiers live on one partition, found through a
  directory of identifier -> person; a new person goes where its first identifier hashes):
  signals that merge persons of two partitions — each a move of the smaller person's rows to
  the larger's partition — and the identifiers moved.

Rates are per signal, so they scale to any ingest rate: at 10,000 signals/s, a share of 0.001
is 10 cross-partition operations a second.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from _harness import machine, machine_line

from training import SimulationConfig, simulate

_PARTITIONS = (4, 16, 64)


def _partition(key: str, partitions: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % partitions


class _People:
    """Union-find of persons over identifiers, each person with its partition and size."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.person_of: dict[str, int] = {}
        self.parent: list[int] = []
        self.size: list[int] = []
        self.home: list[int] = []

    def find(self, p: int) -> int:
        while self.parent[p] != p:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        return p

    def signal(self, keys: list[str]) -> tuple[bool, int]:
        """Apply one signal; (whether it merged persons of two partitions, identifiers moved)."""
        persons = {self.find(self.person_of[k]) for k in keys if k in self.person_of}
        if not persons:
            person = len(self.parent)
            self.parent.append(person)
            self.size.append(0)
            self.home.append(_partition(keys[0], self.partitions))
            persons = {person}
        survivor = max(persons, key=lambda p: (self.size[p], -p))
        crossed, moved = False, 0
        for other in persons - {survivor}:
            if self.home[other] != self.home[survivor]:
                crossed, moved = True, moved + self.size[other]
            self.parent[other] = survivor
            self.size[survivor] += self.size[other]
        for k in keys:
            if k not in self.person_of:
                self.person_of[k] = survivor
                self.size[survivor] += 1
        return crossed, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    began = time.perf_counter()
    signals = [
        [f"{i.namespace}\x1f{i.value}" for i in s.signal.identifiers]
        for s in simulate(SimulationConfig(persons=args.persons, days=args.days, seed=args.seed))
    ]
    identifiers = len({k for keys in signals for k in keys})
    multi = sum(1 for keys in signals if len(keys) > 1)
    print(
        f"{len(signals):,} signals of {args.persons:,} simulated persons over {args.days} days; "
        f"{identifiers:,} identifiers; {multi:,} signals carry 2+ identifiers ({multi / len(signals):.3f})\n"
    )
    print("| partitions | by identifier: cross-partition signals | by person: cross-partition merges "
          "| identifiers moved per signal |")  # fmt: skip
    print("|---|---|---|---|")
    for partitions in _PARTITIONS:
        spread = sum(1 for keys in signals if len({_partition(k, partitions) for k in keys}) > 1)
        people = _People(partitions)
        crossed = moved = 0
        for keys in signals:
            merged, count = people.signal(keys)
            crossed += merged
            moved += count
        n = len(signals)
        print(
            f"| {partitions} | {spread:,} ({spread / n:.4f} per signal) | {crossed:,} ({crossed / n:.5f} per signal) "
            f"| {moved / n:.5f} |"
        )
    print(f"\n{machine_line(machine(Path.cwd())).rstrip('.')}; {time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()

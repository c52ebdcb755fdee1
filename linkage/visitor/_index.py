"""Evidence per component and the blocking indexes that find candidate components for it."""

from __future__ import annotations

from itertools import islice
from typing import NamedTuple, TypeVar

from .._types import Context
from ._evidence import Evidence, ip_prefix, place_id
from ._homes import HOME_MAX_VISITORS, Homes
from ._places import PLACE_MAX_VISITORS, AddressWeeks
from ._profile import ProfileRecord

K = TypeVar("K")


_NOBODY: frozenset[int] = frozenset()


class Observed(NamedTuple):
    new_address: bool
    settled: bool
    # Other components whose profile this signal changed: their address's home changed id, or
    # the address now has too many users to be a home or a place.
    changed_others: frozenset[int] = _NOBODY


class VisitorIndex:
    """Keeps each component's `Evidence`, its homes, and the blocking indexes over them.

    Candidates for a component are the components that used one of its addresses, an address
    of a home it was on (`linkage._homes`), or one of its networks in the same city. An address
    shared by thousands (a carrier's CGNAT pool) yields at most `bucket_limit` candidates; its
    term frequency makes it weak evidence anyway.
    """

    def __init__(
        self, bucket_limit: int = 200, tf_population: int | None = None, agent_frequencies: bool = True
    ) -> None:
        self._bucket_limit = bucket_limit
        # Who sent each user-agent string is kept only for a model that weighs the string's rarity.
        self._agent_frequencies = agent_frequencies
        # None: a term frequency is a share of this index's own components.
        self._tf_population = tf_population
        self._evidence: dict[int, Evidence] = {}
        self._by_ip: dict[str, set[int]] = {}
        self._by_network: dict[tuple[str, str], set[int]] = {}
        self._by_agent: dict[str, set[int]] = {}  # for user-agent term frequencies, not blocking
        self._components_with_ips = 0
        self.homes = Homes()
        self.weeks = AddressWeeks()

    def __len__(self) -> int:
        return len(self._evidence)

    @property
    def settings(self) -> tuple[int, int | None, bool]:
        """What the index was made with: an index of other settings is not interchangeable."""
        return self._bucket_limit, self._tf_population, self._agent_frequencies

    def has(self, component: int) -> bool:
        return component in self._evidence

    def observations(self, component: int) -> int:
        """How many signals brought this component's evidence."""
        evidence = self._evidence.get(component)
        return 0 if evidence is None else sum(evidence.hours)

    def users(self, ip: str) -> set[int]:
        """The components that used an address."""
        return self._by_ip.get(ip, set())

    def observe(self, component: int, timestamp: float, context: Context) -> Observed:
        """Add one signal's evidence: whether it brought an address not seen before, and whether
        it settled the visitor on an address (a second day there: a home or a place)."""
        evidence = self._evidence.get(component)
        if evidence is None:
            evidence = self._evidence[component] = Evidence()
        had_ips = bool(evidence.ips)
        new_ip = bool(context.ip) and context.ip not in evidence.ips
        settled = evidence.observe(timestamp, context)
        if context.user_agent and self._agent_frequencies:
            self._by_agent.setdefault(context.user_agent, set()).add(component)
        changed = _NOBODY
        if context.ip:
            if not had_ips:
                self._components_with_ips += 1
            users = self._by_ip.setdefault(context.ip, set())
            users.add(component)
            if new_ip and len(users) - 1 in (HOME_MAX_VISITORS, PLACE_MAX_VISITORS):
                changed = changed | users  # no longer a home (or a place) for any of them
            crowded = len(users) > PLACE_MAX_VISITORS
            workplace = crowded and self.weeks.is_workplace(context.ip)
            self.weeks.observe(timestamp, context.ip)
            if crowded and self.weeks.is_workplace(context.ip) != workplace:
                changed = changed | users  # a place for them now, or no longer
            if settled and self._rare(context.ip):
                for ip in self.homes.join([ip for ip in evidence.settled() if self._rare(ip)]):
                    changed = changed | self._by_ip.get(ip, _NOBODY)
            if context.geo.city:
                network = (ip_prefix(context.ip), context.geo.city.strip().lower())
                self._by_network.setdefault(network, set()).add(component)
        return Observed(new_ip, settled, changed - {component} if changed else _NOBODY)

    def merge(self, loser: int, winner: int) -> None:
        """The loser's evidence joins the winner's (a hard merge)."""
        lost = self._evidence.pop(loser, None)
        if lost is None:
            return
        if lost.ips:
            self._components_with_ips -= 1
        for bucket in self._buckets_of(lost) + [self._by_agent[a] for a in lost.agents if a in self._by_agent]:
            bucket.discard(loser)
            bucket.add(winner)
        kept = self._evidence.get(winner)
        if kept is None:
            self._evidence[winner] = lost
            if lost.ips:
                self._components_with_ips += 1
            return
        if lost.ips and not kept.ips:
            self._components_with_ips += 1
        kept.absorb(lost)

    def remove(self, component: int) -> None:
        """Forget a component's evidence and every blocking entry of it (an erased person).

        Counters are pruned as they grow, so the buckets are searched whole, not by its evidence."""
        evidence = self._evidence.pop(component, None)
        if evidence is not None and evidence.ips:
            self._components_with_ips -= 1
        for ip in _discard_everywhere(self._by_ip, component):
            self.homes.discard(ip)  # nobody left who used it: no trace of it stays
            self.weeks.discard(ip)
        _discard_everywhere(self._by_network, component)
        _discard_everywhere(self._by_agent, component)

    def candidates(self, component: int, limit: int) -> list[int]:
        """Other components sharing an address, a home, or a network and city, most used first."""
        evidence = self._evidence.get(component)
        if evidence is None:
            return []
        found: dict[int, None] = {}
        buckets = self._ip_buckets(evidence) + self._home_buckets(evidence) + self._network_buckets(evidence)
        for bucket in buckets:
            # A bucket at a time (C loops), then cut back to the first `limit`: the same list
            # as stopping at the limit, since a dict keeps the order keys came in.
            found.update(dict.fromkeys(islice(bucket, self._bucket_limit)))
            found.pop(component, None)
            if len(found) >= limit:
                return list(found)[:limit]
        return list(found)

    def has_evidence(self, component: int) -> bool:
        """Whether `record(component)` is a profile (without building it)."""
        evidence = self._evidence.get(component)
        return evidence is not None and not evidence.empty

    def record(self, component: int) -> ProfileRecord | None:
        evidence = self._evidence.get(component)
        if evidence is None or evidence.empty:
            return None
        return evidence.record(
            component,
            share_of=self._share,
            home_of=self._home,
            place_of=self._place,
            agent_share=self._agent_share if self._agent_frequencies else None,
        )

    def _rare(self, ip: str) -> bool:
        return len(self._by_ip.get(ip, ())) <= HOME_MAX_VISITORS

    def _home(self, ip: str) -> str | None:
        return self.homes.home(ip) if self._rare(ip) else None

    def _place(self, ip: str) -> str | None:
        return place_id(ip) if self.weeks.is_place(ip, len(self._by_ip.get(ip, ()))) else None

    def _agent_share(self, agent: str) -> float:
        """A user-agent string's term frequency: the share of components that sent it."""
        users = len(self._by_agent.get(agent, ()))
        population = self._tf_population or len(self._evidence)
        return min(max(users, 1) / max(population, 1), 1.0)

    def _share(self, ip: str) -> float:
        """An address's term frequency: the share of components that used it."""
        users = len(self._by_ip.get(ip, ()))
        population = self._tf_population or self._components_with_ips
        return min(users / max(population, 1), 1.0)

    def _home_buckets(self, evidence: Evidence) -> list[set[int]]:
        """The users of the other addresses of the homes this component was on."""
        buckets = []
        own = evidence.ips.keys()
        for home in evidence.homes_seen(self._home):
            for ip in sorted(self.homes.addresses(home) - own):
                bucket = self._by_ip.get(ip)
                if bucket is not None:
                    buckets.append(bucket)
        return buckets

    def _buckets_of(self, evidence: Evidence) -> list[set[int]]:
        """The buckets this component's own evidence puts it in."""
        return self._ip_buckets(evidence) + self._network_buckets(evidence)

    def _ip_buckets(self, evidence: Evidence) -> list[set[int]]:
        return [self._by_ip[ip] for ip, _ in evidence.ips.most_common() if ip in self._by_ip]

    def _network_buckets(self, evidence: Evidence) -> list[set[int]]:
        buckets = []
        for (_, city), _ in evidence.places.most_common(3):
            for prefix, _ in evidence.prefixes.most_common(3):
                bucket = self._by_network.get((prefix, city))
                if bucket is not None:
                    buckets.append(bucket)
        return buckets


def _discard_everywhere(index: dict[K, set[int]], component: int) -> list[K]:
    """Take `component` out of every bucket; the keys whose buckets it leaves empty (deleted)."""
    emptied = []
    for key in [k for k, bucket in index.items() if component in bucket]:
        bucket = index[key]
        bucket.discard(component)
        if not bucket:
            del index[key]
            emptied.append(key)
    return emptied

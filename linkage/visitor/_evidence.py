"""Visitor evidence per component, accumulated from signals, and the records the model compares.

IP, geo, user agent and time are evidence, never identifiers. Each component keeps compact
counts of them; `ProfileRecord`s are derived on demand. The same accumulation serves the
online path (one signal at a time) and training (the stored history replayed in time order).
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from .._types import Context
from ._homes import HOME_MAX_VISITORS, homes_of_history
from ._places import AddressWeeks
from ._profile import MAX_DAYS, MAX_HOMES, MAX_HOURS, MAX_IPS, MAX_PLACES, MAX_PREFIXES, ProfileRecord
from ._user_agents import parse_user_agent

_DAY = 86_400
SETTLED = -1  # in Evidence.ip_days: the address was used on two or more days
_T = TypeVar("_T")
# Counters are pruned to this many entries so a component that roams stays small.
_KEEP = 16


class Evidence:
    """What one component has shown: addresses, places, devices and times."""

    __slots__ = ("agents", "days", "devices", "gps", "hours", "ip_days", "ips", "places", "prefixes")

    def __init__(self) -> None:
        self.ips: Counter[str] = Counter()
        self.prefixes: Counter[str] = Counter()
        self.places: Counter[tuple[str, str]] = Counter()  # (country, city)
        self.devices: Counter[tuple[str, str]] = Counter()  # (family, kind)
        self.hours = [0] * 24
        self.days: set[int] = set()
        self.gps: list[float] = [0.0, 0.0, 0.0]  # sum of latitudes, sum of longitudes, count
        # Per full user-agent string: [signals, first seen, last seen] (whole epoch seconds).
        self.agents: dict[str, list[int]] = {}
        # Per address kept in `ips`: the day it was first used, or SETTLED once used on another.
        self.ip_days: dict[str, int] = {}

    def observe(self, timestamp: float, ctx: Context) -> bool:
        """Add one signal's evidence; True when it settled this visitor on its address (the
        address's first use on a second day)."""
        settled = False
        day = int(timestamp // _DAY)
        if ctx.ip:
            self.ips[ctx.ip] += 1
            self.prefixes[ip_prefix(ctx.ip)] += 1
            first = self.ip_days.setdefault(ctx.ip, day)
            if first != day and first != SETTLED:
                self.ip_days[ctx.ip] = SETTLED
                settled = True
            if _prune(self.ips):
                self.ip_days = {ip: d for ip, d in self.ip_days.items() if ip in self.ips}
            _prune(self.prefixes)
        if ctx.geo.country or ctx.geo.city:
            self.places[(ctx.geo.country.upper(), ctx.geo.city.strip().lower())] += 1
            _prune(self.places)
        if ctx.geo.latitude is not None and ctx.geo.longitude is not None:
            self.gps[0] += ctx.geo.latitude
            self.gps[1] += ctx.geo.longitude
            self.gps[2] += 1
        if ctx.user_agent:
            self.devices[parse_user_agent(ctx.user_agent)] += 1
            _prune(self.devices)
            second = int(timestamp // 1)
            agent = self.agents.get(ctx.user_agent)
            if agent is None:
                self.agents[ctx.user_agent] = [1, second, second]
                _prune_agents(self.agents)
            else:
                agent[0] += 1
                agent[1] = min(agent[1], second)
                agent[2] = max(agent[2], second)
        self.hours[int(timestamp // 3600) % 24] += 1
        self.days.add(day)
        if len(self.days) > MAX_DAYS:
            self.days.discard(min(self.days))
        return settled

    def absorb(self, other: Evidence) -> None:
        """Add another component's evidence (a hard merge)."""
        pairs: tuple[tuple[Counter[Any], Counter[Any]], ...] = (
            (self.ips, other.ips),
            (self.prefixes, other.prefixes),
            (self.places, other.places),
            (self.devices, other.devices),
        )
        for mine, theirs in pairs:
            mine.update(theirs)
            _prune(mine)
        for ip, day in other.ip_days.items():
            first = self.ip_days.setdefault(ip, day)
            if first != day:
                self.ip_days[ip] = SETTLED
        self.ip_days = {ip: d for ip, d in self.ip_days.items() if ip in self.ips}
        self.hours = [a + b for a, b in zip(self.hours, other.hours, strict=True)]
        self.days |= other.days
        while len(self.days) > MAX_DAYS:
            self.days.discard(min(self.days))
        self.gps = [a + b for a, b in zip(self.gps, other.gps, strict=True)]
        for agent, (count, first, last) in other.agents.items():
            seen = self.agents.get(agent)
            if seen is None:
                self.agents[agent] = [count, first, last]
            else:
                self.agents[agent] = [seen[0] + count, min(seen[1], first), max(seen[2], last)]
        _prune_agents(self.agents)

    @property
    def empty(self) -> bool:
        return not self.days

    def settled(self) -> list[str]:
        """The addresses this visitor used on two or more days, most used first."""
        return [ip for ip, _ in self.ips.most_common() if self.ip_days.get(ip) == SETTLED]

    def record(
        self,
        unique_id: int,
        share_of: Callable[[str], float | None] | None = None,
        home_of: Callable[[str], str | None] | None = None,
        place_of: Callable[[str], str | None] | None = None,
        agent_share: Callable[[str], float | None] | None = None,
    ) -> ProfileRecord:
        """The profile as the model compares it; `share_of` gives an address's term frequency
        (the top address's is compared), `home_of` the home of an address (None: not a
        home, see `linkage.visitor._homes`), `place_of` the place id of an address this visitor
        returns to that is not a home (None: too many use it to say anything), `agent_share`
        the term frequency of a user-agent string."""
        top_ip = _most_common(self.ips)
        place = _most_common(self.places)
        device = _most_common(self.devices)
        agent = min(self.agents.items(), key=lambda item: (-item[1][0], item[0])) if self.agents else None
        active = [h for h in heapq.nlargest(MAX_HOURS, range(24), key=lambda h: (self.hours[h], -h)) if self.hours[h]]
        homes = self._homes(home_of) if home_of is not None else None
        return ProfileRecord(
            unique_id=unique_id,
            top_ip=top_ip,
            tf_top_ip=None if top_ip is None or share_of is None else share_of(top_ip),
            ips=_top(self.ips, MAX_IPS),
            ip_prefixes=_top(self.prefixes, MAX_PREFIXES),
            city=f"{place[0]}/{place[1]}" if place and place[1] else None,
            country=place[0] if place and place[0] else None,
            latitude=self.gps[0] / self.gps[2] if self.gps[2] else None,
            longitude=self.gps[1] / self.gps[2] if self.gps[2] else None,
            user_agent_family=device[0] if device else None,
            device_kind=device[1] if device else None,
            active_hours=tuple(sorted(active)) or None,
            active_days=tuple(sorted(self.days)) or None,
            user_agent=agent[0] if agent else None,
            agent_first_seen=agent[1][1] if agent else None,
            agent_last_seen=agent[1][2] if agent else None,
            homes=homes,
            places=self._places(homes, home_of, place_of) if home_of is not None and place_of is not None else None,
            tf_user_agent=None if agent is None or agent_share is None else agent_share(agent[0]),
            homes_seen=(tuple(sorted(self.homes_seen(home_of))) or None) if home_of is not None else None,
        )

    def _homes(self, home_of: Callable[[str], str | None]) -> tuple[str, ...] | None:
        homes = {home for ip in self.settled() if (home := home_of(ip)) is not None}
        return tuple(sorted(homes)[:MAX_HOMES]) or None

    def homes_seen(self, home_of: Callable[[str], str | None]) -> list[str]:
        """The homes of the addresses this visitor used, settled on or not, most used first:
        at most MAX_HOMES, so that a phone that visits many friends keeps its own."""
        homes = dict.fromkeys(home for ip, _ in self.ips.most_common() if (home := home_of(ip)) is not None)
        return list(homes)[:MAX_HOMES]

    def _places(
        self,
        homes: tuple[str, ...] | None,
        home_of: Callable[[str], str | None],
        place_of: Callable[[str], str | None],
    ) -> tuple[str, ...] | None:
        # A place is an address the visitor came back to (a carrier's CGNAT address comes up on
        # one day by chance); the addresses of one home are one place.
        places = dict.fromkeys(homes or ())
        for ip in self.settled():
            if home_of(ip) is None and (place := place_of(ip)) is not None:
                places[place] = None
        return tuple(sorted(list(places)[:MAX_PLACES])) or None


@lru_cache(maxsize=1 << 16)
def ip_prefix(ip: str) -> str:
    """The /24 of an IPv4 address or the /48 of an IPv6 one: roughly one network."""
    address = ipaddress.ip_address(ip)
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def _prune(counter: Counter[Any]) -> bool:
    """Keep the _KEEP most common entries; True if any went."""
    if len(counter) <= _KEEP:
        return False
    for key, _ in counter.most_common()[_KEEP:]:
        del counter[key]
    return True


def _prune_agents(agents: dict[str, list[int]]) -> None:
    """Keep the _KEEP most used user agents (ties: the most recently seen)."""
    if len(agents) > _KEEP:
        kept = sorted(agents, key=lambda a: (-agents[a][0], -agents[a][2], a))[:_KEEP]
        for agent in set(agents) - set(kept):
            del agents[agent]


def _most_common(counter: Counter[_T]) -> _T | None:
    if not counter:
        return None
    # Ties go to the smallest key so the result never depends on insertion order.
    return min(counter, key=lambda k: (-counter[k], str(k)))


def _top(counter: Counter[str], n: int) -> tuple[str, ...] | None:
    if not counter:
        return None
    return tuple(sorted(counter, key=lambda k: (-counter[k], k))[:n])


def ip_shares(evidence: Iterable[Evidence]) -> dict[str, float]:
    """Each address's term frequency: the share of components with evidence that used it."""
    return _shares(e.ips.keys() for e in evidence)


def agent_shares(evidence: Iterable[Evidence]) -> dict[str, float]:
    """Each user-agent string's term frequency: the share of components with evidence that sent it."""
    return _shares(e.agents.keys() for e in evidence)


def _shares(values_of_each: Iterable[Iterable[str]]) -> dict[str, float]:
    users: Counter[str] = Counter()
    total = 0
    for values in values_of_each:
        kept = list(values)
        if kept:
            total += 1
            users.update(kept)
    return {value: n / total for value, n in users.items()} if total else {}


def history_records(evidence: Sequence[Evidence], weeks: AddressWeeks) -> list[tuple[int, ProfileRecord]]:
    """The records of a whole history at once (training, benchmarks): term frequencies, homes
    and workplaces (`weeks`: every signal of the history with an address) from all of it, as
    the online index has them by the end. One (position in `evidence`, record) per non-empty
    evidence; unique ids count from 1 in that order."""
    users: Counter[str] = Counter()
    for e in evidence:
        users.update(e.ips.keys())
    shares = ip_shares(evidence)
    homes = homes_of_history((e.settled() for e in evidence), users)
    agents = agent_shares(evidence)

    def home_of(ip: str) -> str | None:
        return homes.home(ip) if users[ip] <= HOME_MAX_VISITORS else None

    def place_of(ip: str) -> str | None:
        return place_id(ip) if weeks.is_place(ip, users[ip]) else None

    kept = [i for i, e in enumerate(evidence) if not e.empty]
    return [
        (i, evidence[i].record(uid, share_of=shares.get, home_of=home_of, place_of=place_of, agent_share=agents.get))
        for uid, i in enumerate(kept, 1)
    ]


def place_id(ip: str) -> str:
    """The place id of an address that is not a home: the address itself, marked as a place."""
    return f"@{ip}"

"""The simulated world: cities, and the networks people reach the shop through.

Every address is fixed with what a geo-IP database would say about it: a home line is
placed in its city (sometimes in its ISP's head-office city instead), an office or hotspot in
its city, a carrier address in the carrier's registered city or nowhere finer than a country.
The address space is made of public-looking blocks carved out without overlaps, so that a /24
prefix belongs to one network, as it does in the wild.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from linkage import Geo

from ._config import SimulationConfig


@dataclass(frozen=True, slots=True)
class City:
    name: str
    country: str
    latitude: float
    longitude: float
    weight: float  # share of the simulated population, relative


CITIES: tuple[City, ...] = (
    City("Berlin", "DE", 52.520, 13.405, 18),
    City("Hamburg", "DE", 53.551, 9.994, 9),
    City("Munich", "DE", 48.137, 11.575, 9),
    City("Vienna", "AT", 48.208, 16.373, 8),
    City("Cologne", "DE", 50.938, 6.960, 6),
    City("Frankfurt am Main", "DE", 50.110, 8.682, 6),
    City("Zurich", "CH", 47.377, 8.541, 5),
    City("Stuttgart", "DE", 48.776, 9.183, 5),
    City("Düsseldorf", "DE", 51.228, 6.774, 4),
    City("Leipzig", "DE", 51.340, 12.375, 4),
    City("Dortmund", "DE", 51.514, 7.468, 4),
    City("Dresden", "DE", 51.050, 13.738, 3),
    City("Hanover", "DE", 52.376, 9.732, 3),
    City("Nuremberg", "DE", 49.452, 11.077, 3),
    City("Geneva", "CH", 46.204, 6.143, 3),
    City("Graz", "AT", 47.071, 15.439, 2),
)

# (head-office city, market share) of the home ISPs and mobile carriers of each country.
_HOME_ISPS: dict[str, tuple[tuple[str, float], ...]] = {
    "DE": (("Bonn", 4), ("Düsseldorf", 3), ("Berlin", 2), ("Cologne", 1)),
    "AT": (("Vienna", 3), ("Vienna", 2)),
    "CH": (("Bern", 3), ("Zurich", 2)),
}
_CARRIERS: dict[str, tuple[tuple[str, float], ...]] = {
    "DE": (("Bonn", 4), ("Düsseldorf", 3), ("Munich", 3)),
    "AT": (("Vienna", 4), ("Vienna", 3), ("Vienna", 2)),
    "CH": (("Bern", 5), ("Zurich", 3), ("Zurich", 2)),
}
# First octets the blocks are carved from: routable, unreserved, typical of European ISPs.
_FIRST_OCTETS = (31, 37, 46, 62, *range(77, 96), 109, 176, 178, 188, 212, 213, 217)
# How often a geo-IP database places a home line in its ISP's head-office city instead.
_HOME_GEO_MISS = 0.15
# How often it places a carrier address in the carrier's city rather than only the country.
_CARRIER_CITY = 0.5
# Hosts used per /24 of a carrier pool: pools spread over many prefixes.
_POOL_HOSTS_PER_PREFIX = 64
_IPV6_REGIONS = 16  # /48s of a carrier's mobile IPv6 space


@dataclass(slots=True)
class HomeIsp:
    country: str
    hq_city: str
    blocks: dict[int, tuple[int, int]] = field(default_factory=dict)  # city index -> /16


@dataclass(frozen=True, slots=True)
class Carrier:
    country: str
    pool: tuple[str, ...]  # CGNAT addresses
    ipv6_regions: tuple[tuple[str, Geo], ...]  # (first three hextets, its geo)


@dataclass(frozen=True, slots=True)
class Site:
    """A fixed place with its own address: an office NAT, a public hotspot or another home."""

    city: int
    ip: str
    latitude: float
    longitude: float


class World:
    """Cities, address blocks, ISPs and carriers, plus the geo of every address handed out."""

    def __init__(self, config: SimulationConfig, rng: random.Random) -> None:
        self._rng = rng
        self._config = config
        self.cities = CITIES
        blocks = [(a, b) for a in _FIRST_OCTETS for b in range(256)]
        rng.shuffle(blocks)
        self._blocks = blocks
        self._used: set[str] = set()
        self._geo_cache: dict[tuple[str, str], Geo] = {}
        self.geo: dict[str, Geo] = {}
        self.isps: dict[str, tuple[HomeIsp, ...]] = {
            country: tuple(HomeIsp(country, hq) for hq, _ in isps) for country, isps in _HOME_ISPS.items()
        }
        self.carriers: dict[str, tuple[Carrier, ...]] = {
            country: tuple(self._carrier(country, hq, k) for k, (hq, _) in enumerate(carriers))
            for country, carriers in _CARRIERS.items()
        }
        self._business = {country: self._blocks.pop() for country in _HOME_ISPS}
        self._hotspot_blocks = {country: self._blocks.pop() for country in _HOME_ISPS}

    def place(self, country: str, city: str) -> Geo:
        """The one shared `Geo` of a (country, city) pair without coordinates."""
        key = (country, city)
        found = self._geo_cache.get(key)
        if found is None:
            found = self._geo_cache[key] = Geo(country, city)
        return found

    def pick_isp(self, country: str) -> HomeIsp:
        weights = [share for _, share in _HOME_ISPS[country]]
        return self._rng.choices(self.isps[country], weights)[0]

    def pick_carrier(self, country: str) -> Carrier:
        weights = [share for _, share in _CARRIERS[country]]
        return self._rng.choices(self.carriers[country], weights)[0]

    def home_ip(self, isp: HomeIsp, city: int, previous: str | None = None) -> str:
        """A fresh address on `isp`'s block for `city`; a reassignment often stays in the same /24."""
        block = isp.blocks.get(city)
        if block is None:
            block = isp.blocks[city] = self._blocks.pop()
        same_prefix = previous is not None and self._rng.random() < 0.3
        while True:
            if same_prefix and previous is not None:
                prefix = previous.rsplit(".", 1)[0]
            else:
                prefix = f"{block[0]}.{block[1]}.{self._rng.randrange(256)}"
            ip = f"{prefix}.{self._rng.randrange(1, 255)}"
            if ip not in self._used:
                break
            same_prefix = False  # a crowded /24: look elsewhere in the block
        self._used.add(ip)
        miss = self._rng.random() < _HOME_GEO_MISS
        self.geo[ip] = self.place(isp.country, isp.hq_city if miss else self.cities[city].name)
        return ip

    def site(self, city: int, hotspot: bool) -> Site:
        """An office NAT or a public hotspot somewhere in `city`, with its own address."""
        country = self.cities[city].country
        a, b = (self._hotspot_blocks if hotspot else self._business)[country]
        ip = self._fresh(lambda: f"{a}.{b}.{self._rng.randrange(256)}.{self._rng.randrange(1, 255)}")
        self.geo[ip] = self.place(country, self.cities[city].name)
        latitude, longitude = self.near(city, 6.0)
        return Site(city, ip, latitude, longitude)

    def private_site(self, city: int) -> Site:
        """Someone else's home in `city` (a parent's, a friend's): a residential address."""
        ip = self.home_ip(self.pick_isp(self.cities[city].country), city)
        latitude, longitude = self.near(city, 9.0)
        return Site(city, ip, latitude, longitude)

    def near(self, city: int, km: float) -> tuple[float, float]:
        """A point uniformly within `km` of the city centre."""
        where = self.cities[city]
        distance = km * math.sqrt(self._rng.random())
        angle = self._rng.random() * 2 * math.pi
        latitude = where.latitude + distance * math.cos(angle) / 111.0
        longitude = where.longitude + distance * math.sin(angle) / (111.0 * math.cos(math.radians(where.latitude)))
        return latitude, longitude

    def _carrier(self, country: str, hq_city: str, index: int) -> Carrier:
        a, b = self._blocks.pop()
        size = self._config.carrier_pool_addresses
        pool: list[str] = []
        while len(pool) < size:
            prefix = f"{a}.{b}.{self._rng.randrange(256)}"
            for host in self._rng.sample(range(1, 255), _POOL_HOSTS_PER_PREFIX):
                ip = f"{prefix}.{host}"
                if ip not in self._used and len(pool) < size:
                    self._used.add(ip)
                    pool.append(ip)
                    city = hq_city if self._rng.random() < _CARRIER_CITY else ""
                    self.geo[ip] = self.place(country, city)
        base = self._fresh(lambda: f"2a0{index % 8 + 1}:{self._rng.randrange(0x100, 0x1000):x}")
        regions = tuple(
            (
                f"{base}:{self._rng.randrange(0x1000, 0x10000):x}",
                self.place(country, hq_city if self._rng.random() < _CARRIER_CITY else ""),
            )
            for _ in range(_IPV6_REGIONS)
        )
        return Carrier(country, tuple(pool), regions)

    def _fresh(self, make: Callable[[], str]) -> str:
        while True:
            ip = make()
            if ip not in self._used:
                self._used.add(ip)
                return ip

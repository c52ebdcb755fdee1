"""The simulated population: households, persons, their routines, devices and workplaces."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from linkage import Identifier

from ._config import DAY, SimulationConfig
from ._devices import Client, Clients, Form, Handset, Identities
from ._world import Carrier, HomeIsp, Site, World

_MAX_SESSIONS_PER_DAY = 8.0
_ACTIVITY_SPREAD = 1.0  # sigma of the log of a person's session rate
# Cities whose employers include the large offices, biggest first.
_LARGE_OFFICE_CITIES = 3
_HAUNTS = 2  # regular public-wifi places per person (a draw may repeat: then one)
# Private places a person goes back to (a parent's or a friend's home), whose wifi their
# devices know: one a household visits together, some of a person's own.
_FAMILY_PLACE_SHARE = 0.35  # households with a place they visit (grandparents)
_FAMILY_PLACE_VISITORS = 0.5  # members of such a household who go there
_OWN_PLACE_SHARE = 0.4  # persons with a private place of their own
_TRIP_SHARE = 0.25  # persons who travel in the window, for 2-4 days, to a hotel in another city
_TRIP_COMPANY = 0.5  # household members who come along
_SAME_PHONE_SHARE = 0.4  # phones of the same model as one already in the household


class Place(IntEnum):
    HOME = 0
    OFFICE = 1
    OUT = 2
    REMOTE = 3  # working from home: the home's address, the work laptop in use


@dataclass(slots=True, eq=False)
class Household:
    id: int
    city: int
    isp: HomeIsp
    latitude: float
    longitude: float
    members: list[Person] = field(default_factory=list)
    ip_since: list[float] = field(default_factory=list)  # when each home address took over
    ips: list[str] = field(default_factory=list)
    place: Site | None = None  # another home the family visits

    def ip_at(self, t: float) -> str:
        return self.ips[bisect.bisect_right(self.ip_since, t) - 1]


@dataclass(slots=True, eq=False)
class Office:
    site: Site
    members: list[Person] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Person:
    """One simulated person: routine, devices, accounts. `id` is the ground truth."""

    id: int
    household: Household
    adult: bool
    carrier: Carrier
    rate: float  # mean sessions per day
    login: Identifier | None = None
    login_chance: float = 0.0  # chance a session logs in
    email: Identifier | None = None
    office: Office | None = None
    work_hours: tuple[float, float] = (9.0, 17.0)  # local time, on office days
    weekday_hours: list[float] = field(default_factory=list)  # cumulative weights by local hour
    weekend_hours: list[float] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    # Public wifi the person goes to again and again (a cafe, the station on the way to work).
    haunts: tuple[Site, ...] = ()
    # Every place the person goes back to: the haunts and any private places.
    regulars: tuple[Site, ...] = ()
    trip: Trip | None = None
    # Per place: the clients used there and their cumulative weights; web clients for clicks.
    choices: dict[Place, tuple[list[Client], list[float]]] = field(default_factory=dict)
    web_choices: dict[Place, tuple[list[Client], list[float]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trip:
    """Days away: from the first local day, for `days` days, at a hotel with shared wifi."""

    first_day: int
    days: int
    hotel: Site


@dataclass(slots=True)
class Model:
    world: World
    households: list[Household]
    persons: list[Person]
    offices: list[Office]
    hotspots: dict[int, tuple[list[Site], list[float]]]  # by city: sites, cumulative weights


def build(config: SimulationConfig) -> Model:
    """The world and its population for `config`; the same for the same seed."""
    rng = random.Random(f"idstitch-sim/{config.seed}/people")
    world = World(config, rng)
    identities = Identities(rng)
    clients = Clients(rng, config.start_timestamp, config.days * DAY, config.gps_share)
    households, persons = _households(config, world, rng)
    offices = _offices(config, world, persons, rng)
    _routines(persons, rng)
    handsets: dict[int, Handset] = {}  # the first phone bought in each household
    for person in persons:
        _accounts(config, person, identities, rng)
        _devices(config, person, clients, handsets, rng)
    for household in households:
        if len(household.members) >= 2 and rng.random() < config.family_tablet_share:
            tablet = clients.tablet(app=rng.random() < 0.6)
            tablet.users = tuple(p.id for p in household.members)
            for person in household.members:
                person.clients.append(tablet)
    for person in persons:
        _choices(person, rng)
    hotspots = _hotspots(config, world, persons)
    for person in persons:
        sites, weights = hotspots[person.household.city]
        person.haunts = tuple(rng.choices(sites, cum_weights=weights, k=_HAUNTS))
    _regulars(config, world, households, hotspots, rng)
    return Model(world, households, persons, offices, hotspots)


def _regulars(
    config: SimulationConfig,
    world: World,
    households: list[Household],
    hotspots: dict[int, tuple[list[Site], list[float]]],
    rng: random.Random,
) -> None:
    """Private places and trips: a family's visits together, a person's own, time away."""
    cities = sorted(hotspots)
    days = max(1, config.days)
    for household in households:
        if rng.random() < _FAMILY_PLACE_SHARE:
            household.place = world.private_site(household.city)
        trip: Trip | None = None
        for person in household.members:
            places = list(dict.fromkeys(person.haunts))
            if household.place is not None and rng.random() < _FAMILY_PLACE_VISITORS:
                places.append(household.place)
            if rng.random() < _OWN_PLACE_SHARE:
                places.append(world.private_site(household.city))
            person.regulars = tuple(places)
            if trip is not None and rng.random() < _TRIP_COMPANY:
                person.trip = trip
            elif rng.random() < _TRIP_SHARE and len(cities) > 1:
                away = rng.choice([c for c in cities if c != household.city])
                sites, weights = hotspots[away]
                length = rng.randint(2, 4)
                hotel = rng.choices(sites, cum_weights=weights)[0]
                person.trip = trip = Trip(rng.randrange(max(1, days - length)), length, hotel)


def _households(config: SimulationConfig, world: World, rng: random.Random) -> tuple[list[Household], list[Person]]:
    start, end = config.start_timestamp, config.end_timestamp
    city_weights = [c.weight for c in world.cities]
    sizes = range(1, len(config.household_sizes) + 1)
    households: list[Household] = []
    persons: list[Person] = []
    while len(persons) < config.persons:
        city = rng.choices(range(len(world.cities)), city_weights)[0]
        country = world.cities[city].country
        latitude, longitude = world.near(city, 9.0)
        household = Household(len(households), city, world.pick_isp(country), latitude, longitude)
        households.append(household)
        ip = world.home_ip(household.isp, city)
        household.ip_since.append(-math.inf)
        household.ips.append(ip)
        if rng.random() >= config.static_home_ip_share:
            low, high = config.home_ip_change_days
            every = rng.uniform(low, high) * DAY
            t = start + rng.uniform(0, every)
            while t < end:
                ip = world.home_ip(household.isp, city, previous=ip)
                household.ip_since.append(t)
                household.ips.append(ip)
                t += every * rng.uniform(0.8, 1.2)
        size = min(rng.choices(sizes, config.household_sizes)[0], config.persons - len(persons))
        for k in range(size):
            # Log-normal around the configured mean: many seldom visit, a few every day.
            spread = _ACTIVITY_SPREAD
            rate = config.sessions_per_day * math.exp(rng.gauss(0, spread) - spread * spread / 2)
            person = Person(
                id=len(persons),
                household=household,
                adult=k < 2,
                carrier=world.pick_carrier(country),
                rate=min(rate, _MAX_SESSIONS_PER_DAY),
            )
            household.members.append(person)
            persons.append(person)
    return households, persons


def _offices(config: SimulationConfig, world: World, persons: list[Person], rng: random.Random) -> list[Office]:
    """Office workers by city: a few large offices in the largest cities, small ones elsewhere."""
    workers: dict[int, list[Person]] = {}
    for person in persons:
        if person.adult and rng.random() < config.office_worker_share:
            workers.setdefault(person.household.city, []).append(person)
    # Employers hire from the whole city, not household by household: two earners of one
    # household work at different places unless chance puts them in the same office.
    for pool in workers.values():
        rng.shuffle(pool)
    offices: list[Office] = []

    def staff(city: int, size: int) -> None:
        pool = workers.get(city, [])
        if pool:
            office = Office(world.site(city, hotspot=False), pool[:size])
            del pool[:size]
            offices.append(office)

    by_size = sorted(range(len(world.cities)), key=lambda c: -world.cities[c].weight)
    for k in range(config.large_offices):
        staff(by_size[k % _LARGE_OFFICE_CITIES], rng.randint(*config.large_office_size))
    for city in sorted(workers):
        while workers[city]:
            staff(city, rng.randint(*config.small_office_size))
    for office in offices:
        for person in office.members:
            person.office = office
            begin = rng.uniform(7.5, 9.5)
            person.work_hours = (begin, begin + rng.uniform(8.0, 9.5))
    return offices


def _routines(persons: list[Person], rng: random.Random) -> None:
    """Each person's cumulative weights of the local hour of a session, on weekdays and weekends.

    A person has a morning, a lunch and an evening peak (some a late-night one too), a
    daytime bump at weekends, and, at an office, a steady trickle through working hours.
    """
    columns = np.array(
        [
            [
                rng.gauss(7.3, 0.7),  # morning peak
                rng.gauss(20.5, 1.2),  # evening peak
                rng.uniform(0.2, 0.9),  # its weights: morning, lunch, evening
                rng.uniform(0.1, 0.5),
                rng.uniform(0.6, 1.6),
                rng.uniform(0.3, 0.8) if rng.random() < 0.15 else 0.0,  # night owls
                rng.uniform(0.2, 0.8),  # daytime, mostly at weekends
                rng.uniform(0.1, 0.3),  # each working hour, at the office
                *p.work_hours,
                p.office is not None,
            ]
            for p in persons
        ]
    ).reshape(len(persons), 11)
    (morning, evening, w_morning, w_lunch, w_evening, w_night, w_day, w_work, begin, end, office) = (
        columns[:, k : k + 1] for k in range(11)
    )
    hour = np.arange(24)[None, :]
    x = hour + 0.5

    def bump(centre: npt.NDArray[np.float64] | float, width: float) -> npt.NDArray[np.float64]:
        distance = (x - centre + 12.0) % 24.0 - 12.0  # around the clock: 23:30 is near 00:30
        found: npt.NDArray[np.float64] = np.exp(-0.5 * (distance / width) ** 2)
        return found

    common = (
        np.where((hour >= 7) & (hour < 23), 0.02, 0.004) + w_evening * bump(evening, 1.5) + w_night * bump(23.8, 1.2)
    )
    at_work = np.where((begin <= x) & (x < end), w_work, 0.0)
    weekday = (
        common
        + w_morning * bump(morning, 1.0)
        + w_lunch * bump(12.5, 0.8)
        + np.where(office > 0, at_work, 0.5 * w_day * bump(15.0, 3.0))
    )
    weekend = common + 0.6 * w_morning * bump(morning + 1.8, 1.2) + w_day * bump(14.0, 3.0)
    for person, on_weekday, at_weekend in zip(
        persons, np.cumsum(weekday, axis=1).tolist(), np.cumsum(weekend, axis=1).tolist(), strict=True
    ):
        person.weekday_hours = on_weekday
        person.weekend_hours = at_weekend


def _accounts(config: SimulationConfig, person: Person, identities: Identities, rng: random.Random) -> None:
    if rng.random() < config.login_share:
        person.login = identities.login()
        person.login_chance = rng.betavariate(1.0, 4.0)  # sporadic: a fifth of sessions on average
    if rng.random() < config.newsletter_share:
        person.email = identities.email()


def _devices(
    config: SimulationConfig, person: Person, clients: Clients, handsets: dict[int, Handset], rng: random.Random
) -> None:
    own: list[Client] = []
    if rng.random() < config.phone_share:
        family = handsets.get(person.household.id)
        if family is not None and rng.random() < _SAME_PHONE_SHARE:
            phone = clients.same_handset(family)  # the household's members own similar phones
        else:
            phone = clients.handset(rng.random() < 0.35)
            handsets.setdefault(person.household.id, phone)
        app = rng.random() < config.app_share
        if app:
            own.append(clients.phone_app(phone))
        if not app or rng.random() < 0.7:
            own.append(clients.phone_browser(phone))
    if not own or rng.random() < config.computer_share:
        own.append(clients.computer())
    if rng.random() < config.tablet_share:
        own.append(clients.tablet(app=rng.random() < 0.35))
    if person.office is not None and rng.random() < config.work_computer_share:
        own.append(clients.computer(work=True))
    for client in own:
        client.users = (person.id,)
    person.clients = own


def _choices(person: Person, rng: random.Random) -> None:
    """How likely each client is used at each place, from the person's own preferences."""
    phone, computer, tablet = rng.uniform(0.4, 1.0), rng.uniform(0.15, 0.8), rng.uniform(0.2, 0.7)
    in_app = rng.uniform(0.4, 0.9)
    has_work = any(c.form is Form.WORK for c in person.clients)
    phones = [c for c in person.clients if c.form is Form.PHONE]
    work_laptop = any(c.form is Form.WORK and c.portable for c in person.clients)
    weights: dict[Place, list[tuple[Client, float]]] = {place: [] for place in Place}
    for client in person.clients:
        share = 1.0
        if client.form is Form.PHONE and len(phones) > 1:
            share = in_app if client.app else 1.0 - in_app
        if client.form is Form.PHONE:
            weights[Place.HOME].append((client, phone * share))
            weights[Place.OFFICE].append((client, 0.7 * phone * share))
            weights[Place.REMOTE].append((client, 0.7 * phone * share))
            weights[Place.OUT].append((client, phone * share))
        elif client.form is Form.TABLET:
            weights[Place.HOME].append((client, tablet))
            weights[Place.REMOTE].append((client, 0.3 * tablet))
        elif client.form is Form.WORK:
            weights[Place.OFFICE].append((client, 3.0 * computer + 0.3))
            if client.portable:
                weights[Place.REMOTE].append((client, 3.0 * computer + 0.3))
        else:
            weights[Place.HOME].append((client, computer))
            weights[Place.REMOTE].append((client, 0.3 * computer if work_laptop else computer))
            if client.portable:
                # A laptop goes along now and then: to a cafe, a friend's, on a trip.
                weights[Place.OUT].append((client, 0.35 * computer))
                if not has_work:
                    weights[Place.OFFICE].append((client, computer))
    for place, options in weights.items():
        if options:
            person.choices[place] = _cumulative(options)
        web = [(c, w) for c, w in options if not c.app]
        if web:
            person.web_choices[place] = _cumulative(web)


def _cumulative(options: list[tuple[Client, float]]) -> tuple[list[Client], list[float]]:
    return [c for c, _ in options], list(itertools.accumulate(w for _, w in options))


def _hotspots(
    config: SimulationConfig, world: World, persons: list[Person]
) -> dict[int, tuple[list[Site], list[float]]]:
    """Public wifi per city, one per `persons_per_hotspot` residents; a few (stations) are busy."""
    residents: dict[int, int] = {}
    for person in persons:
        residents[person.household.city] = residents.get(person.household.city, 0) + 1
    found: dict[int, tuple[list[Site], list[float]]] = {}
    for city in sorted(residents):
        count = max(1, round(residents[city] / config.persons_per_hotspot))
        sites = [world.site(city, hotspot=True) for _ in range(count)]
        found[city] = (sites, list(itertools.accumulate(1.0 / (k + 1) for k in range(count))))
    return found


@dataclass(frozen=True, slots=True)
class Population:
    """Who lives and works with whom: truth that the signals alone do not show.

    `households[h]` and `offices[o]` are the person ids of each household and of each office
    behind one NAT address (the large offices first). Members of a household share a home address; they are different
    persons, which is what a stitcher must not merge.
    """

    households: tuple[tuple[int, ...], ...]
    offices: tuple[tuple[int, ...], ...]


def population(config: SimulationConfig) -> Population:
    """The households and offices `simulate(config)` plays out, without simulating traffic."""
    return describe(build(config))


def describe(model: Model) -> Population:
    return Population(
        households=tuple(tuple(p.id for p in h.members) for h in model.households),
        offices=tuple(tuple(p.id for p in o.members) for o in model.offices),
    )

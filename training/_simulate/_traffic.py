"""The persons' days played out: sessions, page views and the signals they send, in time order.

Each household is played out on its own, its members' sessions in time order, because they
share state: the home address, and the family tablet whose cookie expires for everyone.
"""

from __future__ import annotations

import calendar
import gc
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from linkage import Context, Geo, Identifier, Signal

from ._config import DAY, SimulationConfig
from ._devices import Client, Form, Identities
from ._people import Household, Model, Person, Place, build
from ._world import Site

_HOURS = range(24)
_MAX_PAGES = 40
_WEEKEND_ACTIVITY = 1.15
# Otherwise on the place's wifi.
_PHONE_ON_CELLULAR = {Place.HOME: 0.2, Place.OFFICE: 0.35, Place.OUT: 0.25, Place.REMOTE: 0.2}
# A day's outings (errands, a cafe, friends): how many on average, how long, and how often the
# person goes to one of their regular public-wifi places rather than another one.
_OUTINGS_PER_DAY = {False: 1.5, True: 2.2}  # weekday, weekend
_OUTING_HOURS = (0.5, 3.5)
_OUT_FROM, _OUT_UNTIL = 7.0, 22.0  # local hours: at home outside them
_HAUNT_SHARE = 0.8
_REGULAR_SHARE = 0.45  # outings to one of the person's regular places, whose wifi devices know
_GPS_NOISE = 0.0004  # degrees, about 40 m
_ROAMING = 0.03  # degrees: how far from home a person is when out, about 3 km


@dataclass(frozen=True, slots=True)
class SimulatedSignal:
    """One simulated signal and the true person who sent it (persons are numbered from 0)."""

    signal: Signal
    person: int


class _Day(NamedTuple):
    midnight: float  # epoch seconds of local midnight
    weekend: bool


class _Outing(NamedTuple):
    """A stretch of a day away from home: the person and whatever devices they carry are there."""

    begin: float  # local hours
    end: float
    site: Site | None  # the public wifi there, if any
    spot: tuple[float, float]  # where the person is


class _Plan(NamedTuple):
    t: float
    person: Person
    place: Place
    client: Client
    click: bool  # a newsletter click: the first page carries the email address
    outing: _Outing | None  # where the person is, when out


def simulate(config: SimulationConfig) -> list[SimulatedSignal]:
    """Simulate `config.persons` persons over `config.days` days: their signals, in time order.

    Deterministic: the same config gives the same signals, event ids included. Every person
    sends at least one signal (for windows of two days or more). See `SimulationConfig`.
    """
    with collector_paused():
        return _Traffic(config, build(config)).run()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while making many long-lived objects.

    It would rescan them again and again as they pile up, doubling the time; the few cycles
    made meanwhile wait for its next run.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class _Traffic:
    def __init__(self, config: SimulationConfig, model: Model) -> None:
        self._config = config
        self._model = model
        self._rng = random.Random(f"idstitch-sim/{config.seed}/traffic")
        self._ids = Identities(random.Random(f"idstitch-sim/{config.seed}/values"))
        self._start = config.start_timestamp
        self._end = config.end_timestamp
        self._days = _calendar(self._start, self._end)
        self._inner = [
            k for k, d in enumerate(self._days) if d.midnight >= self._start and d.midnight + DAY <= self._end
        ]
        self._office_days: dict[tuple[int, int], bool] = {}
        self._outings: dict[tuple[int, int], list[_Outing]] = {}
        self._contexts: dict[tuple[str, str], Context] = {}
        self._times: list[float] = []
        self._persons: list[int] = []
        self._identifiers: list[tuple[Identifier, ...]] = []
        self._channels: list[str] = []
        self._context_of: list[Context] = []

    def run(self) -> list[SimulatedSignal]:
        counts, clicks = self._draw_counts()
        for household in self._model.households:
            self._play(household, counts, clicks)
        order = sorted(range(len(self._times)), key=self._times.__getitem__)
        prefix = f"sim{self._config.seed}-"
        return [
            SimulatedSignal(
                Signal(
                    event_id=f"{prefix}{i:07d}",
                    identifiers=self._identifiers[j],
                    timestamp=self._times[j],
                    channel=self._channels[j],
                    context=self._context_of[j],
                ),
                self._persons[j],
            )
            for i, j in enumerate(order)
        ]

    def _draw_counts(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Sessions per person and local day, and newsletter clicks per person."""
        config = self._config
        rng = np.random.default_rng([config.seed, 0x5E55])
        rates = np.array([p.rate for p in self._model.persons])
        factors = np.array([_WEEKEND_ACTIVITY if d.weekend else 1.0 for d in self._days])
        counts = rng.poisson(rates[:, None] * factors[None, :])
        clicks = rng.poisson(config.newsletter_clicks_per_week / 7 * config.days, size=len(rates))
        return counts, clicks

    def _play(self, household: Household, counts: npt.NDArray[np.int64], clicks: npt.NDArray[np.int64]) -> None:
        plans: list[_Plan] = []
        for person in household.members:
            row = counts[person.id]
            before = len(plans)
            for day in np.flatnonzero(row).tolist():
                self._plan(person, day, int(row[day]), click=False, plans=plans)
            if len(plans) == before and self._inner:
                # Everyone shows up at least once, on a day wholly inside the window.
                self._plan(person, self._rng.choice(self._inner), 1, click=False, plans=plans)
            if person.email is not None:
                for _ in range(int(clicks[person.id])):
                    self._plan(person, self._rng.randrange(len(self._days)), 1, click=True, plans=plans)
        plans.sort(key=lambda plan: plan.t)
        # A person who has an account logs in at least once in the window, then sporadically.
        forced: set[int] = set()
        for person in household.members:
            if person.login is not None:
                mine = [k for k, plan in enumerate(plans) if plan.person is person]
                if mine:
                    forced.add(self._rng.choice(mine))
        for k, plan in enumerate(plans):
            self._session(plan, k in forced)

    def _plan(self, person: Person, day: int, sessions: int, click: bool, plans: list[_Plan]) -> None:
        rng = self._rng
        weekend = self._days[day].weekend
        cumulative = person.weekend_hours if weekend else person.weekday_hours
        for hour in rng.choices(_HOURS, cum_weights=cumulative, k=sessions):
            local = hour + rng.random()
            t = round(self._days[day].midnight + local * 3600, 3)
            if not self._start <= t < self._end:
                continue
            place, outing = self._place(person, day, local, weekend)
            options = (person.web_choices if click else person.choices).get(place)
            if options is None:
                place, outing = Place.HOME, None  # nothing to use out there (no phone): the session happens at home
                options = (person.web_choices if click else person.choices).get(place)
                if options is None:
                    continue  # an app-only person cannot click a newsletter link in a browser
            client = rng.choices(options[0], cum_weights=options[1])[0]
            plans.append(_Plan(t, person, place, client, click, outing))

    def _place(self, person: Person, day: int, local: float, weekend: bool) -> tuple[Place, _Outing | None]:
        """Where the person is at local hour `local` of `day`: one timeline per person and day,
        so that every session (and every device) of theirs at that hour is at the same place."""
        rng = self._rng
        trip = person.trip
        if trip is not None and trip.first_day <= day < trip.first_day + trip.days:
            hotel = trip.hotel
            return Place.OUT, _Outing(0.0, 24.0, hotel, (hotel.latitude, hotel.longitude))
        if person.office is not None and not weekend:
            key = (person.id, day)
            at_office = self._office_days.get(key)
            if at_office is None:
                at_office = self._office_days[key] = rng.random() >= self._config.home_office_share
            begin, end = person.work_hours
            if not at_office:
                if begin <= local < end:
                    return Place.REMOTE, None
            elif begin <= local < end:
                return Place.OFFICE, None
            elif begin - 1 <= local < begin or end <= local < end + 1:
                return Place.OUT, None  # commuting
        for outing in self._day_out(person, day, weekend):
            if outing.begin <= local < outing.end:
                return Place.OUT, outing
        return Place.HOME, None

    def _day_out(self, person: Person, day: int, weekend: bool) -> list[_Outing]:
        """The person's outings on `day`, drawn once: about a fifth of the waking day out on
        weekdays, more at weekends, each at one place (with public wifi or without)."""
        key = (person.id, day)
        found = self._outings.get(key)
        if found is not None:
            return found
        rng = self._rng
        # Poisson-distributed count, by inversion.
        count, threshold, product = 0, math.exp(-_OUTINGS_PER_DAY[weekend]), rng.random()
        while product > threshold:
            count += 1
            product *= rng.random()
        # At a place with wifi often enough that public_wifi_share of sessions out use it.
        with_wifi = min(1.0, self._config.public_wifi_share / (1.0 - _PHONE_ON_CELLULAR[Place.OUT]))
        home = person.household
        found = []
        for _ in range(count):
            hours = rng.uniform(*_OUTING_HOURS)
            begin = rng.uniform(_OUT_FROM, _OUT_UNTIL - hours)
            site: Site | None = None
            if person.regulars and rng.random() < _REGULAR_SHARE:
                site = rng.choice(person.regulars)
                spot = (site.latitude, site.longitude)
            elif rng.random() < with_wifi:
                if rng.random() < _HAUNT_SHARE and person.haunts:
                    site = rng.choice(person.haunts)
                else:
                    sites, weights = self._model.hotspots[home.city]
                    site = rng.choices(sites, cum_weights=weights)[0]
                spot = (site.latitude, site.longitude)
            else:
                spot = (home.latitude + rng.gauss(0, _ROAMING), home.longitude + rng.gauss(0, _ROAMING))
            found.append(_Outing(begin, begin + hours, site, spot))
        self._outings[key] = found
        return found

    def _session(self, plan: _Plan, force_login: bool) -> None:
        rng = self._rng
        person, client, t = plan.person, plan.client, plan.t
        identifier = self._identifier(client, t)
        ip, geo, spot = self._network(person, client, plan.place, plan.outing, t)
        user_agent = client.user_agent(t)
        if client.gps:
            latitude = round(spot[0] + rng.gauss(0, _GPS_NOISE), 6)
            longitude = round(spot[1] + rng.gauss(0, _GPS_NOISE), 6)
            context = Context(ip, Geo(geo.country, geo.city, latitude, longitude), user_agent)
        else:
            key = (ip, user_agent)
            found = self._contexts.get(key)
            if found is None:
                found = self._contexts[key] = Context(ip, geo, user_agent)
            context = found
        pages = self._pages()
        login_from = self._login_from(person, client, pages, force_login)
        channel = "app" if client.app else "web"
        for page in range(pages):
            if t >= self._end:
                break
            if t >= client.expires:  # a Safari cookie can run out mid-session
                identifier = self._identifier(client, t)
            if plan.click and page == 0 and person.email is not None:
                self._emit(t, person.id, (person.email, identifier), "email", context)
            elif login_from is not None and page >= login_from and person.login is not None:
                self._emit(t, person.id, (identifier, person.login), channel, context)
            else:
                self._emit(t, person.id, (identifier,), channel, context)
            # Milliseconds, as stored and as written to JSON, so that every comparison holds there too.
            t = round(t + 3.0 + rng.lognormvariate(math.log(50.0), 0.9), 3)

    def _emit(self, t: float, person: int, ids: tuple[Identifier, ...], channel: str, context: Context) -> None:
        self._times.append(t)
        self._persons.append(person)
        self._identifiers.append(ids)
        self._channels.append(channel)
        self._context_of.append(context)

    def _identifier(self, client: Client, t: float) -> Identifier:
        """The client's identifier at `t`: an app keeps its id; a browser cookie may be renewed."""
        found = client.identifier
        if client.app:
            if found is None:
                found = client.identifier = self._ids.device(ios="(iP" in client.user_agents[0])
            return found
        clear = self._config.cookie_clear_per_day
        idle_days = (t - client.last_seen) / DAY
        client.last_seen = t
        if (
            found is None
            or t >= client.expires
            or (not client.safari and clear > 0 and self._rng.random() < -math.expm1(-clear * idle_days))
        ):
            found = client.identifier = self._ids.cookie(t)
            # Safari caps script-set cookies at seven days; counted here from when it was set.
            client.expires = t + self._config.safari_cookie_days * DAY if client.safari else math.inf
            client.logged_in.clear()
        return found

    def _network(
        self, person: Person, client: Client, place: Place, outing: _Outing | None, t: float
    ) -> tuple[str, Geo, tuple[float, float]]:
        """Address, its geo-IP reading, and where the person really is."""
        rng = self._rng
        world = self._model.world
        home = person.household
        if place is Place.OUT:
            if outing is None:  # on the way to or from work: cellular, now and then the station's wifi
                if client.portable and person.haunts and rng.random() < self._config.public_wifi_share:
                    station = person.haunts[0]
                    return station.ip, world.geo[station.ip], (station.latitude, station.longitude)
                spot = (home.latitude + rng.gauss(0, _ROAMING), home.longitude + rng.gauss(0, _ROAMING))
                ip, geo = self._cellular(person)
                return ip, geo, spot
            venue = outing.site
            on_wifi = client.form is not Form.PHONE or rng.random() >= _PHONE_ON_CELLULAR[Place.OUT]
            if venue is not None and client.portable and on_wifi:
                return venue.ip, world.geo[venue.ip], outing.spot
            ip, geo = self._cellular(person)
            return ip, geo, outing.spot
        if place is Place.OFFICE and person.office is not None:
            site = person.office.site
            ip, geo = site.ip, world.geo[site.ip]
            spot = (site.latitude, site.longitude)
        else:
            ip = home.ip_at(t)
            geo = world.geo[ip]
            spot = (home.latitude, home.longitude)
        if client.form is Form.PHONE and rng.random() < _PHONE_ON_CELLULAR[place]:
            ip, geo = self._cellular(person)
        return ip, geo, spot

    def _cellular(self, person: Person) -> tuple[str, Geo]:
        """An address of the person's carrier: from the CGNAT pool, or a fresh IPv6 one."""
        rng = self._rng
        carrier = person.carrier
        if rng.random() < self._config.cellular_ipv6_share:
            region, geo = rng.choice(carrier.ipv6_regions)
            return f"{region}:" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(5)), geo
        ip = rng.choice(carrier.pool)
        return ip, self._model.world.geo[ip]

    def _pages(self) -> int:
        """Page views in a session: one, plus a geometric number more."""
        extra = self._config.pages_per_session - 1
        if extra <= 0:
            return 1
        more = math.log(1.0 - self._rng.random()) / math.log(extra / (extra + 1))
        return 1 + min(int(more), _MAX_PAGES)

    def _login_from(self, person: Person, client: Client, pages: int, force: bool) -> int | None:
        """The page from which the session carries the person's login, or None."""
        if person.login is None:
            return None
        rng = self._rng
        if client.app and person.id in client.logged_in:
            if rng.random() >= 0.05:
                return 0  # the app kept the person logged in
            client.logged_in.discard(person.id)
        if force or rng.random() < person.login_chance:
            # A shared tablet's app is logged out after use, so its next user is not mislabelled.
            if client.app and len(client.users) == 1:
                client.logged_in.add(person.id)
            return rng.randrange(pages)
        return None


def _calendar(start: float, end: float) -> list[_Day]:
    """The local (Central European) days that overlap the window [start, end)."""
    date = math.floor((start + _cet_offset(start)) / DAY)
    days: list[_Day] = []
    while True:
        local_midnight = date * DAY
        # Clocks change at 01:00 UTC, never near midnight: the offset an hour before is right.
        midnight = local_midnight - _cet_offset(local_midnight - 3600)
        if midnight >= end:
            return days
        days.append(_Day(midnight, (date + 3) % 7 >= 5))  # 1970-01-01 was a Thursday
        date += 1


def _cet_offset(t: float) -> float:
    """Seconds Central European time is ahead of UTC at `t`: summer time in between."""
    begins, ends = _summer_time(time.gmtime(t).tm_year)
    return 7200.0 if begins <= t < ends else 3600.0


@lru_cache(maxsize=64)
def _summer_time(year: int) -> tuple[float, float]:
    """EU summer time: from 01:00 UTC on the last Sunday of March to that of October."""

    def last_sunday(month: int) -> float:
        last = datetime(year, month, calendar.monthrange(year, month)[1], 1, tzinfo=UTC)
        return (last - timedelta(days=(last.weekday() - 6) % 7)).timestamp()

    return last_sunday(3), last_sunday(10)

"""The simulator's knobs, with defaults that give realistic traffic for a European web shop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

DAY = 86_400.0
# A fixed past date, so that a default simulation is the same on every machine and every
# timestamp validates (linkage refuses times more than a day in the future).
DEFAULT_END = datetime(2025, 6, 1, tzinfo=UTC)
_EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z, linkage's earliest accepted timestamp


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: `persons` people over the `days` days before `end`, drawn from `seed`.

    Timestamps fall in `[end - days, end)`; `end` is an aware `datetime` or epoch seconds.
    The rest are the shape of the world, with defaults close to real web traffic:

    - Households: `household_sizes[k]` is the weight of a household of k + 1 persons. Home
      addresses change every `home_ip_change_days` (uniform range) except for the
      `static_home_ip_share` of households whose lease outlasts the window.
    - Offices: `office_worker_share` of adults (the first two members of a household) work in
      an office behind one NAT address; `large_offices` of `large_office_size` persons sit in
      the largest cities, the rest in small offices of `small_office_size`. They work from home
      on `home_office_share` of weekdays, and a `work_computer_share` has a work computer.
    - Networks: phones on cellular get an address from a carrier's CGNAT pool of
      `carrier_pool_addresses` IPv4 addresses, or an IPv6 address for `cellular_ipv6_share` of
      sessions; `public_wifi_share` of sessions away from home and office run on public wifi,
      one hotspot per `persons_per_hotspot` residents of a city.
    - Devices: shares of persons with a phone, the shop's app (of phone owners), a computer
      and a tablet; `family_tablet_share` of households of 2+ share a tablet. Safari cookies
      live `safari_cookie_days`; other cookies are cleared at `cookie_clear_per_day`.
    - Identity: `login_share` of persons log in at least once (sporadically, never on most
      sessions); `newsletter_share` click newsletters (`newsletter_clicks_per_week` on average);
      `gps_share` of app installs may read the location.
    - Activity: `sessions_per_day` and `pages_per_session` are means over all persons; each
      person's own rate is drawn around them, so a few are very active and many seldom visit.
    """

    persons: int = 20_000
    days: int = 30
    seed: int = 1
    end: datetime | float = DEFAULT_END
    household_sizes: tuple[float, ...] = (0.41, 0.33, 0.12, 0.10, 0.04)
    home_ip_change_days: tuple[float, float] = (5.0, 20.0)
    static_home_ip_share: float = 0.2
    office_worker_share: float = 0.45
    large_offices: int = 4
    large_office_size: tuple[int, int] = (100, 400)
    small_office_size: tuple[int, int] = (3, 40)
    home_office_share: float = 0.3
    work_computer_share: float = 0.6
    carrier_pool_addresses: int = 256
    cellular_ipv6_share: float = 0.3
    public_wifi_share: float = 0.15
    persons_per_hotspot: int = 250
    phone_share: float = 0.95
    app_share: float = 0.45
    computer_share: float = 0.7
    tablet_share: float = 0.12
    family_tablet_share: float = 0.35
    safari_cookie_days: float = 7.0
    cookie_clear_per_day: float = 0.01
    login_share: float = 0.5
    newsletter_share: float = 0.25
    newsletter_clicks_per_week: float = 0.6
    gps_share: float = 0.6
    sessions_per_day: float = 0.25
    pages_per_session: float = 3.0

    def __post_init__(self) -> None:
        if self.persons < 1:
            raise ValueError("persons must be at least 1")
        if not 1 <= self.days <= 366:
            raise ValueError("days must be between 1 and 366")
        if self.seed < 0:
            raise ValueError("seed must not be negative")
        if isinstance(self.end, datetime) and self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware (or epoch seconds)")
        if not math.isfinite(self.end_timestamp) or self.start_timestamp < _EARLIEST:
            raise ValueError("the simulated window must start in 2000 or later")
        shares = {name: value for name, value in vars(self).items() if name.endswith("_share")}
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        sizes = self.household_sizes
        if not sizes or len(sizes) > 8 or min(sizes) < 0 or sum(sizes) <= 0:
            raise ValueError("household_sizes must be 1 to 8 non-negative weights, not all zero")
        for name in ("home_ip_change_days", "large_office_size", "small_office_size"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high")
        positive = {
            "carrier_pool_addresses": self.carrier_pool_addresses,
            "persons_per_hotspot": self.persons_per_hotspot,
            "safari_cookie_days": self.safari_cookie_days,
            "pages_per_session": self.pages_per_session,
        }
        for name, number in positive.items():
            if not number > 0:
                raise ValueError(f"{name} must be positive")
        if self.pages_per_session < 1:
            raise ValueError("pages_per_session must be at least 1")
        non_negative = {
            "large_offices": self.large_offices,
            "cookie_clear_per_day": self.cookie_clear_per_day,
            "newsletter_clicks_per_week": self.newsletter_clicks_per_week,
            "sessions_per_day": self.sessions_per_day,
        }
        for name, number in non_negative.items():
            if not number >= 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def end_timestamp(self) -> float:
        """`end` as epoch seconds: the window's exclusive upper bound."""
        return self.end.timestamp() if isinstance(self.end, datetime) else float(self.end)

    @property
    def start_timestamp(self) -> float:
        """Epoch seconds of the window's first instant, `days` before `end`."""
        return self.end_timestamp - self.days * DAY

"""Which addresses can be places: rarely shared ones, and workplaces however many use them.

A place is an address a visitor came back to on a second day (`Evidence.settled`). One used
by hundreds says nothing as a place, a carrier pool or a station's wifi, unless it is a
workplace: almost all of its traffic on weekdays. Household members rarely share one, so a
large office's NAT beside a shared home is a person's evidence, where a station's wifi beside
a home is as much a household's.
"""

from __future__ import annotations

# An address used by more visitors than this is no place unless it is a workplace.
PLACE_MAX_VISITORS = 500
# A workplace: at least this many signals, at most this share of them on Saturdays and Sundays
# (UTC days: a weekday evening in the Americas is a Saturday morning in UTC, hence the margin;
# a home, a cafe or a station has well over a fifth of its traffic at weekends).
WORKPLACE_MIN_SIGNALS = 50
WORKPLACE_MAX_WEEKEND_SHARE = 0.1
_DAY = 86_400


class AddressWeeks:
    """Signals per address, and how many of them fell at weekends."""

    __slots__ = ("_signals", "_weekend")

    def __init__(self) -> None:
        self._signals: dict[str, int] = {}
        self._weekend: dict[str, int] = {}

    def observe(self, timestamp: float, ip: str) -> None:
        self._signals[ip] = self._signals.get(ip, 0) + 1
        if (int(timestamp // _DAY) + 3) % 7 >= 5:  # day 0, 1970-01-01, was a Thursday
            self._weekend[ip] = self._weekend.get(ip, 0) + 1

    def discard(self, ip: str) -> None:
        """Forget an address nobody uses any more."""
        self._signals.pop(ip, None)
        self._weekend.pop(ip, None)

    def is_workplace(self, ip: str) -> bool:
        signals = self._signals.get(ip, 0)
        return signals >= WORKPLACE_MIN_SIGNALS and self._weekend.get(ip, 0) <= WORKPLACE_MAX_WEEKEND_SHARE * signals

    def is_place(self, ip: str, visitors: int) -> bool:
        """Whether an address its `visitors` came back to says something as a place."""
        return visitors <= PLACE_MAX_VISITORS or self.is_workplace(ip)

"""Homes: the addresses one household used over time, as opaque ids.

An ISP reassigns a home's address every few days or weeks, so the browser that returns with a
new cookie often shares no address with its old one. What still ties the two addresses is the
household's other visitors: a laptop that kept its cookie and saw both. Addresses that one
visitor settled on (used on two or more days) while few others used them are joined into one
home; a visitor's homes are the homes of its settled addresses that are still rarely shared.

Ids are "h<number>", never an address: they go into profiles and the encoded candidate table.
When two homes join, the larger keeps its id, so few profiles go stale (a stale id only misses a
match). Forgetting an address takes it out of its home; a home is never split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# An address used by more visitors than this is not a home (an office, a hotspot, a carrier pool).
HOME_MAX_VISITORS = 12


class Homes:
    """A partition of addresses into homes; see the module docstring."""

    __slots__ = ("_addresses", "_home_of", "_next")

    def __init__(self) -> None:
        self._home_of: dict[str, str] = {}
        self._addresses: dict[str, set[str]] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._addresses)

    def home(self, ip: str) -> str | None:
        return self._home_of.get(ip)

    def addresses(self, home: str) -> set[str]:
        return self._addresses.get(home, set())

    def join(self, ips: Iterable[str]) -> list[str]:
        """Make `ips` (addresses one visitor settled on) one home, with whatever homes they are in.
        The addresses whose home changed id or that became part of a home: their users'
        profiles changed."""
        homes = {self._home_of.get(ip) for ip in ips}
        known = [h for h in homes if h is not None]
        if known:
            home = max(known, key=lambda h: (len(self._addresses[h]), -int(h[1:])))
        else:
            home = f"h{self._next}"
            self._next += 1
            self._addresses[home] = set()
        members = self._addresses[home]
        moved: list[str] = []
        for other in known:
            if other != home:
                for ip in self._addresses.pop(other):
                    self._home_of[ip] = home
                    members.add(ip)
                    moved.append(ip)
        for ip in ips:
            if ip not in self._home_of:
                self._home_of[ip] = home
                members.add(ip)
                moved.append(ip)
        return moved

    def discard(self, ip: str) -> None:
        home = self._home_of.pop(ip, None)
        if home is None:
            return
        members = self._addresses[home]
        members.discard(ip)
        if not members:
            del self._addresses[home]


def homes_of_history(settled: Iterable[Iterable[str]], visitors: Mapping[str, int]) -> Homes:
    """Homes from a whole history at once (training): each visitor's settled addresses with at
    most HOME_MAX_VISITORS `visitors` are joined."""
    homes = Homes()
    for ips in settled:
        rare = [ip for ip in ips if visitors.get(ip, 0) <= HOME_MAX_VISITORS]
        if rare:
            homes.join(rare)
    return homes

"""The visitor profile record: one component's behaviour, as the visitor model compares it.

One `ProfileRecord` is one row of Splink's input table in training and one side of a pair in
the online scorer, so both see exactly the same columns. Empty evidence is None (SQL NULL),
never an empty tuple, so that null levels fire the same way in Splink and in numpy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The file of a snapshot's visitor profiles (`write_profiles`).
PROFILES_FILE = "visitor-profiles.parquet"

# How much of a profile each list column keeps; more adds cost, little evidence.
MAX_IPS = 8
MAX_PREFIXES = 8
MAX_HOURS = 6
MAX_DAYS = 30
MAX_HOMES = 4
MAX_PLACES = 6


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    unique_id: int
    # The address this component used most, and its term frequency: the share of all
    # components that used it (a home IP is rare, an office NAT or carrier CGNAT is common).
    top_ip: str | None
    tf_top_ip: float | None
    ips: tuple[str, ...] | None  # up to MAX_IPS most used addresses
    ip_prefixes: tuple[str, ...] | None  # /24 for IPv4, /48 for IPv6, up to MAX_PREFIXES
    city: str | None  # "DE/Berlin": country and city, the most frequent pair
    country: str | None
    latitude: float | None  # GPS centroid, when the app sends coordinates
    longitude: float | None
    user_agent_family: str | None  # "ios/safari/phone": os, browser, device kind
    device_kind: str | None  # phone, tablet, desktop
    active_hours: tuple[int, ...] | None  # UTC hours of day with most activity, up to MAX_HOURS
    active_days: tuple[int, ...] | None  # days since the epoch with activity, the last MAX_DAYS
    # The full user-agent string this component sent most, and when it was first and last
    # seen with it (whole epoch seconds; both set or both None, first <= last). One browser's
    # cookies follow one another in time (Safari drops script-set cookies after 7 days; people
    # clear them), while two browsers with the same string in use at once are two devices.
    user_agent: str | None = None
    agent_first_seen: int | None = None
    agent_last_seen: int | None = None
    # Opaque ids of the homes of the addresses this component settled on (`linkage._homes`):
    # one household's addresses over time, so a browser back on a reassigned home address
    # still shares something with its old cookie.
    homes: tuple[str, ...] | None = None
    # Opaque ids of the places this component returns to (addresses it used on two or more
    # days): its homes, and each other address few enough visitors use to say something (an
    # office, a gym, a parent's home). Two addresses of one home are one place, so "2+ shared
    # places" counts distinct places, not a household's reassigned addresses.
    places: tuple[str, ...] | None = None
    # The share of components that sent `user_agent`: a rare Android build string weighs more
    # than the commonest iPhone string (Splink's term-frequency adjustment on the string).
    tf_user_agent: float | None = None
    # Opaque ids of the homes of every address this component used, settled on or not: a
    # browser's next cookie, seen at home on one day so far, has no home of its own yet but is
    # already on one (an address some visitor settled on while few used it).
    homes_seen: tuple[str, ...] | None = None

    def as_row(self) -> dict[str, Any]:
        """The record as Splink takes it: a dict of plain values, lists for the tuples."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name in self.__slots__
            for value in (getattr(self, name),)
        }


def profile_schema() -> Any:
    """The Arrow schema of profile rows (`as_row`): the column types Splink expects whatever
    the values (a column of NULLs stays a typed column)."""
    import pyarrow as pa

    strings, floats, ints = pa.string(), pa.float64(), pa.int64()
    return pa.schema(
        [
            ("unique_id", ints), ("top_ip", strings), ("tf_top_ip", floats), ("ips", pa.list_(strings)),
            ("ip_prefixes", pa.list_(strings)), ("city", strings), ("country", strings), ("latitude", floats),
            ("longitude", floats), ("user_agent_family", strings), ("device_kind", strings),
            ("active_hours", pa.list_(ints)), ("active_days", pa.list_(ints)), ("user_agent", strings),
            ("agent_first_seen", ints), ("agent_last_seen", ints), ("homes", pa.list_(strings)),
            ("places", pa.list_(strings)), ("tf_user_agent", floats), ("homes_seen", pa.list_(strings)),
        ]
    )  # fmt: skip


def write_profiles(path: Path, rows: Sequence[tuple[dict[str, Any], bool]]) -> int:
    """Write profile rows (`as_row`) and whether each is anonymous to a Parquet file (private)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = profile_schema()
    table = pa.Table.from_pylist([row for row, _ in rows], schema=schema)
    table = table.append_column("anonymous", pa.array([anonymous for _, anonymous in rows], type=pa.bool_()))
    pq.write_table(table, path)
    os.chmod(path, 0o600)
    return len(rows)

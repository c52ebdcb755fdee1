"""Typed configuration of the core. The server builds these from its TOML file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Normalisation = Literal["trim", "lower", "email", "phone"]


@dataclass(frozen=True, slots=True)
class NamespaceConfig:
    """Rules of one identifier namespace.

    `name` is a namespace (`cookie`) or a family of them (`crm:*` matches `crm:hotel`).
    `pii` namespaces are stored only as keyed hashes. A person holds at most one value of a
    `unique` namespace, and at most `cap` values of a capped one (the least recently seen is
    evicted). `blocked_values` (compared after normalisation) never link anything.
    """

    name: str
    normalise: Normalisation = "trim"
    pii: bool = False
    unique: bool = False
    cap: int | None = None
    blocked_values: tuple[str, ...] = ()


DEFAULT_NAMESPACES: tuple[NamespaceConfig, ...] = (
    NamespaceConfig("cookie", cap=50),
    NamespaceConfig("device", cap=20),
    NamespaceConfig("login", unique=True),
    NamespaceConfig(
        "email",
        normalise="email",
        pii=True,
        cap=10,
        blocked_values=("test@test.com", "test@example.com", "example@example.com", "noreply@example.com"),
    ),
    NamespaceConfig("phone", normalise="phone", pii=True, cap=5),
    NamespaceConfig("crm:*", unique=True),
)

# Placeholders that trackers and forms send when they have no real value. Values made only
# of zeros and separators (`0000-0000`, `00:00:00:00`) are blocked as well.
DEFAULT_BLOCKED_VALUES: tuple[str, ...] = (
    "",
    "null",
    "none",
    "nil",
    "nan",
    "undefined",
    "0",
    "-1",
    "anonymous",
    "unknown",
    "n/a",
    "test",
    "guest",
    "default",
)


_MAX_WINDOW_SECONDS = 100 * 365.25 * 86_400.0


@dataclass(frozen=True, slots=True)
class LinkageConfig:
    """Everything the core needs to stitch. `hash_secret` keys the HMAC of personal data."""

    hash_secret: bytes
    namespaces: tuple[NamespaceConfig, ...] = DEFAULT_NAMESPACES
    blocked_values: tuple[str, ...] = DEFAULT_BLOCKED_VALUES
    default_phone_region: str | None = None
    max_identifiers_per_person: int = 1000
    max_signals_per_batch: int = 1000
    max_identifiers_per_signal: int = 32
    max_identifiers_per_resolve: int = 10_000
    # SyncCrmRecords: per message, and per stream (one stream is one transaction, held whole).
    max_records_per_message: int = 50_000
    max_records_per_sync: int = 2_000_000
    # Streams received and held at once; the rest wait their turn. A stream is held whole, at
    # about 900 bytes per record once converted, so this bounds the memory syncs can take.
    max_concurrent_syncs: int = 1
    max_value_length: int = 256
    earliest_timestamp: float = 946_684_800.0  # 2000-01-01T00:00:00Z
    max_clock_skew_seconds: float = 86_400.0
    # Idempotency: an event id replayed within this long of its first arrival changes nothing;
    # after it, the event is applied as new (its id is no longer kept).
    event_id_window_seconds: float = 30 * 86_400.0

    def __post_init__(self) -> None:
        if not (isinstance(self.max_concurrent_syncs, int) and self.max_concurrent_syncs >= 1):
            raise ValueError(
                f"max_concurrent_syncs must be a whole number, at least 1, got {self.max_concurrent_syncs}"
            )
        window = self.event_id_window_seconds
        if not (isinstance(window, int | float) and math.isfinite(window) and 0 < window <= _MAX_WINDOW_SECONDS):
            raise ValueError(f"event_id_window_seconds must be a number of seconds in (0, 100 years], got {window}")

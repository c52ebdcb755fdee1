"""Validation of incoming signals: the whole batch is checked before anything is applied."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .._config import LinkageConfig
from .._errors import InvalidArgument
from .._types import Context, IgnoredIdentifier, IgnoredReason, Signal, quantize
from ._namespaces import IdentifierPolicy, PreparedIdentifier

MAX_EVENT_ID_LENGTH = 128
MAX_CHANNEL_LENGTH = 64
MAX_TEXT_LENGTH = 512


@dataclass(frozen=True, slots=True)
class PreparedSignal:
    event_id: str
    timestamp: float
    channel: str
    identifiers: tuple[PreparedIdentifier, ...]
    ignored: tuple[IgnoredIdentifier, ...]
    context: Context

    def with_event_id(self, event_id: str) -> PreparedSignal:
        return replace(self, event_id=event_id)


def prepare_batch(
    signals: Sequence[Signal], policy: IdentifierPolicy, config: LinkageConfig, now: float
) -> list[PreparedSignal]:
    """Validate and normalise a batch, or raise `InvalidArgument` for its first bad field."""
    check_batch_count(len(signals), config)
    return [prepare_signal(signal, policy, config, now, f"signals[{i}]") for i, signal in enumerate(signals)]


def check_batch_count(count: int, config: LinkageConfig) -> None:
    """Raise `InvalidArgument` for an empty or oversized batch: cheap, before any conversion."""
    if not count:
        raise InvalidArgument("signals", "must hold at least one signal")
    if count > config.max_signals_per_batch:
        raise InvalidArgument("signals", f"{count} signals; a batch holds at most {config.max_signals_per_batch}")


def prepare_signal(
    signal: Signal,
    policy: IdentifierPolicy,
    config: LinkageConfig,
    now: float,
    field: str = "",
    require_event_id: bool = True,
) -> PreparedSignal:
    """Validate and normalise one signal; `field` prefixes the paths of `InvalidArgument`."""
    at = f"{field}." if field else ""
    if require_event_id and not signal.event_id:
        raise InvalidArgument(f"{at}event_id", "required: it is the idempotency key")
    if len(signal.event_id) > MAX_EVENT_ID_LENGTH:
        raise InvalidArgument(f"{at}event_id", f"longer than {MAX_EVENT_ID_LENGTH} characters")
    timestamp = quantize(now if signal.timestamp is None else signal.timestamp)
    if not (config.earliest_timestamp <= timestamp <= now + config.max_clock_skew_seconds):
        raise InvalidArgument(f"{at}timestamp", "out of range: before 2000 or in the future")
    if len(signal.channel) > MAX_CHANNEL_LENGTH:
        raise InvalidArgument(f"{at}channel", f"longer than {MAX_CHANNEL_LENGTH} characters")
    if not signal.identifiers:
        raise InvalidArgument(f"{at}identifiers", "must hold at least one identifier")
    if len(signal.identifiers) > config.max_identifiers_per_signal:
        raise InvalidArgument(
            f"{at}identifiers", f"a signal holds at most {config.max_identifiers_per_signal} identifiers"
        )
    prepared: dict[str, PreparedIdentifier] = {}
    ignored: list[IgnoredIdentifier] = []
    unique_values: dict[str, str] = {}
    for j, identifier in enumerate(signal.identifiers):
        item = policy.prepare(identifier, f"{at}identifiers[{j}]")
        if item is None:
            ignored.append(IgnoredIdentifier(j, identifier.namespace, IgnoredReason.BLOCKED_VALUE))
            continue
        if item.config.unique:
            seen = unique_values.setdefault(item.namespace, item.key)
            if seen != item.key:
                raise InvalidArgument(
                    f"{at}identifiers[{j}]",
                    f"a second value of unique namespace {item.namespace!r} in one signal",
                )
        prepared.setdefault(item.key, item)
    if not prepared:
        raise InvalidArgument(f"{at}identifiers", "every identifier is a blocked value; nothing to link")
    _check_context(signal.context, f"{at}context")
    return PreparedSignal(
        event_id=signal.event_id,
        timestamp=timestamp,
        channel=signal.channel.strip().lower(),
        identifiers=tuple(prepared.values()),
        ignored=tuple(ignored),
        context=signal.context,
    )


def _check_context(context: Context, field: str) -> None:
    if context.ip:
        try:
            ipaddress.ip_address(context.ip)
        except ValueError:
            raise InvalidArgument(f"{field}.ip", "not an IPv4 or IPv6 address") from None
    geo = context.geo
    if geo.country and (len(geo.country) != 2 or not geo.country.isalpha()):
        raise InvalidArgument(f"{field}.geo.country", "not an ISO 3166-1 alpha-2 code")
    if (geo.latitude is None) != (geo.longitude is None):
        raise InvalidArgument(f"{field}.geo", "latitude and longitude come together")
    if geo.latitude is not None and not (math.isfinite(geo.latitude) and -90 <= geo.latitude <= 90):
        raise InvalidArgument(f"{field}.geo.latitude", "out of range [-90, 90]")
    if geo.longitude is not None and not (math.isfinite(geo.longitude) and -180 <= geo.longitude <= 180):
        raise InvalidArgument(f"{field}.geo.longitude", "out of range [-180, 180]")
    for name, text in (("geo.city", geo.city), ("user_agent", context.user_agent)):
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidArgument(f"{field}.{name}", f"longer than {MAX_TEXT_LENGTH} characters")

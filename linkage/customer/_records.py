"""Customer records from source systems: validation, normalisation, and the signal each becomes.

A record's source key (`crm:<system>`), email and phone are identifiers and link hard, as one
signal; its attributes go to the customer index for the customer model. Records are checked one
by one: a malformed record is reported and left out, the others go on.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from .._config import LinkageConfig
from .._errors import InvalidArgument
from .._types import Identifier, Signal
from ..identifiers._namespaces import IdentifierPolicy
from ..identifiers._signals import PreparedSignal, prepare_signal
from ._catalogue import CustomerAttributes, normalise_document_id, normalise_text

_SYSTEM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MAX_ATTRIBUTE_LENGTH = 200
# Records arrive as signals on channel "crm:<system>".
CUSTOMER_RECORD_CHANNEL = "crm:"
# Reported rejections per stream; the count goes on past it.
MAX_REPORTED_ERRORS = 1000
# A record's attribute values in field order (`CustomerAttributes.as_dict().values()`, without
# building a dict per record).
_ATTRIBUTE_VALUES = operator.attrgetter(*(f.name for f in fields(CustomerAttributes)))


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer row of a source system as a caller sends it (empty string = not given)."""

    source_system: str
    source_key: str
    given_name: str = ""
    family_name: str = ""
    date_of_birth: str = ""  # YYYY-MM-DD
    address: str = ""
    postcode: str = ""
    city: str = ""
    email: str = ""
    phone: str = ""
    updated_at: float | None = None  # seconds since the epoch; None = now
    document_id: str = ""  # passport or national id number; only its keyed hash is kept


@dataclass(frozen=True, slots=True)
class RecordError:
    index: int  # position in the stream, from 0
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What a stream of customer records did."""

    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    linked_probabilistically: int = 0
    errors: tuple[RecordError, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class PreparedCustomerRecord:
    index: int
    key: str  # the source key's identifier key
    signal: PreparedSignal  # source key, email and phone, seen together
    attributes: CustomerAttributes
    fingerprint: str  # keyed hash of everything in the record: equal means nothing changed


def prepare_customer_records(
    records: Sequence[CustomerRecord], policy: IdentifierPolicy, config: LinkageConfig, now: float
) -> tuple[list[PreparedCustomerRecord], list[RecordError]]:
    """The valid records, prepared, and one error per invalid record (its first bad field)."""
    prepared: list[PreparedCustomerRecord] = []
    errors: list[RecordError] = []
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    for index, record in enumerate(records):
        try:
            prepared.append(_prepare(index, record, policy, config, now, today))
        except InvalidArgument as exc:
            errors.append(RecordError(index, exc.field, exc.message))
    return prepared, errors


def _prepare(
    index: int, record: CustomerRecord, policy: IdentifierPolicy, config: LinkageConfig, now: float, today: dt.date
) -> PreparedCustomerRecord:
    system = record.source_system.strip().lower()
    if not system:
        raise InvalidArgument("source_system", "required")
    if not _SYSTEM.match(system):
        raise InvalidArgument("source_system", "use up to 64 lower-case letters, digits, _ or -")
    source_key = record.source_key.strip()
    if not source_key:
        raise InvalidArgument("source_key", "required")
    attributes = CustomerAttributes(
        given_name=_text(record.given_name, "given_name"),
        family_name=_text(record.family_name, "family_name"),
        date_of_birth=_date_of_birth(record.date_of_birth, today),
        address=_text(record.address, "address"),
        postcode=_text(record.postcode, "postcode"),
        city=_text(record.city, "city"),
        document_id=_document_id(record.document_id, policy),
    )
    namespace = f"crm:{system}"
    identifiers = [Identifier(namespace, source_key)]
    record_fields = ["source_key"]
    if record.email.strip():
        identifiers.append(Identifier("email", record.email))
        record_fields.append("email")
    if record.phone.strip():
        identifiers.append(Identifier("phone", record.phone))
        record_fields.append("phone")
    signal = Signal(
        event_id="",  # set below from the fingerprint
        timestamp=record.updated_at,
        channel=f"{CUSTOMER_RECORD_CHANNEL}{system}",
        identifiers=tuple(identifiers),
    )
    try:
        prepared = prepare_signal(signal, policy, config, now, require_event_id=False)
    except InvalidArgument as exc:
        raise InvalidArgument(_record_field(exc.field, record_fields), exc.message) from None
    prepared_identifiers = prepared.identifiers
    if prepared_identifiers[0].namespace != namespace:
        raise InvalidArgument("source_key", "a blocked value; it never identifies anyone")
    key = prepared_identifiers[0].key
    fingerprint = policy.fingerprint(
        key,
        *(item.key for item in prepared_identifiers[1:]),
        *(value or "" for value in _ATTRIBUTE_VALUES(attributes)),
        repr(prepared.timestamp) if record.updated_at is not None else "",
    )
    return PreparedCustomerRecord(
        index=index,
        key=key,
        # `prepared.with_event_id(...)`, without `dataclasses.replace`'s per-call cost.
        signal=PreparedSignal(
            event_id=f"crm-record:{fingerprint[:40]}",
            timestamp=prepared.timestamp,
            channel=prepared.channel,
            identifiers=prepared_identifiers,
            ignored=prepared.ignored,
            context=prepared.context,
        ),
        attributes=attributes,
        fingerprint=fingerprint,
    )


def _record_field(signal_field: str, fields: list[str]) -> str:
    """`identifiers[1].value` of the record's signal is the record's `email` (or `phone`)."""
    match = re.match(r"^identifiers\[([0-9]+)\]", signal_field)
    if match is not None and int(match.group(1)) < len(fields):
        return fields[int(match.group(1))]
    if signal_field.startswith("timestamp"):
        return "updated_at"
    if signal_field == "identifiers":  # all of them blocked values
        return "source_key"
    return signal_field


def _text(value: str, name: str) -> str | None:
    if len(value) > MAX_ATTRIBUTE_LENGTH:
        raise InvalidArgument(name, f"longer than {MAX_ATTRIBUTE_LENGTH} characters")
    return normalise_text(value)


def _document_id(value: str, policy: IdentifierPolicy) -> str | None:
    if len(value) > MAX_ATTRIBUTE_LENGTH:
        raise InvalidArgument("document_id", f"longer than {MAX_ATTRIBUTE_LENGTH} characters")
    number = normalise_document_id(value)
    return None if number is None else policy.fingerprint("document_id", number)


def _date_of_birth(value: str, today: dt.date) -> str | None:
    text = value.strip()
    if not text:
        return None
    if not _DATE.match(text):
        raise InvalidArgument("date_of_birth", "not a date in the form YYYY-MM-DD")
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument("date_of_birth", "not a calendar date") from None
    if date.year < 1900 or date > today:
        raise InvalidArgument("date_of_birth", "out of range: before 1900 or in the future")
    return text

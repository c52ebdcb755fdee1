"""Identifier rules: namespace lookup, normalisation, blocked values and keyed hashing."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers

from .._config import LinkageConfig, NamespaceConfig
from .._errors import InvalidArgument
from .._types import Identifier

_NAMESPACE_NAME = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9][a-z0-9_.-]*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_ALL_ZEROS = re.compile(r"^[0\-_.:\s]*0[0\-_.:\s]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Keys join namespace and stored value with a character neither can contain.
KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class PreparedIdentifier:
    """An identifier after normalisation, as the graph and the store see it."""

    key: str
    namespace: str
    value: str  # normalised, or its keyed hash for personal data
    config: NamespaceConfig


def join_key(namespace: str, value: str) -> str:
    return f"{namespace}{KEY_SEPARATOR}{value}"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, value = key.partition(KEY_SEPARATOR)
    return namespace, value


class IdentifierPolicy:
    """Applies the namespace rules of a `LinkageConfig` to identifiers as callers send them."""

    def __init__(self, config: LinkageConfig) -> None:
        if not config.hash_secret:
            raise ValueError("hash_secret must not be empty")
        self._config = config
        self._exact: dict[str, NamespaceConfig] = {}
        self._families: dict[str, NamespaceConfig] = {}
        for ns in config.namespaces:
            if ns.name.endswith(":*"):
                self._families[ns.name[:-1]] = ns
            else:
                self._exact[ns.name] = ns
        blocked = {v.strip().lower() for v in config.blocked_values}
        self._blocked: dict[str, frozenset[str]] = {
            ns.name: frozenset(blocked | {v.strip().lower() for v in ns.blocked_values}) for ns in config.namespaces
        }

    def namespace(self, name: str) -> NamespaceConfig | None:
        found = self._exact.get(name)
        if found is None and ":" in name and _NAMESPACE_NAME.match(name):
            found = self._families.get(name[: name.index(":") + 1])
        return found

    def prepare(self, identifier: Identifier, field: str) -> PreparedIdentifier | None:
        """Normalise and hash; None for a blocked value. Raises `InvalidArgument` naming `field`."""
        ns = self.namespace(identifier.namespace)
        if ns is None:
            raise InvalidArgument(f"{field}.namespace", f"unknown namespace {_shown(identifier.namespace)}")
        raw = identifier.value
        if len(raw) > self._config.max_value_length:
            raise InvalidArgument(f"{field}.value", f"longer than {self._config.max_value_length} characters")
        value = raw.strip()
        if value.lower() in self._blocked[ns.name] or _ALL_ZEROS.match(value):
            return None
        value = self._normalise(ns, value, f"{field}.value")
        if value.lower() in self._blocked[ns.name]:
            return None
        if ns.pii:
            value = self._hash(identifier.namespace, value)
        return PreparedIdentifier(
            key=f"{identifier.namespace}{KEY_SEPARATOR}{value}",
            namespace=identifier.namespace,
            value=value,
            config=ns,
        )

    def _normalise(self, ns: NamespaceConfig, value: str, field: str) -> str:
        if _CONTROL.search(value):  # KEY_SEPARATOR is one of them
            raise InvalidArgument(field, "contains control characters")
        if ns.normalise == "lower":
            return value.lower()
        if ns.normalise == "email":
            value = value.lower()
            if not _EMAIL.match(value):
                # The value itself is personal data: the message must not echo it.
                raise InvalidArgument(field, "not a valid email address")
            return value
        if ns.normalise == "phone":
            return self._e164(value, field)
        return value

    def _e164(self, value: str, field: str) -> str:
        try:
            number = phonenumbers.parse(value, self._config.default_phone_region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            hint = "" if self._config.default_phone_region else " (give it in E.164, +<country code>...)"
            raise InvalidArgument(field, f"not a valid phone number{hint}")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def fingerprint(self, *parts: str) -> str:
        """A keyed hash of several values: tells whether a record changed without keeping it."""
        message = KEY_SEPARATOR.join(parts).encode()
        return hmac.new(self._config.hash_secret, b"fingerprint" + message, hashlib.sha256).hexdigest()

    def erasure_digest(self, kind: str, text: str) -> str:
        """The keyed hash an erased identifier key or event id is remembered by (`kind` keeps
        the two apart): enough to refuse it when it comes back, nothing to read it from."""
        message = f"erased{KEY_SEPARATOR}{kind}{KEY_SEPARATOR}{text}".encode()
        return hmac.new(self._config.hash_secret, message, hashlib.sha256).hexdigest()

    def _hash(self, namespace: str, value: str) -> str:
        message = f"{namespace}{KEY_SEPARATOR}{value}".encode()
        return hmac.new(self._config.hash_secret, message, hashlib.sha256).hexdigest()


def clash(a: Mapping[str, str], b: Mapping[str, str]) -> str | None:
    """The first unique namespace where `a` and `b` (namespace -> key of a unique identifier
    each side holds) hold different values, else None: the one rule that keeps two persons with
    different logins apart, for hard merges and soft links alike."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for namespace, key in small.items():
        other = large.get(namespace)
        if other is not None and other != key:
            return namespace
    return None


_SHOWABLE = re.compile(r"[a-z0-9_:-]{1,40}")


def _shown(client_text: str) -> str:
    """Client text as an error message may repeat it: a short name-like value, else only its
    length (an error must not echo arbitrary input, nor overflow gRPC's status metadata)."""
    return repr(client_text) if _SHOWABLE.fullmatch(client_text) else f"(a value of {len(client_text)} characters)"

from __future__ import annotations

import pytest

from linkage import Identifier, IdentifierPolicy, InvalidArgument, LinkageConfig, NamespaceConfig


def _policy(**overrides: object) -> IdentifierPolicy:
    return IdentifierPolicy(LinkageConfig(hash_secret=b"k1", **overrides))  # type: ignore[arg-type]


def test_email_is_trimmed_lowercased_and_hashed_with_the_secret() -> None:
    a = _policy().prepare(Identifier("email", "  Anna@Example.ORG "), "f")
    b = _policy().prepare(Identifier("email", "anna@example.org"), "f")
    other_secret = IdentifierPolicy(LinkageConfig(hash_secret=b"k2")).prepare(
        Identifier("email", "anna@example.org"), "f"
    )
    assert a is not None and b is not None and other_secret is not None
    assert a.key == b.key and len(a.value) == 64 and "anna" not in a.value
    assert other_secret.value != a.value, "the hash is keyed"


def test_phone_goes_to_e164_with_or_without_a_default_region() -> None:
    international = _policy().prepare(Identifier("phone", "+49 (30) 123-4567"), "f")
    national = _policy(default_phone_region="DE").prepare(Identifier("phone", "030 1234567"), "f")
    assert international is not None and national is not None
    assert international.key == national.key
    with pytest.raises(InvalidArgument) as caught:
        _policy().prepare(Identifier("phone", "030 1234567"), "x")
    assert caught.value.field == "x.value" and "E.164" in caught.value.message


@pytest.mark.parametrize("value", ["null", "UNDEFINED", " 0 ", "-1", "anonymous", "0000-0000", "00:00:00:00:00:00", ""])
def test_placeholders_are_blocked(value: str) -> None:
    assert _policy().prepare(Identifier("cookie", value), "f") is None


def test_configured_blocked_values_and_namespace_specific_ones() -> None:
    policy = _policy(blocked_values=("shared-kiosk",))
    assert policy.prepare(Identifier("device", "Shared-Kiosk"), "f") is None
    assert policy.prepare(Identifier("email", "test@example.com"), "f") is None
    assert policy.prepare(Identifier("cookie", "test@example.com"), "f") is not None


def test_crm_family_and_custom_namespaces() -> None:
    policy = _policy(
        namespaces=(NamespaceConfig("crm:*", unique=True), NamespaceConfig("idfa", normalise="lower", cap=3))
    )
    hotel = policy.prepare(Identifier("crm:hotel", "H-17"), "f")
    idfa = policy.prepare(Identifier("idfa", "AB-CD"), "f")
    assert hotel is not None and hotel.config.unique and hotel.value == "H-17"
    assert idfa is not None and idfa.value == "ab-cd"
    for bad in ("crm:", "crm:Hotel", "crm", "cookie"):
        with pytest.raises(InvalidArgument) as caught:
            policy.prepare(Identifier(bad, "1"), "ids[3]")
        assert caught.value.field == "ids[3].namespace"


def test_overlong_values_are_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        _policy().prepare(Identifier("cookie", "x" * 300), "f")
    assert caught.value.field == "f.value"

"""The shared field rules (pure functions, used by both the client and the emulator)."""

from __future__ import annotations

import math

import pytest

from airflow_provider_spotzee import validation as v


def test_email_normalised_and_invalid_reports_code_without_value():
    assert v.email("Jane@Example.COM") == "Jane@example.com"
    with pytest.raises(v.FieldError) as info:
        v.email("jane.example.com")
    assert info.value.code == v.PARAMETER_INVALID_FORMAT
    assert "jane" not in str(info.value)


@pytest.mark.parametrize("raw", ["+61 400 123 456", "+61400123456", "+61-400-123-456", 61400123456])
def test_phone_normalised_to_e164(raw):
    assert v.phone(raw) == "+61400123456"


@pytest.mark.parametrize("raw", ["0400 123 456", "+999999", "call me maybe", "+1555"])
def test_impossible_phones_are_invalid(raw):
    with pytest.raises(v.FieldError) as info:
        v.phone(raw)
    assert info.value.code == v.PARAMETER_INVALID_FORMAT
    assert str(raw) not in str(info.value)


def test_timezone_and_locale():
    assert v.timezone("Australia/Sydney") == "Australia/Sydney"
    for bad in ("Mars/Olympus", "x" * 51, "../etc/passwd"):
        with pytest.raises(v.FieldError):
            v.timezone(bad)
    assert v.locale("en_AU") == "en-AU"
    for bad in ("english please", "x" * 256):
        with pytest.raises(v.FieldError):
            v.locale(bad)


def test_identifiers():
    assert v.identifier("external_id", 42) == "42"
    assert v.identifier("external_id", "  ") is None
    for bad in ("a\x00b", "x" * 256, 1.5, True, {"a": 1}):
        with pytest.raises(v.FieldError):
            v.identifier("external_id", bad)
    with pytest.raises(v.FieldError) as info:
        v.require_identity(None, None)
    assert info.value.code == v.PARAMETER_MISSING


def test_json_data_rejects_what_json_cannot_carry():
    assert v.json_data("data", {"a": [1, 2.5, None, {"b": "c"}]}) == {"a": [1, 2.5, None, {"b": "c"}]}
    for bad in ({"x": math.nan}, {"x": math.inf}, {"x": b"bytes"}, {"x": {1, 2}}, {1: "int key"}, [1]):
        with pytest.raises(v.FieldError):
            v.json_data("data", bad)


def test_subscription_rules():
    assert v.subscription_state(2) == 2
    for bad in (3, -1, "1", True, None):
        with pytest.raises(v.FieldError):
            v.subscription_state(bad)
    assert v.subscription_id(7) == 7
    for bad in (0, -7, "7", None, True):
        with pytest.raises(v.FieldError):
            v.subscription_id(bad)


def _reference_phone(text):
    import phonenumbers

    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def test_phone_fast_path_agrees_with_the_full_parser():
    import random

    import phonenumbers

    rng = random.Random(7)
    codes = [*phonenumbers.COUNTRY_CODE_TO_REGION_CODE, 999, 42, 800, 882]
    for _ in range(30_000):
        text = f"+{rng.choice(codes)}{rng.randint(0, 9)}{rng.randint(0, 10 ** rng.randint(3, 12))}"
        try:
            ours = v._phone.__wrapped__(text)
        except v.FieldError:
            ours = None
        assert ours == _reference_phone(text), text


def test_email_fast_path_agrees_with_email_validator():
    import random
    import string

    rng = random.Random(3)
    alphabet = string.ascii_letters + string.digits + ".-_+!#%&'*/=?^`{|}~@ \"()[]:;,<>\\é"
    domains = ["example.com", "EXAMPLE.com", "sub.example.co.uk", "xn--bcher-kva.example", "localhost", "a..b",
               "-bad.com", "x.invalid", "123.456", "bücher.example", "example.com.", "a" * 64 + ".com", ""]
    for _ in range(20_000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))
        address = f"{local}@{rng.choice(domains)}"
        try:
            ours = v._email(address)
        except v.FieldError:
            ours = None
        try:
            reference = v._email_full.__wrapped__(address)
        except v.FieldError:
            reference = None
        assert ours == reference, address

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

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


# RFC 5322 addr-specs that email-validator's defaults refuse for deliverability, not syntax: accepted.
RFC5322_VALID = {
    '"jane doe"@example.com': '"jane doe"@example.com',
    '"jane"@example.com': "jane@example.com",  # needless quotes are dropped
    '"a@b"@example.com': '"a@b"@example.com',
    "user@[192.0.2.1]": "user@[192.0.2.1]",
    "user@[IPv6:2001:db8:0:0::1]": "user@[IPv6:2001:db8::1]",
    "jane@shop.test": "jane@shop.test",
    "jane@test": "jane@test",
    "jane@localhost": "jane@localhost",
    "jane@LocalHost": "jane@localhost",
    "jane@printer.local": "jane@printer.local",
    "jane@nothing.invalid": "jane@nothing.invalid",
    "jane@hidden.onion": "jane@hidden.onion",
    "jane@1.2.0.192.in-addr.arpa": "jane@1.2.0.192.in-addr.arpa",
    "jane@xn--bcher-kva.local": "jane@bücher.local",
    "jane@example": "jane@example",
    "jane@123.456": "jane@123.456",
    "Postmaster@Example.COM": "postmaster@example.com",  # RFC 2142 names are case-insensitive
}

# What the syntax refuses (and the 254-character limit, display names, comments): still refused.
RFC5322_INVALID = [
    "jane.example.com", "jane@", "@example.com", "jane@@example.com", "jane..doe@example.com",
    ".jane@example.com", "jane.@example.com", "jane doe@example.com", '"jane@example.com',
    "jane@example..com", "jane@-example.com", "jane@example-.com", "jane@example.com.", "jane@[300.1.1.1]",
    "jane@[192.0.2.1", "jane(comment)@example.com", "Jane <jane@example.com>", "x" * 245 + "@example.com",
    "jane@" + "a" * 64 + ".com", "jane@" + ".".join(["a" * 60] * 5), "jane@exa mple.com", "jane@localhost.",
    "jane@..localhost", "jane@-x.local", "jane@a_b.local",
]


@pytest.mark.parametrize(("address", "normalized"), RFC5322_VALID.items())
def test_rfc5322_addresses_are_accepted_whatever_their_deliverability(address, normalized):
    assert v.email(address) == normalized
    assert v._email_full.__wrapped__(address) == normalized


@pytest.mark.parametrize("address", RFC5322_INVALID)
def test_what_rfc5322_refuses_is_still_refused(address):
    with pytest.raises(v.FieldError) as info:
        v.email(address)
    assert info.value.code == v.PARAMETER_INVALID_FORMAT
    with pytest.raises(v.FieldError):
        v._email_full.__wrapped__(address)


@pytest.mark.parametrize("name", ["Australia/Sydney", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires"])
def test_iana_timezones_are_accepted(name):
    assert v.timezone(name) == name
    assert v.timezone(f" {name} ") == name


@pytest.mark.parametrize(
    "name",
    ["posix/Europe/Paris", "right/UTC", "localtime", "posixrules", "posix/UTC", "right/Australia/Sydney",
     "europe/paris", "Europe/Paris/", "/usr/share/zoneinfo/UTC", "Mars/Olympus", "zone.tab", "tzdata.zi"],
)
def test_host_zoneinfo_files_are_not_timezones(name):
    with pytest.raises(v.FieldError) as info:
        v.timezone(name)
    assert info.value.code == v.PARAMETER_INVALID_FORMAT
    assert "IANA" in info.value.message


def test_the_timezone_list_is_fixed_and_not_the_hosts():
    """With tzdata installed the list is its ``zones`` file, the same on every host."""
    import importlib
    import importlib.resources

    tzdata = importlib.import_module("tzdata")
    listed = importlib.resources.files(tzdata).joinpath("zones").read_text(encoding="utf-8").split()
    assert v.IANA_TIMEZONES == frozenset(listed)
    assert v.IANA_TIMEZONES_SOURCE == f"tzdata {tzdata.IANA_VERSION}"
    assert all(len(name) <= v.MAX_TIMEZONE_LEN for name in v.IANA_TIMEZONES)


def test_without_tzdata_the_hosts_zones_are_used_without_its_extra_files(monkeypatch):
    import sys
    import zoneinfo

    monkeypatch.setitem(sys.modules, "tzdata", None)  # import tzdata -> ImportError
    zones, source = v._iana_zone_names()
    assert source == "host zoneinfo"
    assert not any(z.startswith(("posix/", "right/")) or z in ("localtime", "posixrules") for z in zones)
    assert zones <= zoneinfo.available_timezones()
    if "UTC" in zoneinfo.available_timezones():
        assert "UTC" in zones


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
            ours = v._phone(text)  # (the fast path, uncached; else the parser)
        except v.FieldError:
            ours = None
        assert ours == _reference_phone(text), text


def test_email_fast_path_agrees_with_email_validator():
    import random
    import string

    rng = random.Random(3)
    alphabet = string.ascii_letters + string.digits + ".-_+!#%&'*/=?^`{|}~@ \"()[]:;,<>\\é"
    domains = ["example.com", "EXAMPLE.com", "sub.example.co.uk", "xn--bcher-kva.example", "localhost", "a..b",
               "-bad.com", "x.invalid", "123.456", "bücher.example", "example.com.", "a" * 64 + ".com", "",
               "[192.0.2.1]", "[IPv6:2001:db8::1]", "[300.1.1.1]", "test", "shop.test", "LOCALHOST",
               "printer.local", "xn--bcher-kva.local", "a.onion", "in-addr.arpa", "x.local.", "a_b.local"]
    mailboxes = ["postmaster", "Postmaster", "ABUSE", "info", "noc.x", '"quoted"', '"two words"', '"a\\"b"']
    for _ in range(20_000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))
        if rng.random() < 0.1:
            local = rng.choice(mailboxes)
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


def _identifier_outcome(fn, value):
    try:
        return fn("external_id", value)
    except v.FieldError as exc:
        return (exc.code, exc.message)


def test_identifier_fast_check_agrees_with_every_case():
    """The one-test fast path of ``identifier`` gives what its full rules give, for any text."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    edges = st.sampled_from([" ", "\t", "\n", "\x00", "\x7f", "\x85", "\u00a0", "\u2028", "\u3000", "\ufeff",
                             "\u200b", "é", "𝔘", "a" * v.MAX_IDENTIFIER_LEN, "\ud800"])
    texts = st.lists(st.one_of(st.text(max_size=3), edges), max_size=4).map("".join)

    @settings(max_examples=3000, deadline=None)
    @given(st.one_of(texts, st.integers(), st.none(), st.booleans()))
    def agree(value):
        assert _identifier_outcome(v.identifier, value) == _identifier_outcome(v._identifier, value)

    agree()

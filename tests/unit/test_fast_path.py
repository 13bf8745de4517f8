"""The fast paths of the send path agree with the complete ones, record for record and byte for byte.

``send.prepare`` validates a plain user dict with ``models.user_upsert_fields`` (the same rules, no model)
and leaves everything it cannot decide to the pydantic model (``send.prepare_with_model``), which also
words every error. ``validation.json_data`` checks a flat object without the recursive walk, and the
E.164 phone path takes possible lengths from a small cache. Each is compared here with the complete path
it stands in for: same accept/reject decision, same code and message, same identifiers, same bytes.
"""

from __future__ import annotations

import collections
import enum
import math
import random
import types
import zoneinfo
from collections.abc import Callable
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_spotzee import models
from airflow_provider_spotzee import validation as v
from airflow_provider_spotzee.models import UserUpsert, user_upsert_fields
from airflow_provider_spotzee.send import USERS_ASYNC, USERS_BATCH, Prepared, prepare, prepare_with_model
from tests.reliability.test_bad_input import CORPUS


class _Level(enum.IntEnum):
    GOLD = 3


class _Text(str):
    pass


class _Object(dict):
    pass


# --------------------------------------------------------------------------------------------- records

_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_ZONES = sorted(v.IANA_TIMEZONES)
_HOST_ONLY_ZONES = sorted(z for z in zoneinfo.available_timezones() if z not in v.IANA_TIMEZONES)
_DOMAINS = ["example.com", "Example.COM", "mail.example.co.uk", "xn--bcher-kva.example", "bücher.example",
            "localhost", "a..b", "-bad.com", "x.invalid", "123.456", "example.com.", "a" * 64 + ".com", "",
            "[192.0.2.1]", "[IPv6:2001:db8::1]", "[300.1.1.1]", "test", "shop.test", "LocalHost", "printer.local",
            "xn--bcher-kva.local", "a.onion"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
odd_scalars = st.one_of(st.floats(), st.binary(max_size=3), st.sampled_from(
    [2**70, -(2**64), 1e16, -0.0, "\ud800", "a\x00b", _Level.GOLD, _Text("s"), (1, 2), {1}, object]))
any_values = st.recursive(
    st.one_of(json_scalars, odd_scalars),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def _mostly(good: st.SearchStrategy[Any], *bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a valid value (so that whole records are often valid), sometimes anything else."""
    anything_else = st.one_of(*bad)
    return st.integers(0, 9).flatmap(lambda k: good if k < 8 else anything_else)


identifiers = _mostly(
    st.one_of(st.from_regex(r"[a-z]{1,4}-[0-9]{1,9}", fullmatch=True), st.integers(0)),
    st.text(max_size=12),
    st.sampled_from(["", "  ", " padded ", "x" * 255, "x" * 256, "a\x00b", "ok 😀", _Text("sub")]),
    st.none(), st.booleans(), st.floats(), st.binary(max_size=2))
emails = _mostly(
    st.one_of(st.builds("{}@{}".format, st.from_regex(r"[a-z0-9._+-]{1,20}", fullmatch=True),
                        st.sampled_from(_DOMAINS[:4])), st.emails()),
    st.builds("{}@{}".format, st.text(max_size=70), st.sampled_from(_DOMAINS)),
    st.sampled_from(["", " a@example.com ", "jane@@example.com", "\ud800@example.com", "x" * 300,
                     '"jane doe"@example.com', '"jane"@example.com', "Postmaster@Example.com", "jane@[192.0.2.1]",
                     "jane@shop.test", "jane@localhost", "jane(c)@example.com", "Jane <jane@example.com>"]),
    st.text(max_size=30), st.none(), st.integers())
phones = _mostly(
    st.one_of(st.builds("+614{:08d}".format, st.integers(0, 10**8 - 1)),
              st.builds("+{}{}".format, st.sampled_from(_CODES), st.integers(0, 10**13))),
    st.sampled_from(["+61 400 123 456", "0400 123 456", "+4402071838750", "+330612345678", "+1555", "+0000",
                     "+٦١٤٠٠١٢٣٤٥٦", "+61400123456;ext=5", " +61400123456 ", ""]),
    st.integers(-5, 10**15), st.text(alphabet="+0123456789 -()x", max_size=20), st.none(), st.booleans())
timezones = _mostly(
    st.sampled_from(_ZONES),
    st.sampled_from(["Mars/Olympus", "x" * 51, "../etc/passwd", " Europe/London ", "europe/london", "",
                     "localtime", "Europe/London\x00", "posix/Europe/Paris", "right/UTC", "posixrules",
                     *_HOST_ONLY_ZONES[:20]]),
    st.text(max_size=55), st.none(), st.integers())
locales = _mostly(st.sampled_from(["en", "en-AU", "en_AU", "fr-CA", "zh-Hant-TW", "und", "i-klingon"]),
                  st.from_regex(r"[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8}){0,2}", fullmatch=True),
                  st.sampled_from(["en-", "", " en ", "english please", "x" * 256]),
                  st.text(max_size=10), st.none(), st.integers())
data_objects = _mostly(
    st.dictionaries(st.text(max_size=8), json_scalars, max_size=6),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.none()), any_values, max_size=4),
    st.builds(_Object, st.dictionaries(st.text(max_size=4), json_scalars, max_size=2)),
    st.none(), st.lists(json_scalars, max_size=2), st.text(max_size=3))
user_fields = {"external_id": identifiers, "anonymous_id": identifiers, "email": emails, "phone": phones,
               "timezone": timezones, "locale": locales, "data": data_objects}


def _user_record(fields: dict[str, Any], extra: dict[Any, Any], reverse: bool) -> dict[Any, Any]:
    record = {**fields, **extra}
    return dict(reversed(record.items())) if reverse else record


user_records = st.builds(
    _user_record,
    st.fixed_dictionaries({"external_id": identifiers},
                          optional={name: s for name, s in user_fields.items() if name != "external_id"}),
    st.one_of(st.just({}), st.just({}),
              st.dictionaries(st.sampled_from(["name", "emial", "user", 1, _Text("phone")]),  # unknown, odd keys
                              st.integers(), max_size=1)),
    st.booleans(),  # key order must not matter
)
records = st.one_of(
    user_records, user_records, st.fixed_dictionaries({}, optional=user_fields),  # no identity at all
    user_records.map(types.MappingProxyType), user_records.map(collections.OrderedDict),  # other mappings
    st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)))


def _same(record: Any) -> None:
    for endpoint in (USERS_BATCH, USERS_ASYNC):
        assert prepare(endpoint, 7, record) == prepare_with_model(endpoint, 7, record), record


# ----------------------------------------------------------------------------------------------- tests


def test_the_rule_table_follows_the_models_fields():
    assert list(models._USER_RULES) == list(UserUpsert.model_fields)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_prepare_agrees_with_the_model_path(record):
    """Decision, code, message, identifiers and body bytes: ``prepare`` (fast path first) and the model."""
    _same(record)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_records)
def test_fast_path_accepts_only_what_the_model_accepts_with_its_values(record):
    fields = user_upsert_fields(record)
    if fields is None:
        return
    model = UserUpsert.model_validate(record)  # raises if the fast path accepted something the model rejects
    assert list(fields.items()) == [(name, value) for name, value in model if value is not None]
    outcome = prepare(USERS_BATCH, 0, record)
    assert isinstance(outcome, Prepared)
    assert outcome.body == UserUpsert.__pydantic_serializer__.to_json(model, exclude_none=True)


def _realistic_user(i: int, rng: random.Random) -> dict[str, Any]:
    """The common shape: str id, ASCII email, E.164 phone, known zone and locale, flat JSON data."""
    prefix, digits = rng.choice([("+6140", 7), ("+1415555", 4), ("+44791", 7), ("+336", 8), ("+4915", 9)])
    return {
        "external_id": f"crm-{i:09d}",
        "email": f"first.last{i}+tag@mail{i % 97}.Example.com",
        "phone": f"{prefix}{rng.randrange(10**digits):0{digits}d}",
        "timezone": rng.choice(["Australia/Sydney", "Europe/London", "America/New_York", "UTC", "Etc/GMT+5"]),
        "locale": rng.choice(["en-AU", "en_GB", "fr-FR", "de", "ja-JP"]),
        "data": {"first_name": "Zoë", "plan": rng.choice(["free", "pro"]), "ltv": rng.random() * 1e4,
                 "vip": i % 11 == 0, "orders": i, "note": None},
    }


def test_the_common_shape_takes_the_fast_path_with_the_models_bytes():
    rng = random.Random(5)
    for i in range(3000):
        record = _realistic_user(i, rng)
        assert user_upsert_fields(record) is not None, record
        _same(record)


EDGE_RECORDS: list[Any] = [
    *CORPUS,
    {"external_id": "k", "data": {"big": 2**80, "neg": -(2**64), "f": 1e16, "z": -0.0, "tiny": 5e-324,
                                  "level": _Level.GOLD, "sub": _Text("s"), "none": None, "t": True}},
    {"external_id": "k", "data": _Object(a=1)}, {"external_id": "k", "data": collections.OrderedDict(a=1.5)},
    {"external_id": "k", "data": {_Text("key"): 1}}, {_Text("external_id"): "k", "email": "a@example.com"},
    {"external_id": "k", "data": {"a": math.nan}}, {"external_id": "k", "data": {"a": [math.inf]}},
    {"external_id": "k", "data": {"\ud800": 1}}, {"external_id": "k", "data": {"a": "\udfff"}},
    {"external_id": "\ud800"}, {"external_id": "k", "email": "\ud800@example.com"},
    {"external_id": "k", "data": {}}, {"external_id": "", "anonymous_id": 5},
    {"anonymous_id": "a", "phone": 61400123456},
    {"external_id": "k", "phone": "+61 400 123 456", "email": "Jane@Example.COM", "locale": "en_AU"},
    {"external_id": "k", "timezone": " UTC ", "locale": " en "}, {"external_id": None, "anonymous_id": None},
    {"external_id": "k", "email": None, "phone": "", "timezone": None, "locale": "", "data": None},
    {"external_id": "k", "data": {"a": {"b": {"c": [1, {"d": None}]}}}},
    {"external_id": "k", "email": "a@example.com", 1: "int key"}, {"external_id": "k", "name": "typo"},
    # RFC 5322 addresses beyond the dot-atom common case, and reserved domains: accepted on both paths
    {"external_id": "k", "email": '"jane doe"@example.com'}, {"external_id": "k", "email": '"jane"@example.com'},
    {"external_id": "k", "email": "jane@[192.0.2.1]"}, {"external_id": "k", "email": "jane@[IPv6:2001:db8:0::1]"},
    {"external_id": "k", "email": "jane@shop.test"}, {"external_id": "k", "email": "jane@LOCALHOST"},
    {"external_id": "k", "email": "Postmaster@Example.COM"}, {"external_id": "k", "email": "jane@[300.1.1.1]"},
    {"external_id": "k", "email": "jane(comment)@example.com"}, {"external_id": "k", "email": "jane@example.com."},
    # only the fixed IANA list is a timezone
    {"external_id": "k", "timezone": "posix/Europe/Paris"}, {"external_id": "k", "timezone": "right/UTC"},
    {"external_id": "k", "timezone": "localtime"}, {"external_id": "k", "timezone": "Etc/GMT+5"},
]


@pytest.mark.parametrize("record", EDGE_RECORDS, ids=range(len(EDGE_RECORDS)))
def test_edge_records_agree(record):
    _same(record)


def test_nesting_limit_agrees():
    for depth in range(29, 36):
        nested: Any = 1
        for _ in range(depth):
            nested = {"a": nested}
        _same({"external_id": "k", "data": nested})


def _json_data_reference(value: Any) -> Any:
    """``json_data`` before its flat fast path: always the recursive walk."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise v.FieldError("data", v.PARAMETER_INVALID_FORMAT, "must be a JSON object")
    v._check_json("data", value, 0)
    return value


def _outcome(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return "ok", fn(*args)
    except v.FieldError as exc:
        return "error", exc.field, exc.code, exc.message


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.dictionaries(st.one_of(st.text(max_size=3), st.integers(), st.none()),
                                 st.one_of(json_scalars, odd_scalars), max_size=6),
                 st.dictionaries(st.text(max_size=3), any_values, max_size=4),
                 any_values))
def test_json_data_flat_path_agrees_with_the_full_walk(value):
    ours, reference = _outcome(v.json_data, "data", value), _outcome(_json_data_reference, value)
    assert ours == reference
    if ours[0] == "ok":
        assert ours[1] is value


def test_possible_length_is_phonenumbers_is_possible_number():
    rng = random.Random(11)
    for code in _CODES:
        for length in range(1, 18):
            for _ in range(2):
                national = rng.randrange(10 ** (length - 1), 10**length)
                number = phonenumbers.PhoneNumber(country_code=code, national_number=national)
                expected = phonenumbers.is_possible_number(number)
                assert v._possible_length(code, length) == expected, (code, national)

"""The event and subscription-toggle fast paths (``fastpath.py``) agree with the pydantic models, record for
record and byte for byte: same accept/reject decision, same code and message, same identifiers, same body.
The user fast path's proof is tests/unit/test_fast_path.py; this reuses its value strategies."""

from __future__ import annotations

import collections
import datetime as dt
import random
import types
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_spotzee import validation as v
from airflow_provider_spotzee.fastpath import event_fields, subscription_toggle_fields
from airflow_provider_spotzee.models import Event, SubscriptionToggle
from airflow_provider_spotzee.send import EVENTS, SUBSCRIPTIONS_BATCH, Prepared, prepare, prepare_with_model
from tests.unit.test_fast_path import (
    _Level,
    _mostly,
    _Object,
    _Text,
    data_objects,
    identifiers,
    json_scalars,
    odd_scalars,
    user_fields,
)

names = _mostly(st.sampled_from(["order_placed", "page_viewed", "Signed Up", "x" * 255]),
                st.sampled_from(["", "   ", "x" * 256, _Text("sub"), " padded ", "a\x00b", "\ud800"]),
                st.text(max_size=12), st.none(), st.integers(), st.booleans())
#: The canonical form (``YYYY-MM-DDTHH:MM:SS.mmmZ``, the fast path's shortcut), real or not (Feb 30, hour 24).
canonical_looking = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.isoformat(timespec="milliseconds") + "Z"),
    st.builds("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z".format, st.integers(0, 9999), st.integers(0, 13),
              st.integers(0, 32), st.integers(0, 25), st.integers(0, 61), st.integers(0, 61), st.integers(0, 999)),
    st.sampled_from(["2026-11-25T10:00:00.000z", "2026-11-25T10:00:00.000Z ", "２０２６-11-25T10:00:00.000Z",
                     "2026-11-25T10:00:00.0000Z", "2026-02-29T00:00:00.000Z", "2024-02-29T00:00:00.000Z"]))
timestamps = _mostly(
    st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456+02:00", "2026-11-25 10:00:00",
                     "2026-11-25", "2026-11-25T10:00:00z"]),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-14))])),
    st.sampled_from(["", " ", "yesterday", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                     "2026-13-01", " 2026-11-25T10:00:00Z "]),
    st.text(max_size=12), st.none(), st.integers(), st.dates(),
    canonical_looking)
profiles = _mostly(
    st.fixed_dictionaries({}, optional={name: s for name, s in user_fields.items()
                                        if name not in ("external_id", "anonymous_id")}),
    st.fixed_dictionaries({"external_id": identifiers}),  # not a profile field: the model refuses it
    st.dictionaries(st.sampled_from(["emial", 1, _Text("email")]), st.integers(), max_size=1),
    st.builds(_Object), st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=1))
ints = _mostly(st.integers(-1, 5), st.integers(), st.booleans(), st.none(), st.floats(), st.text(max_size=2),
               st.sampled_from([_Level.GOLD, 2**70, "1", 1.0]))
event_fields_strategies = {"anonymous_id": identifiers, "data": data_objects, "user": profiles,
                           "created_at": timestamps}
toggle_fields_strategies = {"anonymous_id": identifiers, "state": ints}
extras: st.SearchStrategy[dict[Any, Any]] = st.one_of(st.just({}), st.just({}),
                   st.dictionaries(st.sampled_from(["nmae", "properties", "user_id", 1, _Text("name")]),
                                   st.integers(), max_size=1))


def _record(fields: dict[str, Any], extra: dict[Any, Any], reverse: bool) -> dict[Any, Any]:
    record = {**fields, **extra}
    return dict(reversed(record.items())) if reverse else record


event_records = st.builds(
    _record,
    st.fixed_dictionaries({"external_id": identifiers, "name": names}, optional=event_fields_strategies),
    extras, st.booleans())
toggle_records = st.builds(
    _record,
    st.fixed_dictionaries({"external_id": identifiers, "subscription_id": ints}, optional=toggle_fields_strategies),
    extras, st.booleans())


def _others(records: st.SearchStrategy[Any], fields: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(records, records, st.fixed_dictionaries({}, optional=fields),
                     records.map(types.MappingProxyType), records.map(collections.OrderedDict),
                     st.one_of(st.none(), st.integers(), st.text(max_size=3), json_scalars, odd_scalars))


def _same(endpoint: Any, record: Any) -> None:
    assert prepare(endpoint, 7, record) == prepare_with_model(endpoint, 7, record), record


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_others(event_records, {"name": names, "external_id": identifiers, **event_fields_strategies}))
def test_events_prepare_agrees_with_the_model_path(record):
    _same(EVENTS, record)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_others(toggle_records, {"subscription_id": ints, "external_id": identifiers, **toggle_fields_strategies}))
def test_toggles_prepare_agrees_with_the_model_path(record):
    _same(SUBSCRIPTIONS_BATCH, record)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_records)
def test_event_fast_path_accepts_only_what_the_model_accepts_with_its_values(record):
    fields = event_fields(record)
    if fields is None:
        return
    model = Event.model_validate(record)  # raises if the fast path accepted something the model rejects
    assert fields == model.model_dump(exclude_none=True)
    outcome = prepare(EVENTS, 0, record)
    assert outcome == prepare_with_model(EVENTS, 0, record)
    if isinstance(outcome, Prepared):  # (a lone surrogate validates but cannot be serialised: both refuse it)
        assert outcome.body == Event.__pydantic_serializer__.to_json(model, exclude_none=True)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(toggle_records)
def test_toggle_fast_path_accepts_only_what_the_model_accepts_with_its_values(record):
    fields = subscription_toggle_fields(record)
    if fields is None:
        return
    model = SubscriptionToggle.model_validate(record)
    assert list(fields.items()) == [(name, value) for name, value in model if value is not None]
    outcome = prepare(SUBSCRIPTIONS_BATCH, 0, record)
    assert outcome == prepare_with_model(SUBSCRIPTIONS_BATCH, 0, record)
    if isinstance(outcome, Prepared):  # (a lone surrogate validates but cannot be serialised: both refuse it)
        assert outcome.body == SubscriptionToggle.__pydantic_serializer__.to_json(model, exclude_none=True)
        assert outcome.subscription_id == model.subscription_id


def _realistic_event(i: int, rng: random.Random) -> dict[str, Any]:
    record: dict[str, Any] = {"external_id": f"crm-{i:09d}", "name": rng.choice(["order_placed", "page_viewed"]),
                              "created_at": rng.choice(["2026-11-25T10:00:00.000Z", "2026-11-25T10:00:00+02:00",
                                                        dt.datetime(2026, 11, 25, 10, 0, i % 60)]),
                              "data": {"order_id": f"ord-{i}", "total": rng.random() * 100, "items": i, "gift": None}}
    if i % 3 == 0:
        record["user"] = {"email": f"first.last{i}@Example.com", "timezone": "Europe/London", "locale": "en_GB",
                          "data": {"plan": "pro"}}
    return record


def _timestamp_outcome(rule: Any, value: Any) -> Any:
    try:
        return rule("created_at", value)
    except v.FieldError as exc:
        return (exc.code, exc.message)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(canonical_looking, timestamps))
def test_canonical_timestamps_are_their_own_result(value):
    """``validation.timestamp``'s shortcut for the canonical form gives what its full rules give (the model
    and the fast path both use it, so this compares it with the rules themselves)."""
    assert _timestamp_outcome(v.timestamp, value) == _timestamp_outcome(v._timestamp, value)
    _same(EVENTS, {"external_id": "k", "name": "n", "created_at": value})


def test_the_common_shapes_take_the_fast_paths_with_the_models_bytes():
    rng = random.Random(7)
    for i in range(2000):
        event = _realistic_event(i, rng)
        assert event_fields(event) is not None, event
        _same(EVENTS, event)
        toggle = {"external_id": f"crm-{i}", "subscription_id": 1 + i % 50, "state": i % 3}
        assert subscription_toggle_fields(toggle) is not None, toggle
        _same(SUBSCRIPTIONS_BATCH, toggle)


EDGE_RECORDS: list[tuple[Any, Any]] = [
    (EVENTS, {"external_id": "k", "name": "n", "user": {}}),
    (EVENTS, {"external_id": "k", "name": "n", "user": None, "data": None, "created_at": None}),
    (EVENTS, {"external_id": "k", "name": "n", "user": {"email": None, "phone": ""}}),
    (EVENTS, {"external_id": "k", "name": "n", "created_at": ""}),
    (EVENTS, {"external_id": "k", "name": "n", "user": {"external_id": "k"}}),
    (EVENTS, {"anonymous_id": 5, "name": "n", "user": {"data": {"a": {"b": [1]}}}}),
    (EVENTS, {"external_id": " ", "name": "n"}), (EVENTS, {"external_id": "k", "name": "   "}),
    (EVENTS, {"external_id": "k", "name": "n", "data": {"\ud800": 1}}),
    (EVENTS, {"external_id": "k", "name": "\ud800"}),
    (EVENTS, {"external_id": "k", "name": "n", "created_at": dt.date(2026, 1, 1)}),
    (EVENTS, {"external_id": "k", "name": "n", "created_at": "0001-01-01T00:00:00+01:00"}),
    (SUBSCRIPTIONS_BATCH, {"external_id": "k", "subscription_id": True, "state": 1}),
    (SUBSCRIPTIONS_BATCH, {"external_id": "k", "subscription_id": 1, "state": _Level.GOLD}),
    (SUBSCRIPTIONS_BATCH, {"external_id": "k", "subscription_id": 2**70, "state": 2}),
    (SUBSCRIPTIONS_BATCH, {"external_id": "k", "subscription_id": 0, "state": 2}),
    (SUBSCRIPTIONS_BATCH, {"external_id": "k", "subscription_id": 1}),
    (SUBSCRIPTIONS_BATCH, {"subscription_id": 1, "state": 1}),
    (SUBSCRIPTIONS_BATCH, {"anonymous_id": "a", "subscription_id": 1, "state": 0}),
]


@pytest.mark.parametrize(("endpoint", "record"), EDGE_RECORDS, ids=range(len(EDGE_RECORDS)))
def test_edge_records_agree(endpoint, record):
    _same(endpoint, record)

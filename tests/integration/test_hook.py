"""SpotzeeHook against the emulator over loopback: real HTTP, no mocks."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from airflow_provider_spotzee.exceptions import (
    SpotzeeAPIError,
    SpotzeeAuthError,
    SpotzeeConfigError,
    SpotzeeRetriesExhausted,
)
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.models import UserUpsert
from airflow_provider_spotzee.send import Endpoint
from tests.integration.helpers import connection_env, users


def _contacts(emulator) -> dict[str, dict]:
    return {c["external_id"]: c for c in emulator.contacts() if c.get("external_id")}


def test_sync_upsert_reports_per_item_and_never_sends_invalid(hook, emulator):
    records = users(247) + [
        {"external_id": "bad-email", "email": "jane@@example.com"},
        {"email": "no-id@example.com"},
        {"external_id": "bad-tz", "timezone": "Mars/Base"},
    ]
    result = hook.upsert_users(iter(records), idempotency_namespace="t1")
    assert (result.submitted, result.succeeded, result.invalid, result.rejected, result.dead_lettered) == (
        250,
        247,
        3,
        0,
        0,
    )
    assert result.requests == 3 and result.balanced
    codes = {f.external_id: (f.stage, f.code) for f in result.failures}
    assert codes == {
        "bad-email": ("invalid", "parameter_invalid_format"),
        None: ("invalid", "parameter_missing"),
        "bad-tz": ("invalid", "parameter_invalid_format"),
    }
    assert [f.index for f in result.failures] == [247, 248, 249]
    dumped = json.dumps([f.model_dump() for f in result.failures])
    assert "example.com" not in dumped  # no PII in the failure list
    contacts = _contacts(emulator)
    assert len(contacts) == 247 and "bad-email" not in contacts and "bad-tz" not in contacts
    assert contacts["u-5"]["phone"] == "+61400123456" and contacts["u-5"]["data"] == {"n": 5}


def test_models_are_accepted_as_input(hook, emulator):
    result = hook.upsert_users(
        [UserUpsert(external_id="m-1", phone="+61 400 123 456")], collect_contacts=True
    )
    assert result.succeeded == 1 and result.contacts[0].phone == "+61400123456"


def test_async_upsert_becomes_visible_after_the_delay(hook, emulator):
    emulator.configure(async_delay_seconds=1.0)
    result = hook.upsert_users(users(30), mode="async", idempotency_namespace="a1")
    assert result.succeeded == 30 and result.requests == 1
    assert hook.get_user("u-3") is None
    deadline = time.monotonic() + 10
    while hook.get_user("u-3") is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert hook.get_user("u-3").email == "user3@example.com"


def test_events_with_user_block(hook, emulator):
    events = [
        {
            "name": "order_placed",
            "external_id": f"e-{i}",
            "data": {"value": i},
            "user": {"email": f"buyer{i}@example.com"},
            "created_at": "2026-11-24T10:00:00Z",
        }
        for i in range(120)
    ]
    events.append({"name": "", "external_id": "e-bad"})
    result = hook.track_events(events, idempotency_namespace="ev1")
    assert (result.succeeded, result.invalid, result.requests) == (120, 1, 2)
    assert result.failures[0].code == "parameter_missing"
    assert len(emulator.events()) == 120
    assert hook.get_user("e-7").email == "buyer7@example.com"


def test_subscriptions_batch_and_per_contact(hook, emulator):
    hook.upsert_users(users(3))
    toggles = [
        {"external_id": "u-0", "subscription_id": 7, "state": 1},
        {"external_id": "u-1", "subscription_id": 7, "state": 0},
        {"external_id": "nobody", "subscription_id": 7, "state": 1},
        {"external_id": "u-2", "subscription_id": 7, "state": 5},
    ]
    result = hook.set_subscriptions(toggles, idempotency_namespace="s1")
    assert (result.succeeded, result.rejected, result.invalid) == (2, 1, 1)
    rejected = next(f for f in result.failures if f.stage == "rejected")
    assert (rejected.external_id, rejected.subscription_id, rejected.code) == (
        "nobody",
        7,
        "resource_missing",
    )
    hook.upsert_users([{"external_id": "odd/id with space", "email": "odd@example.com"}])
    contact = hook.update_user_subscriptions("odd/id with space", [{"subscription_id": 3, "state": 2}])
    assert contact.external_id == "odd/id with space"


def test_reads_get_user_and_pagination(hook, emulator):
    hook.upsert_users(users(230))
    assert hook.get_user("missing-one") is None
    ids = [c.external_id for c in hook.iter_users(page_size=100)]
    assert len(ids) == 230 and len(set(ids)) == 230
    numeric = hook.get_user("u-1").id
    assert hook.get_user(contact_id=numeric).external_id == "u-1"
    with pytest.warns(DeprecationWarning, match="contact_id="):  # the old spelling still works
        assert hook.get_user(numeric).external_id == "u-1"


def test_connection_test(hook, monkeypatch, emulator):
    ok, message = hook.test_connection()
    assert ok, message
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPOTZEE_BAD",
        json.dumps({"conn_type": "spotzee", "host": emulator.base_url, "password": "sk_wrong_SECRET123"}),
    )
    ok, message = SpotzeeHook("spotzee_bad").test_connection()
    assert not ok and "SECRET123" not in message


def test_same_namespace_twice_is_replayed_not_reapplied(hook, emulator):
    first = hook.track_events(
        [{"name": "x", "external_id": f"r-{i}"} for i in range(250)], idempotency_namespace="same"
    )
    second = hook.track_events(
        [{"name": "x", "external_id": f"r-{i}"} for i in range(250)], idempotency_namespace="same"
    )
    assert first.succeeded == second.succeeded == 250
    assert second.replayed == 3
    assert len(emulator.events()) == 250


def test_429_storm_is_waited_out_and_nothing_is_doubled(hook, emulator):
    emulator.set_faults(storm_seconds=2.0)
    result = hook.track_events(
        [{"name": "storm", "external_id": f"s-{i}"} for i in range(500)], idempotency_namespace="storm"
    )
    assert result.succeeded == 500 and result.throttled >= 1 and result.dead_lettered == 0
    assert len(emulator.events()) == 500
    assert emulator.ledger_summary()["duplicate_events"] == 0


def test_5xx_and_dropped_connections_apply_each_item_exactly_once(hook, emulator):
    emulator.set_faults(error_rate=0.2, drop_after_apply_rate=0.2, seed=3)
    result = hook.track_events(
        [{"name": "chaos", "external_id": f"c-{i}", "data": {"i": i}} for i in range(2000)],
        idempotency_namespace="chaos",
    )
    assert result.succeeded == 2000 and result.retries > 0 and result.replayed > 0
    assert len(emulator.events()) == 2000
    assert emulator.ledger_summary()["duplicate_events"] == 0


def test_in_progress_409_is_retried(hook, emulator):
    emulator.set_faults(in_progress_rate=0.5, seed=5)
    result = hook.upsert_users(users(1000), idempotency_namespace="ip")
    assert result.succeeded == 1000 and result.retries > 0


def test_batches_that_exhaust_retries_are_dead_lettered_with_payloads(monkeypatch, emulator):
    connection_env(monkeypatch, emulator, max_retries=1, max_wait=0.2)
    emulator.set_faults(error_rate=1.0)
    result = SpotzeeHook().upsert_users(users(150), idempotency_namespace="dl")
    assert result.dead_lettered == 150 and result.succeeded == 0 and result.requests == 4
    assert {f.code for f in result.failures} <= {"internal_error", "service_unavailable"}
    assert result.payloads[149]["external_id"] == "u-149"
    assert all(re.fullmatch(r"gave up after 1 retries: POST /users/batch: HTTP 50[03] \w+", f.message)
               for f in result.failures)


def test_reads_that_exhaust_retries_raise_a_spotzee_error_with_status_and_code(monkeypatch, emulator):
    connection_env(monkeypatch, emulator, max_retries=1, max_wait=0.2)
    emulator.set_faults(error_rate=1.0)
    with pytest.raises(SpotzeeRetriesExhausted) as info:
        SpotzeeHook().get_user("u-1")
    assert isinstance(info.value, SpotzeeAPIError)
    assert info.value.status in (500, 503) and info.value.code in ("internal_error", "service_unavailable")
    assert "kept failing after 1 retries" in str(info.value)


def test_a_missing_endpoint_fails_fast_as_a_config_error(hook, emulator):
    bogus = Endpoint("bogus", "POST", "/no-such-endpoint", UserUpsert, per_item_results=False)
    with pytest.raises(SpotzeeConfigError, match="/api/client"):
        hook.send(bogus, users(500))
    assert emulator.stats()["requests_total"] <= hook.config.max_in_flight  # stopped, not one per batch


def test_calls_without_a_namespace_are_separate_sends(hook, emulator):
    event = [{"name": "clicked", "external_id": "n-1"}]
    hook.track_events(event)
    hook.track_events(event)  # sent twice on purpose: recorded twice
    assert len(emulator.events()) == 2


def test_401_fails_fast_and_the_key_never_leaks(monkeypatch, emulator, caplog):
    secret = "sk_live_TOPSECRET987"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPOTZEE_DEFAULT",
        json.dumps({"conn_type": "spotzee", "host": emulator.base_url, "password": secret}),
    )
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(SpotzeeAuthError) as info:
        SpotzeeHook().upsert_users(users(500))
    assert time.monotonic() - started < 5
    assert info.value.status == 401
    assert "TOPSECRET987" not in str(info.value) and "TOPSECRET987" not in repr(info.value)
    assert "TOPSECRET987" not in caplog.text


def test_403_read_only_key(monkeypatch, emulator):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPOTZEE_DEFAULT",
        json.dumps({"conn_type": "spotzee", "host": emulator.base_url, "password": "sk_test_readonly"}),
    )
    with pytest.raises(SpotzeeAuthError) as info:
        SpotzeeHook().track_events([{"name": "x", "external_id": "a"}])
    assert info.value.status == 403 and "write permission" in str(info.value)


def test_unsupported_api_version_fails_fast_with_a_fix(monkeypatch, emulator):
    connection_env(monkeypatch, emulator, api_version="1999-01-01")
    with pytest.raises(SpotzeeAuthError, match="api_version"):
        SpotzeeHook().upsert_users(users(1))


def test_commit_points_are_ordered_and_complete(hook, emulator):
    commits: list[int] = []
    records = users(450)
    records[120] = {"external_id": "x", "email": "bad"}
    hook.upsert_users(records, on_commit=lambda i, _r: commits.append(i))
    assert commits == sorted(commits) and commits[-1] == 449

"""SpotzeeContactSensor and SpotzeeContactTrigger against the emulator (no mocks)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_spotzee.exceptions import SpotzeeAPIError, SpotzeeAuthError
from airflow_provider_spotzee.sensors.contacts import SpotzeeContactSensor
from airflow_provider_spotzee.triggers.contacts import SpotzeeContactTrigger, next_poll_in
from tests.integration.helpers import connection_env, users


def _sensor(**kwargs) -> SpotzeeContactSensor:
    kwargs.setdefault("poke_interval", 0.5)
    kwargs.setdefault("timeout", 10)
    return SpotzeeContactSensor(task_id="wait", **kwargs)


def test_poke_waits_for_async_upserts(hook, emulator):
    emulator.configure(async_delay_seconds=1.5)
    hook.upsert_users(users(20), mode="async")
    sensor = _sensor(external_ids=[f"u-{i}" for i in range(20)], deferrable=False)
    assert sensor.poke({}) is False
    time.sleep(1.7)
    assert sensor.poke({})


def test_updated_since_requires_an_update_not_only_existence(hook, emulator):
    hook.upsert_users(users(3))
    since = hook.get_user("u-1").updated_at.isoformat()
    emulator.advance_clock(60)
    sensor = _sensor(external_ids=["u-1"], updated_since=(hook.get_user("u-1").updated_at.replace(year=2099)).isoformat())
    assert sensor.poke({}) is False
    assert _sensor(external_ids=["u-1"], updated_since=since).poke({})


def test_timeout_names_the_missing_ids(hook, emulator):
    hook.upsert_users(users(2))
    sensor = _sensor(external_ids=["u-0", "never-1", "u-1", "never-2"], timeout=1.5, deferrable=False)
    with pytest.raises(AirflowSensorTimeout) as info:
        sensor.execute({})
    assert "never-1" in str(info.value) and "never-2" in str(info.value) and "u-0" not in str(info.value)


def test_soft_fail_skips_and_still_names_them(hook, emulator):
    sensor = _sensor(external_ids=["ghost"], timeout=1, soft_fail=True, deferrable=False)
    with pytest.raises(AirflowSkipException, match="ghost"):
        sensor.execute({})


def test_429_storm_during_polling_does_not_fail_or_count_as_missing(hook, emulator):
    hook.upsert_users(users(12))
    plans = {**emulator.config()["plans"], "tiny": {"read": 2, "write": 1, "burst": 2}}
    emulator.configure(plans=plans, plan="tiny")  # reads: 2 req/s, 20 per 10 s window
    # Somebody else on the key has just used the whole read window, so the sensor's first lookups are
    # refused whatever its pacer does (it only learns of the others from the answers).
    with httpx.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {emulator.api_key}"}) as other:
        while other.get("/users", params={"limit": 1}).status_code != 429:
            pass
    before = emulator.stats()["rate_limited"]
    sensor = _sensor(external_ids=[f"u-{i}" for i in range(12)], deferrable=False, timeout=120)
    sensor.execute({})  # returns once all are seen; raises if 429s were taken as failures
    assert emulator.stats()["rate_limited"] > before


def test_401_fails_at_once(monkeypatch, emulator):
    connection_env(monkeypatch, emulator)
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT",
                       json.dumps({"conn_type": "spotzee", "host": emulator.base_url, "password": "sk_nope"}))
    started = time.monotonic()
    with pytest.raises(SpotzeeAuthError):
        _sensor(external_ids=["a"], deferrable=False, timeout=60).execute({})
    assert time.monotonic() - started < 5


def test_deferrable_pokes_first_then_defers_with_the_timeout(hook, emulator):
    hook.upsert_users(users(2))
    assert _sensor(external_ids=["u-0", "u-1"], deferrable=True).execute({}) == {"found": 2}
    sensor = _sensor(external_ids=["u-0", "later"], deferrable=True, timeout=30)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, SpotzeeContactTrigger) and trigger.external_ids == ["later"]
    assert info.value.timeout.total_seconds() > 30  # the trigger's own deadline fires first


def test_trigger_serialises_and_round_trips():
    trigger = SpotzeeContactTrigger(spotzee_conn_id="c", external_ids=["a", "b"], updated_since="2026-11-24T00:00:00+00:00",
                                    poll_interval=3, deadline=123.0, max_consecutive_errors=4)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_spotzee.triggers.contacts.SpotzeeContactTrigger"
    again = SpotzeeContactTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)


def _run_trigger(trigger: SpotzeeContactTrigger) -> dict:
    async def first_event():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(first_event())


def test_trigger_success_and_timeout(hook, emulator):
    emulator.configure(async_delay_seconds=1.0)
    hook.upsert_users(users(3), mode="async")
    ok = _run_trigger(SpotzeeContactTrigger(spotzee_conn_id="spotzee_default", external_ids=["u-0", "u-2"],
                                            poll_interval=0.3, deadline=time.time() + 20))
    assert ok == {"status": "success", "found": 2}
    late = _run_trigger(SpotzeeContactTrigger(spotzee_conn_id="spotzee_default", external_ids=["u-0", "ghost"],
                                              poll_interval=0.3, deadline=time.time() + 1))
    assert late["status"] == "timeout" and late["missing"] == ["ghost"]


def test_trigger_reports_auth_errors(monkeypatch, emulator):
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT",
                       json.dumps({"conn_type": "spotzee", "host": emulator.base_url, "password": "sk_nope"}))
    event = _run_trigger(SpotzeeContactTrigger(spotzee_conn_id="spotzee_default", external_ids=["a"], poll_interval=0.1))
    assert event["status"] == "error" and "sk_nope" not in event["message"]


def test_trigger_polls_once_more_at_the_deadline_instead_of_giving_up_early(hook, emulator):
    emulator.configure(async_delay_seconds=1.0)
    hook.upsert_users(users(1), mode="async")  # visible after ~1 s
    started = time.time()
    # The poll interval is far longer than the time left: the old trigger gave up after its first poll.
    event = _run_trigger(SpotzeeContactTrigger(spotzee_conn_id="spotzee_default", external_ids=["u-0"],
                                               poll_interval=60, deadline=started + 2.0))
    assert event == {"status": "success", "found": 1}
    assert time.time() - started < 10


def test_trigger_timeout_is_structured_and_never_before_the_deadline(hook, emulator):
    deadline = time.time() + 1.2
    event = _run_trigger(SpotzeeContactTrigger(spotzee_conn_id="spotzee_default", external_ids=["gone-1", "gone-2"],
                                               poll_interval=0.5, deadline=deadline))
    assert time.time() >= deadline
    assert event == {"status": "timeout", "missing": ["gone-1", "gone-2"], "missing_count": 2}


@pytest.mark.parametrize(
    ("now", "interval", "deadline", "expected"),
    [(100.0, 30.0, None, 30.0), (100.0, 30.0, 200.0, 30.0), (100.0, 30.0, 110.0, 10.0), (100.0, 30.0, 100.0, 0.0),
     (100.0, 30.0, 90.0, 0.0)],
)
def test_next_poll_in(now, interval, deadline, expected):
    assert next_poll_in(now, interval, deadline) == expected


def test_execute_complete_branches_on_the_status_never_on_the_text():
    sensor = _sensor(external_ids=["a"], deferrable=True)
    with pytest.raises(AirflowSensorTimeout, match=r"2 contact\(s\) never appeared: \['a', 'b'\]"):
        sensor.execute_complete({}, {"status": "timeout", "missing": ["a", "b"], "missing_count": 2})
    with pytest.raises(AirflowSkipException, match="never appeared"):
        _sensor(external_ids=["a"], soft_fail=True).execute_complete({}, {"status": "timeout", "missing": ["a"]})
    # an error whose text happens to say "timed out" is an error, not a timeout
    with pytest.raises(SpotzeeAPIError, match="failed") as info:
        sensor.execute_complete({}, {"status": "error", "message": "5 polls in a row failed: GET /users/a timed out"})
    assert not isinstance(info.value, AirflowSensorTimeout)
    assert sensor.execute_complete({}, {"status": "success", "found": 1}) == {"found": 1}


def test_a_skip_that_is_not_a_timeout_is_not_reported_as_one(monkeypatch, emulator):
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT",
                       json.dumps({"conn_type": "spotzee", "host": emulator.base_url, "password": "sk_nope"}))
    sensor = _sensor(external_ids=["a"], deferrable=False, timeout=60, never_fail=True)
    with pytest.raises(AirflowSkipException) as info:
        sensor.execute({})
    assert "never appeared" not in str(info.value) and isinstance(info.value.__cause__, SpotzeeAuthError)


def test_trigger_reports_a_wrong_base_url_at_once(monkeypatch, emulator):
    root = emulator.base_url.rsplit("/api/client", 1)[0]
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT",
                       json.dumps({"conn_type": "spotzee", "host": root, "password": emulator.api_key}))
    started = time.monotonic()
    event = _run_trigger(SpotzeeContactTrigger(spotzee_conn_id="spotzee_default", external_ids=["a"], poll_interval=5))
    assert event["status"] == "error" and "/api/client" in event["message"]
    assert time.monotonic() - started < 5  # not after max_consecutive_errors polls

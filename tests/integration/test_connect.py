"""Nothing listening: the hook says so within seconds (never after 50 batches × 9 attempts), names the
URL and never the key; a service that answered before and then blips still gets the full retries."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from airflow_provider_spotzee.exceptions import (
    SpotzeeAPIError,
    SpotzeeConfigError,
    SpotzeeConnectError,
    SpotzeeRetriesExhausted,
)
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from tests.integration.helpers import BlinkingProxy, RefusingPort, users

KEY = "sk_test_connect_SECRET42"


@pytest.fixture
def refusing(monkeypatch):
    port = RefusingPort()
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT",
                       json.dumps({"conn_type": "spotzee", "host": port.url, "password": KEY}))
    yield port
    port.close()


def _check_message(exc: BaseException, url: str) -> None:
    text = str(exc)
    assert text.startswith(f"cannot connect to {url}: Connection refused"), text
    assert "SECRET42" not in text and "SECRET42" not in repr(exc) and "Bearer" not in text


def test_a_sync_against_a_closed_port_fails_fast_and_names_the_url(refusing):
    started = time.monotonic()
    with pytest.raises(SpotzeeConnectError) as info:
        SpotzeeHook().upsert_users(users(5000), idempotency_namespace="closed")
    assert time.monotonic() - started < 10
    assert isinstance(info.value, SpotzeeAPIError) and not isinstance(info.value, SpotzeeRetriesExhausted)
    _check_message(info.value, refusing.url)


def test_get_user_against_a_closed_port_fails_fast(refusing):
    started = time.monotonic()
    with pytest.raises(SpotzeeConnectError) as info:
        SpotzeeHook().get_user("u-1")
    assert time.monotonic() - started < 10
    _check_message(info.value, refusing.url)


def test_connection_test_against_a_closed_port_says_cannot_connect(refusing):
    started = time.monotonic()
    ok, message = SpotzeeHook().test_connection()
    assert not ok and time.monotonic() - started < 10
    assert message.startswith(f"cannot connect to {refusing.url}: Connection refused"), message
    assert "transport_error" not in message and "SECRET42" not in message


def test_a_host_that_does_not_resolve_fails_fast(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps(
        {"conn_type": "spotzee", "host": "https://spotzee.invalid/api/client", "password": KEY}))
    started = time.monotonic()
    with pytest.raises(SpotzeeConnectError, match=r"cannot connect to https://spotzee.invalid/api/client: "):
        SpotzeeHook().track_events([{"name": "x", "external_id": "a"}])
    assert time.monotonic() - started < 10


def test_a_service_that_answered_and_then_blips_gets_the_full_retries(monkeypatch, emulator):
    target = urlsplit(emulator.base_url)
    proxy = BlinkingProxy((target.hostname, target.port))
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps(
            {"conn_type": "spotzee", "host": proxy.url, "password": emulator.api_key}))

        def records():
            for index, record in enumerate(users(3000)):
                if index == 2000:  # ≥ 4 batches have been answered by now (16 in flight at most)
                    proxy.outage(1.5)  # every connection dropped, new ones refused for 1.5 s
                yield record

        result = SpotzeeHook().upsert_users(records(), idempotency_namespace="blip")
    finally:
        proxy.close()
    assert proxy.outages == 1 and result.retries > 0
    assert (result.succeeded, result.dead_lettered) == (3000, 0) and result.balanced
    assert len(emulator.contacts()) == 3000


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _no_event_loop_noise(exc: BaseException) -> None:
    for link in _chain(exc):
        assert not (isinstance(link, RuntimeError) and "event loop" in str(link)), _chain(exc)


def test_a_base_url_without_api_client_names_the_url_and_the_fix(monkeypatch, emulator):
    root = emulator.base_url.rsplit("/api/client", 1)[0]
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps(
        {"conn_type": "spotzee", "host": root, "password": emulator.api_key}))
    hook = SpotzeeHook()
    ok, message = hook.test_connection()
    assert not ok and f"base URL ends in /api/client (now {root})" in message, message
    for call in (lambda: hook.get_user("u-1"), lambda: hook.get_user("1024"), lambda: hook.get_user(contact_id=7),
                 lambda: hook.update_user_subscriptions("u-1", [{"subscription_id": 7, "state": 1}]),
                 lambda: list(hook.iter_users())):
        with pytest.raises(SpotzeeConfigError, match=r"base URL ends in /api/client \(now http://127\.0\.0\.1:\d+\)"):
            call()


def test_a_missing_contact_costs_one_extra_read_per_transport_at_most(hook, emulator):
    before = emulator.stats()["requests_total"]
    assert hook.get_user("nobody") is None  # GET /users/nobody 404, then GET /users?limit=1 to be sure
    assert emulator.stats()["requests_total"] - before == 2
    hook.upsert_users(users(1))
    before = emulator.stats()["requests_total"]
    assert hook.get_user("u-0") is not None  # found: nothing extra
    assert emulator.stats()["requests_total"] - before == 1


def test_errors_from_sync_methods_carry_no_event_loop_runtime_error(refusing, monkeypatch, emulator):
    with pytest.raises(SpotzeeConnectError) as info:
        SpotzeeHook().get_user("u-1")
    _no_event_loop_noise(info.value)
    with pytest.raises(SpotzeeConnectError) as info:
        SpotzeeHook().upsert_users(users(10))
    _no_event_loop_noise(info.value)
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps(
        {"conn_type": "spotzee", "host": emulator.base_url, "password": "sk_wrong"}))
    with pytest.raises(SpotzeeAPIError) as info:  # 401
        SpotzeeHook().track_events([{"name": "x", "external_id": "a"}])
    _no_event_loop_noise(info.value)
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", emulator.connection_json(max_retries=0))
    emulator.set_faults(error_rate=1.0)
    with pytest.raises(SpotzeeRetriesExhausted) as info:
        SpotzeeHook().get_user("u-1")
    _no_event_loop_noise(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None

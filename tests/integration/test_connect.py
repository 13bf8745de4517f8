"""Nothing listening: the hook says so within seconds (never after 50 batches × 9 attempts), names the
URL and never the key; a service that answered before and then blips still gets the full retries."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from airflow_provider_spotzee.exceptions import SpotzeeAPIError, SpotzeeConnectError, SpotzeeRetriesExhausted
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

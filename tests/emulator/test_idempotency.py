"""The idempotency state machine: replay, mismatch, in progress, key format, TTL, scope."""

from __future__ import annotations

import threading

import httpx

from airflow_provider_spotzee.testing import ApiKey, EmulatorConfig
from tests.emulator.helpers import assert_problem, assert_rate_headers

BODY = [{"external_id": "cust-1", "email": "jane@example.com"}]


def test_same_key_same_body_replays_the_original_response(client, emulator):
    first = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    emulator.advance_clock(5)
    again = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content  # byte for byte, updated_at included
    assert again.headers["content-type"] == "application/json"
    assert again.headers["original-request-id"] == first.headers["x-request-id"]
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert_rate_headers(again)
    assert emulator.contact("cust-1")["upserts"] == 1
    assert emulator.stats()["replays"] == 1


def test_replay_of_a_204(client, emulator):
    emulator.configure(async_delay_seconds=0)
    for i in range(3):
        r = client.patch("/users", json=BODY, headers={"Idempotency-Key": "patch-1"})
        assert r.status_code == 204 and r.content == b""
        assert (r.headers.get("idempotent-replayed") == "true") == (i > 0)
    assert emulator.ledger_summary()["upsert_applications"] == 1


def test_same_key_different_body_is_a_mismatch(client, emulator):
    client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "k1"})
    r = client.post("/users/batch", json=[{"external_id": "cust-2"}], headers={"Idempotency-Key": "k1"})
    assert_problem(r, 409, "idempotency_key_mismatch")
    # the same body on another endpoint is a different request too
    assert_problem(
        client.post("/events", json=BODY, headers={"Idempotency-Key": "k1"}), 409, "idempotency_key_mismatch"
    )
    assert emulator.ledger_summary()["contacts"] == 1


def test_concurrent_request_with_the_same_key_is_in_progress(client, emulator):
    emulator.set_faults(latency_ms=600)
    results: list[httpx.Response] = []

    def send():
        with httpx.Client(
            base_url=emulator.base_url, timeout=10, headers={"Authorization": f"Bearer {emulator.api_key}"}
        ) as c:
            results.append(c.post("/users/batch", json=BODY, headers={"Idempotency-Key": "slow"}))

    first = threading.Thread(target=send)
    first.start()
    import time

    time.sleep(0.2)
    second = threading.Thread(target=send)
    second.start()
    first.join()
    second.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409]
    conflict = next(r for r in results if r.status_code == 409)
    assert_problem(conflict, 409, "idempotency_in_progress")
    assert conflict.headers["retry-after"] == "1"
    emulator.set_faults(latency_ms=0)
    replay = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "slow"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert emulator.contact("cust-1")["upserts"] == 1


def test_invalid_keys(client, emulator):
    for key in ("", "k" * 256, "ключ".encode() * 64 + b"x"):
        r = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": key})
        assert_problem(r, 400, "idempotency_key_invalid")
    assert client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "k" * 255}).status_code == 200
    # length is counted in characters (UTF-8 keys are decoded first)
    assert (
        client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "ключ".encode() * 63}).status_code
        == 200
    )
    # ignored on reads
    assert client.get("/users", headers={"Idempotency-Key": ""}).status_code == 200


def test_key_is_forgotten_after_24_hours(client, emulator):
    client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "day-1"})
    emulator.advance_clock(24 * 3600 - 60)
    r = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "day-1"})
    assert r.headers.get("idempotent-replayed") == "true"
    emulator.advance_clock(61)
    r = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "day-1"})
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert emulator.contact("cust-1")["upserts"] == 2  # applied again: past 24 h it is a new request
    # and a different body under the old key is now simply new, not a mismatch
    emulator.advance_clock(24 * 3600 + 1)
    r = client.post("/users/batch", json=[{"external_id": "cust-9"}], headers={"Idempotency-Key": "day-1"})
    assert r.status_code == 200


def test_errors_are_not_stored(client, emulator):
    r = client.patch(
        "/users/ghost/subscriptions",
        json=[{"subscription_id": 1, "state": 1}],
        headers={"Idempotency-Key": "t1"},
    )
    assert_problem(r, 404, "resource_missing")
    client.post("/users/batch", json=[{"external_id": "ghost"}])
    r = client.patch(
        "/users/ghost/subscriptions",
        json=[{"subscription_id": 1, "state": 1}],
        headers={"Idempotency-Key": "t1"},
    )
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    # a 400 does not burn the key either
    assert client.post("/users/batch", content=b"[", headers={"Idempotency-Key": "t2"}).status_code == 400
    assert client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "t2"}).status_code == 200


def test_requests_without_a_key_are_applied_every_time(client, emulator):
    for _ in range(3):
        client.post("/users/batch", json=BODY)
    assert emulator.contact("cust-1")["upserts"] == 3


def test_keys_are_scoped_per_api_key(emulator, emulator_config):
    config = emulator_config.updated(api_keys=(*emulator_config.api_keys, ApiKey("sk_test_other")))
    emulator.reset(config)
    for key in (emulator.api_key, "sk_test_other"):
        r = httpx.post(
            emulator.base_url + "/users/batch",
            json=BODY,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "shared"},
        )
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert emulator.contact("cust-1")["upserts"] == 2
    assert isinstance(config, EmulatorConfig)


def test_a_client_that_gives_up_does_not_leave_the_key_stuck(client, emulator):
    emulator.set_faults(latency_ms=400)
    try:
        client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "gone"}, timeout=0.1)
    except httpx.TimeoutException:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected a client timeout")
    r = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "gone"})
    assert_problem(r, 409, "idempotency_in_progress")  # the first one is still being processed
    import time

    time.sleep(0.5)
    emulator.set_faults(latency_ms=0)
    r = client.post("/users/batch", json=BODY, headers={"Idempotency-Key": "gone"})
    assert r.status_code == 200 and r.headers["idempotent-replayed"] == "true"
    assert emulator.contact("cust-1")["upserts"] == 1
    assert emulator.stats()["requests"]["POST /users/batch"]["200"] == 2

"""Fault injection: seeded determinism, 5xx mix, drop after apply, forced in-progress, item errors, latency."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.emulator.helpers import assert_problem, assert_rate_headers


def _statuses(client: httpx.Client, n: int) -> list[int]:
    return [client.post("/users/batch", json=[{"external_id": f"c{i}"}]).status_code for i in range(n)]


def test_same_seed_gives_the_same_fault_sequence(client, emulator):
    emulator.configure(rate_limits=False)
    emulator.set_faults(error_rate=0.3, item_error_rate=0.2, seed=1234)
    first = _statuses(client, 40)
    emulator.reset()
    emulator.configure(rate_limits=False)
    emulator.set_faults(error_rate=0.3, item_error_rate=0.2, seed=1234)
    second = _statuses(client, 40)
    assert first == second
    assert {500, 503, 200} <= set(first)
    emulator.reset()
    emulator.configure(rate_limits=False)
    emulator.set_faults(error_rate=0.3, item_error_rate=0.2, seed=99)
    assert _statuses(client, 40) != first


def test_injected_5xx_are_problem_json_and_apply_nothing(client, emulator):
    emulator.set_faults(error_rate=1.0)
    for _ in range(10):
        r = client.post("/users/batch", json=[{"external_id": "c"}], headers={"Idempotency-Key": "k"})
        code = {500: "internal_error", 503: "service_unavailable"}[r.status_code]
        assert_problem(r, r.status_code, code)
        assert_rate_headers(r)
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
    assert emulator.ledger_summary()["contacts"] == 0
    faults = emulator.stats()["faults"]
    assert faults["error_500"] + faults["error_503"] == 10
    emulator.set_faults(error_rate=0)
    # the key was never claimed: the next attempt is applied normally
    r = client.post("/users/batch", json=[{"external_id": "c"}], headers={"Idempotency-Key": "k"})
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/users/batch", [{"external_id": "cust-1"}]),
        ("PATCH", "/users", [{"external_id": "cust-1"}]),
        (
            "POST",
            "/events",
            [{"name": "purchase", "external_id": "cust-1", "created_at": "2026-01-01T00:00:00Z"}],
        ),
    ],
)
def test_drop_after_apply_then_retry_replays(client, emulator, method, path, body):
    emulator.configure(async_delay_seconds=0)
    emulator.set_faults(drop_after_apply_rate=1.0)
    with pytest.raises(httpx.TransportError) as info:
        client.request(method, path, json=body, headers={"Idempotency-Key": "drop-1"})
    assert isinstance(info.value, (httpx.RemoteProtocolError, httpx.ReadError))
    # the write was applied exactly once
    summary = emulator.ledger_summary()
    assert summary["contacts"] == 1
    applied_before = (summary["upsert_applications"], summary["events_applied"])
    assert sum(applied_before) == 1
    emulator.set_faults(drop_after_apply_rate=0)
    r = client.request(method, path, json=body, headers={"Idempotency-Key": "drop-1"})
    assert r.status_code in (200, 204) and r.headers["idempotent-replayed"] == "true"
    summary = emulator.ledger_summary()
    assert (summary["upsert_applications"], summary["events_applied"]) == applied_before
    stats = emulator.stats()
    assert stats["faults"]["drop_after_apply"] == 1
    assert stats["requests"][f"{method} {path}"]["dropped"] == 1


def test_drop_without_key_means_a_retry_applies_twice(client, emulator):
    emulator.set_faults(drop_after_apply_rate=1.0)
    with pytest.raises(httpx.TransportError):
        client.post("/users/batch", json=[{"external_id": "c"}])
    emulator.set_faults(drop_after_apply_rate=0)
    client.post("/users/batch", json=[{"external_id": "c"}])
    assert emulator.contact("c")["upserts"] == 2
    assert emulator.ledger_summary()["contacts_upserted_more_than_once"] == 1


def test_forced_in_progress(client, emulator):
    emulator.set_faults(in_progress_rate=1.0)
    r = client.post("/users/batch", json=[{"external_id": "c"}], headers={"Idempotency-Key": "k"})
    assert_problem(r, 409, "idempotency_in_progress")
    assert r.headers["retry-after"] == "1"
    # only requests carrying a key can be "in progress"
    assert client.post("/users/batch", json=[{"external_id": "c"}]).status_code == 200
    assert emulator.stats()["faults"]["in_progress_409"] == 1


def test_item_errors_are_transient_and_not_applied(client, emulator):
    emulator.set_faults(item_error_rate=0.5, seed=7)
    out = client.post("/users/batch", json=[{"external_id": f"c{i}"} for i in range(100)]).json()
    failed = [x for x in out["results"] if "error" in x]
    assert 20 < len(failed) < 80 and out["failed"] == len(failed)
    assert {x["error"]["code"] for x in failed} == {"internal_error"}
    assert emulator.ledger_summary()["contacts"] == out["succeeded"]
    subs = client.post(
        "/subscriptions/batch",
        json=[
            {"subscription_id": 1, "state": 1, "external_id": x["external_id"]}
            for x in out["results"]
            if "contact" in x
        ],
    ).json()
    assert subs["failed"] > 0 and emulator.stats()["faults"]["item_error"] == len(failed) + subs["failed"]


def test_latency_does_not_block_the_loop(emulator):
    emulator.set_faults(latency_ms=400, latency_jitter_ms=50)

    async def run() -> float:
        async with httpx.AsyncClient(
            base_url=emulator.base_url, headers={"Authorization": f"Bearer {emulator.api_key}"}
        ) as c:
            start = time.perf_counter()
            rs = await asyncio.gather(
                *(c.post("/users/batch", json=[{"external_id": f"c{i}"}]) for i in range(20))
            )
            assert {r.status_code for r in rs} == {200}
            return time.perf_counter() - start

    elapsed = asyncio.run(run())
    assert 0.4 <= elapsed < 2.0  # 20 requests x 400 ms, served concurrently
    view = emulator.faults()
    assert view["latency_ms"] == 400 and view["latency_jitter_ms"] == 50


def test_fault_settings_are_validated(emulator):
    with pytest.raises(ValueError):
        emulator.set_faults(error_rate=2)
    with pytest.raises(ValueError):
        emulator.set_faults(no_such_fault=1)
    with pytest.raises(ValueError):
        emulator.configure(plan="gold")
    assert emulator.set_faults(error_rate=0.5)["error_rate"] == 0.5
    emulator.reset()
    assert emulator.faults()["error_rate"] == 0

"""Every client-API response carries X-RateLimit-Limit/Remaining/Reset/Tier (api-facts: "every response"),
whatever its status: 2xx, replays, 400, 401, 403, 404, 405, 409, 429, 500 and 503."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_spotzee.testing import Plan
from tests.emulator.helpers import RATE_HEADERS, assert_problem, assert_rate_headers

ONE_USER = [{"external_id": "cust-1"}]


def _check(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, response.text
    assert_rate_headers(response)
    names = [name.decode().lower() for name, _ in response.headers.raw]
    assert names[names.index("x-ratelimit-limit") : names.index("x-ratelimit-limit") + 4] == list(RATE_HEADERS)
    return response


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [("GET", "/users", None), ("GET", "/users/x", "Bearer sk_wrong"), ("POST", "/users/batch", None),
     ("PATCH", "/users", "Basic c2tfdGVzdF9lbXVsYXRvcjo="), ("GET", "/nowhere", None)],
)
def test_401_carries_the_headers_of_no_ones_budget(emulator, method, path, auth):
    """No key, no budget: the emulator's plan, nothing spent (Remaining = Limit, Reset 0)."""
    headers = {"Authorization": auth} if auth else {}
    r = httpx.request(method, emulator.base_url + path, headers=headers, json=ONE_USER, trust_env=False)
    _check(r, 401)
    assert_problem(r, 401, "unauthorized")
    limit = "2000" if method == "GET" else "1000"  # starter: 10 s x 200 reads/s, 10 s x 100 writes/s
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == (limit, limit)
    assert (r.headers["x-ratelimit-reset"], r.headers["x-ratelimit-tier"]) == ("0", "starter")


def test_401_spends_nobodys_budget(client, emulator):
    for _ in range(3):
        _check(httpx.get(emulator.base_url + "/users", trust_env=False), 401)
    assert client.get("/users").headers["x-ratelimit-remaining"] == "1999"


def test_401_follows_the_configured_plan(emulator):
    emulator.configure(plan="enterprise")
    r = _check(httpx.post(emulator.base_url + "/events", json=ONE_USER, trust_env=False), 401)
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-tier"]) == ("25000", "enterprise")


def test_2xx_and_replays(client):
    _check(client.post("/users/batch", json=ONE_USER), 200)
    _check(client.patch("/users", json=ONE_USER), 204)
    _check(client.post("/events", json=[{"name": "e", "external_id": "cust-1"}]), 204)
    _check(client.get("/users"), 200)
    first = _check(client.post("/users/batch", json=ONE_USER, headers={"Idempotency-Key": "k1"}), 200)
    replay = _check(client.post("/users/batch", json=ONE_USER, headers={"Idempotency-Key": "k1"}), 200)
    assert replay.headers["idempotent-replayed"] == "true"
    assert int(replay.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-remaining"]) - 1


def test_400s(client, emulator):
    _check(client.get("/users", headers={"Spotzee-Version": "latest"}), 400)
    _check(client.get("/users", headers={"Spotzee-Version": "2001-01-01"}), 400)
    _check(client.post("/users/batch", json=ONE_USER, headers={"Idempotency-Key": "k" * 256}), 400)
    _check(client.post("/users/batch", content=b"{not json"), 400)
    _check(client.post("/users/batch", content=b""), 400)
    _check(client.post("/users/batch", json=[{"external_id": f"c{i}"} for i in range(101)]), 400)
    _check(client.get("/users", params={"limit": "0"}), 400)
    _check(client.patch("/users/cust-1/subscriptions", json=[{"state": 1}]), 400)


def test_403(emulator):
    headers = {"Authorization": f"Bearer {emulator.readonly_api_key}"}
    _check(httpx.post(emulator.base_url + "/users/batch", json=ONE_USER, headers=headers, trust_env=False), 403)


def test_404_and_405(client):
    _check(client.get("/nowhere"), 404)
    _check(client.get("/users/nobody"), 404)
    _check(client.patch("/users/nobody/subscriptions", json=[{"subscription_id": 1, "state": 1}]), 404)
    _check(client.delete("/users"), 405)


def test_409s(client, emulator):
    _check(client.post("/users/batch", json=ONE_USER, headers={"Idempotency-Key": "k"}), 200)
    _check(client.post("/users/batch", json=[{"external_id": "other"}], headers={"Idempotency-Key": "k"}), 409)
    emulator.set_faults(in_progress_rate=1.0)
    _check(client.post("/events", json=[{"name": "e", "external_id": "c"}], headers={"Idempotency-Key": "j"}), 409)


def test_429s(client, emulator, emulator_config):
    emulator.set_faults(storm_seconds=30)
    _check(client.post("/events", json=[{"name": "e", "external_id": "c"}]), 429)
    plans = {**emulator_config.plans, "tiny": Plan(read=2, write=1, burst=2)}
    emulator.reset(emulator_config.updated(plan="tiny", plans=plans))
    statuses = []
    while 429 not in statuses:  # burst 4 in 1 s, or at the latest 20 reads in the 10 s window
        r = client.get("/users")
        statuses.append(_check(r, r.status_code).status_code)
        assert len(statuses) <= 21
    assert set(statuses) == {200, 429}


def test_5xx(client, emulator):
    emulator.set_faults(error_rate=1.0, seed=1)
    seen: set[int] = set()
    for _ in range(40):
        r = client.get("/users")
        assert r.status_code in (500, 503)
        _check(r, r.status_code)
        seen.add(r.status_code)
    assert seen >= {500, 503}

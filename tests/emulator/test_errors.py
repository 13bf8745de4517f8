"""Authentication, versioning, request-body and routing errors: all problem+json, never a crash."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.emulator.helpers import assert_problem, assert_rate_headers

WRITES = [
    ("PATCH", "/users"),
    ("POST", "/users/batch"),
    ("POST", "/events"),
    ("POST", "/subscriptions/batch"),
    ("PATCH", "/users/x/subscriptions"),
]


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer sk_wrong", "Basic c2tfdGVzdF9lbXVsYXRvcjo=", "Bearer", "bearer  x", "sk_test_emulator"],
)
def test_missing_or_unknown_key_is_401(emulator, auth):
    headers = {"Authorization": auth} if auth else {}
    r = httpx.get(emulator.base_url + "/users", headers=headers)
    body = assert_problem(r, 401, "unauthorized")
    assert "sk_" not in r.text and "sk_" not in json.dumps(dict(r.headers))
    assert body["message"]
    assert r.headers["spotzee-version"] == "2026-04-28"


def test_readonly_key_can_read_but_not_write(emulator):
    headers = {"Authorization": f"Bearer {emulator.readonly_api_key}"}
    assert httpx.get(emulator.base_url + "/users", headers=headers).status_code == 200
    for method, path in WRITES:
        r = httpx.request(method, emulator.base_url + path, headers=headers, json=[{"external_id": "x"}])
        assert_problem(r, 403, "forbidden")
        assert_rate_headers(r)
    assert emulator.ledger_summary()["contacts"] == 0


def test_version_header(client):
    r = client.get("/users")
    assert r.headers["spotzee-version"] == "2026-04-28"
    for version in ("2025-09-15", "2026-01-20", "2026-04-28"):
        r = client.get("/users", headers={"Spotzee-Version": version})
        assert r.status_code == 200 and r.headers["spotzee-version"] == version
    r = client.get("/users", headers={"Spotzee-Version": "2024-01-01"})
    assert_problem(r, 400, "version_unsupported")
    assert r.headers["spotzee-version"] == "2026-04-28"
    assert_rate_headers(r)
    for bad in ("latest", "2026-4-28", "2026-02-30", "20260428", ""):
        assert_problem(
            client.get("/users", headers={"Spotzee-Version": bad}), 400, "parameter_invalid_format"
        )


@pytest.mark.parametrize("method,path", WRITES)
@pytest.mark.parametrize(
    "content,code",
    [
        (b"", "parameter_missing"),
        (b'{"external_id": "x"}', "parameter_invalid_format"),
        (b"[]", "parameter_invalid_format"),
        (json.dumps([{"external_id": f"c{i}"} for i in range(101)]).encode(), "parameter_invalid_format"),
        (b'[{"external_id": "x"', "parameter_invalid_format"),
        (b'[{"external_id": "\xff\xfe"}]', "parameter_invalid_format"),
        ('[{"external_id": "x"}]'.encode("utf-16"), "parameter_invalid_format"),
        (b"[NaN]", "parameter_invalid_format"),
        (b"null", "parameter_invalid_format"),
        (b"[" * 100_000 + b"]" * 100_000, "parameter_invalid_format"),
    ],
)
def test_whole_request_body_errors(client, emulator, method, path, content, code):
    r = client.request(method, path, content=content, headers={"Content-Type": "application/json"})
    assert_problem(r, 400, code)
    assert_rate_headers(r)


def test_hundred_items_is_fine(client, emulator):
    r = client.post("/users/batch", json=[{"external_id": f"c{i}"} for i in range(100)])
    assert r.status_code == 200 and r.json()["succeeded"] == 100


def test_oversized_body_is_rejected(client, emulator):
    big = json.dumps([{"external_id": "x", "data": {"blob": "x" * (11 * 1024 * 1024)}}]).encode()
    r = client.post("/users/batch", content=big)
    assert_problem(r, 400, "parameter_invalid_format")


def test_unknown_route_and_wrong_method(client):
    for path in ("/nope", "/users/a/b/c", "/subscriptions", "/"):
        assert_problem(client.get(path), 404, "resource_missing")
    r = client.delete("/users")
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, PATCH"
    assert_problem(client.get("/events"), 405, "method_not_allowed")
    assert_problem(client.put("/users/batch", json=[]), 405, "method_not_allowed")
    assert_problem(client.get("/subscriptions/batch"), 405, "method_not_allowed")
    assert_rate_headers(client.get("/nope"))
    r = httpx.get(client.base_url.copy_with(path="/api/clientx"))
    assert r.status_code == 404


def test_client_type_is_counted(client, emulator):
    client.get("/users", headers={"x-spotzee-client-type": "sdk-python"})
    client.get("/users", headers={"x-spotzee-client-type": "sdk-python"})
    client.get("/users")
    assert emulator.stats()["client_types"] == {"sdk-python": 2, "(none)": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
item_like = st.fixed_dictionaries(
    {},
    optional={
        k: json_values
        for k in (
            "external_id",
            "anonymous_id",
            "email",
            "phone",
            "timezone",
            "locale",
            "data",
            "name",
            "user",
            "created_at",
            "subscription_id",
            "state",
        )
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.sampled_from(WRITES),
    body=st.one_of(
        st.binary(max_size=64),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(item_like | json_values, min_size=1, max_size=5).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_fuzzed_bodies_never_crash(emulator_session, body, endpoint):
    method, path = endpoint
    r = httpx.request(
        method,
        emulator_session.base_url + path,
        content=body,
        headers={"Authorization": f"Bearer {emulator_session.api_key}"},
    )
    assert r.status_code in (200, 204, 400, 404, 429), r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"]
    elif r.status_code == 200:
        out = r.json()
        assert "results" in out or "id" in out

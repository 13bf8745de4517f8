"""Small helpers for the emulator conformance tests."""

from __future__ import annotations

from typing import Any

import httpx

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-tier")
#: A contact's members, in the order the emulator writes them.
CONTACT_FIELDS = ("id", "project_id", "external_id", "created_at", "updated_at", "anonymous_id", "email", "phone",
                  "timezone", "locale", "data", "has_push_device", "devices", "subscriptions")


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    """The response is a problem+json error with the given status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == "error"
    assert body["code"] == code
    assert body["type"] == f"https://docs.spotzee.com/errors/{code}"
    assert body["title"] and body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def assert_rate_headers(response: httpx.Response) -> None:
    for name in RATE_HEADERS:
        assert name in response.headers, (name, response.status_code)
    assert int(response.headers["x-ratelimit-reset"]) >= 0
    assert int(response.headers["x-ratelimit-remaining"]) >= 0


def users(n: int, prefix: str = "cust-", **fields: Any) -> list[dict]:
    return [{"external_id": f"{prefix}{i}", **fields} for i in range(n)]

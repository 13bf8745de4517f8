"""The transport's two pure decisions, as tables: classify(outcome) and backoff(attempt, retry_after)."""

from __future__ import annotations

import email.utils
import json

import httpx
import pytest

from airflow_provider_spotzee.transport import (
    BASE_BACKOFF_SECONDS,
    ApiResponse,
    backoff,
    classify,
    connect_failure,
    describe,
)

NOW = 1_800_000_000.0
REQUEST = httpx.Request("POST", "http://127.0.0.1/api/client/users/batch")


def response(status: int, code: str | None = None, **headers: str) -> ApiResponse:
    body = json.dumps({"status": "error", "code": code}).encode() if code else b""
    return ApiResponse(status, httpx.Headers({k.replace("_", "-"): v for k, v in headers.items()}), body)


@pytest.mark.parametrize(
    ("outcome", "retry", "reason", "code", "retry_after"),
    [
        (response(200), False, "ok", None, None),
        (response(204), False, "ok", None, None),
        (httpx.ConnectError("refused", request=REQUEST), True, "connect_error", "transport_error", None),
        (httpx.ConnectTimeout("slow", request=REQUEST), True, "connect_error", "timeout", None),
        (httpx.ReadTimeout("slow", request=REQUEST), True, "timeout", "timeout", None),
        (httpx.WriteTimeout("slow", request=REQUEST), True, "timeout", "timeout", None),
        (httpx.PoolTimeout("busy", request=REQUEST), True, "timeout", "timeout", None),
        (httpx.ReadError("reset", request=REQUEST), True, "transport_error", "transport_error", None),
        (httpx.RemoteProtocolError("eof", request=REQUEST), True, "transport_error", "transport_error", None),
        (ValueError("a bug"), False, "exception", "ValueError", None),
        (response(500, "internal_error"), True, "server_error", "internal_error", None),
        (response(502), True, "server_error", "http_502", None),
        (response(503, "service_unavailable"), True, "server_error", "service_unavailable", None),
        (response(504), True, "server_error", "http_504", None),
        (response(599), True, "server_error", "http_599", None),
        (response(408), True, "request_timeout", "http_408", None),
        (response(429, "rate_limited", retry_after="3"), True, "rate_limited", "rate_limited", 3.0),
        (response(429, "rate_limited"), True, "rate_limited", "rate_limited", 1.0),
        (response(429, "rate_limited", retry_after="soon"), True, "rate_limited", "rate_limited", 1.0),
        (response(429, "rate_limited", retry_after="-5"), True, "rate_limited", "rate_limited", 0.0),
        (response(429, "rate_limited", retry_after=email.utils.formatdate(NOW + 7, usegmt=True)),
         True, "rate_limited", "rate_limited", 7.0),
        (response(409, "idempotency_in_progress", retry_after="2"), True, "idempotency_in_progress",
         "idempotency_in_progress", 2.0),
        (response(409, "idempotency_in_progress"), True, "idempotency_in_progress", "idempotency_in_progress", 1.0),
        (response(409, "idempotency_key_mismatch"), False, "client_error", "idempotency_key_mismatch", None),
        (response(400, "parameter_invalid_format"), False, "client_error", "parameter_invalid_format", None),
        (response(404, "resource_missing"), False, "client_error", "resource_missing", None),
        (response(418, "teapot"), False, "client_error", "teapot", None),
        (response(422), False, "client_error", "http_422", None),
        (response(401, "unauthorized"), False, "unauthorized", "unauthorized", None),
        (response(403, "forbidden"), False, "unauthorized", "forbidden", None),
        (response(400, "version_unsupported"), False, "version_unsupported", "version_unsupported", None),
        (response(302), False, "redirect", "http_302", None),
        (response(307), False, "redirect", "http_307", None),
    ],
)
def test_classify(outcome, retry, reason, code, retry_after):
    decision = classify(outcome, now=NOW)
    assert (decision.retry, decision.reason, decision.code) == (retry, reason, code)
    assert decision.retry_after == retry_after
    assert decision.status == (outcome.status if isinstance(outcome, ApiResponse) else None)
    assert decision.fatal == (reason in ("unauthorized", "version_unsupported", "redirect"))
    assert decision.cannot_connect == (reason == "connect_error")


def test_classify_never_retries_a_4xx_other_than_408_429_and_409_in_progress():
    for status in range(400, 500):
        for code in (None, "something"):
            decision = classify(response(status, code))
            assert decision.retry == (status in (408, 429)), (status, code)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "repeat", "max_wait", "jitter", "expected"),
    [
        # no server hint: 0.25 s doubling per attempt, capped, jitter on top
        (1, None, 0, 60.0, 0.0, BASE_BACKOFF_SECONDS),
        (2, None, 0, 60.0, 0.0, 0.5),
        (3, None, 0, 60.0, 0.0, 1.0),
        (6, None, 0, 60.0, 0.0, 8.0),
        (12, None, 0, 60.0, 0.0, 60.0),
        (40, None, 0, 5.0, 0.0, 5.0),
        (1, None, 0, 60.0, 0.5, 0.75),
        (12, None, 0, 60.0, 0.25, 60.25),  # the cap applies before the jitter
        # a server hint is honoured whatever the attempt number; consecutive repeats double it
        (1, 3.0, 1, 60.0, 0.0, 3.0),
        (5, 3.0, 1, 60.0, 0.0, 3.0),
        (2, 3.0, 2, 60.0, 0.0, 6.0),
        (3, 3.0, 3, 60.0, 0.0, 12.0),
        (9, 3.0, 6, 60.0, 0.0, 60.0),
        (1, 0.0, 1, 60.0, 0.1, 0.1),
        (1, 999_999_999.0, 1, 0.3, 0.5, 0.8),
        (1, 1.0, 1, 60.0, 0.5, 1.5),
        (1, 2.0, 0, 60.0, 0.0, 2.0),  # repeat 0 counts as the first
    ],
)
def test_backoff(attempt, retry_after, repeat, max_wait, jitter, expected):
    assert backoff(attempt, retry_after, repeat=repeat, max_wait=max_wait, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        (response(503, "service_unavailable"), "POST /users/batch: HTTP 503 service_unavailable"),
        (response(429), "POST /users/batch: HTTP 429 http_429"),
        (httpx.ReadTimeout("slow", request=REQUEST), "POST /users/batch timed out (ReadTimeout)"),
        (httpx.ConnectError("refused", request=REQUEST), "POST /users/batch failed: ConnectError"),
    ],
)
def test_describe_names_the_attempt_and_nothing_else(outcome, text):
    assert describe("POST", "/users/batch", outcome) == text


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (_chained(httpx.ConnectError("All connection attempts failed", request=REQUEST),
                  ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")), "Connection refused"),
        (_chained(httpx.ConnectError("x", request=REQUEST), OSError(113, "No route to host")), "No route to host"),
        (httpx.ConnectTimeout("slow", request=REQUEST), "the connection timed out"),
        (httpx.ConnectError("mystery", request=REQUEST), "ConnectError"),
    ],
)
def test_connect_failure_in_a_few_words(exc, text):
    assert connect_failure(exc) == text

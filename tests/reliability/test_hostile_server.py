"""The hook never trusts a server blindly: a real HTTP server on loopback answers with garbage.

Each case: the batch fails safely (dead-lettered with its payloads, or rejected with the server's code),
nothing unknown is counted as sent, and the result still balances.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_spotzee.exceptions import SpotzeeConfigError
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook

KEY = "sk_test_hostile_SECRET"


class Hostile:
    """A loopback HTTP server whose every answer is set by the test: (status, headers, body bytes)."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, str], bytes] = (200, {}, b"")
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers, payload = outer.answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/client"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(monkeypatch):
    server = Hostile()
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps({
        "conn_type": "spotzee", "host": server.url, "password": KEY, "extra": {"max_retries": 2, "max_wait": 0.3}}))
    yield server
    server.close()


USERS = [{"external_id": f"h-{i}", "email": f"h{i}@example.com"} for i in range(3)]


def _results(n: int, **overrides) -> bytes:
    results = [{"index": i, "external_id": f"h-{i}", "anonymous_id": None, "contact": {"id": i + 1}} for i in range(n)]
    return json.dumps({"results": results, "succeeded": n, "failed": 0, **overrides}).encode()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>gateway says hi</html>", "not JSON"),
        (_results(3)[:-7], "truncated JSON"),
        (_results(2), "fewer results than items"),
        (json.dumps({"results": [{"index": 2 - i, "external_id": f"h-{2 - i}", "contact": {}} for i in range(3)]}).encode(),
         "indexes out of order"),
        (json.dumps({"results": [{"index": i, "external_id": "someone-else", "contact": {}} for i in range(3)]}).encode(),
         "results for other contacts"),
        (json.dumps({"results": [{"index": i} for i in range(3)]}).encode(), "no outcome at all"),
        (b"[]", "an array instead of an object"),
    ],
)
def test_unusable_per_item_answers_dead_letter_the_batch(hostile, body, why):
    hostile.answer = (200, {"Content-Type": "application/json"}, body)
    result = SpotzeeHook().upsert_users(USERS)
    assert result.succeeded == 0 and result.dead_lettered == 3 and result.balanced, why
    assert {f.code for f in result.failures} == {"response_invalid"}
    assert [result.payloads[i]["external_id"] for i in range(3)] == ["h-0", "h-1", "h-2"]


def test_unknown_item_error_codes_are_permanent_rejections(hostile):
    results = [{"index": i, "external_id": f"h-{i}", "error": {"code": "brand_new_code", "message": "?"}} for i in range(3)]
    hostile.answer = (200, {}, json.dumps({"results": results, "succeeded": 0, "failed": 3}).encode())
    result = SpotzeeHook().upsert_users(USERS)
    assert result.rejected == 3 and {f.code for f in result.failures} == {"brand_new_code"}
    assert len(hostile.requests) == 1  # not retried


def test_200_instead_of_204_is_accepted_for_async_endpoints(hostile):
    hostile.answer = (200, {}, b'{"queued": true}')
    result = SpotzeeHook().track_events([{"name": "x", "external_id": "a"}])
    assert result.succeeded == 1


@pytest.mark.parametrize("retry_after", ["999999999", "-5", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "nan"])
def test_odd_retry_after_values_are_capped_and_never_hang(hostile, retry_after):
    hostile.answer = (429, {"Retry-After": retry_after, "X-RateLimit-Remaining": "-3", "X-RateLimit-Reset": "x"},
                      b'{"code": "rate_limited"}')
    result = SpotzeeHook().upsert_users(USERS)  # max_retries=2, max_wait=0.3: bounded whatever the header says
    assert result.dead_lettered == 3 and result.throttled == 3 and {f.code for f in result.failures} == {"rate_limited"}


def test_unknown_whole_request_4xx_is_rejected_not_retried(hostile):
    hostile.answer = (418, {"Content-Type": "application/problem+json"}, b'{"code": "teapot", "request_id": "r1"}')
    result = SpotzeeHook().upsert_users(USERS)
    assert result.rejected == 3 and {f.code for f in result.failures} == {"teapot"} and len(hostile.requests) == 1


def test_redirects_are_refused_and_the_key_never_follows(hostile):
    elsewhere = Hostile()
    try:
        hostile.answer = (302, {"Location": elsewhere.url + "/users/batch"}, b"")
        with pytest.raises(SpotzeeConfigError) as info:
            SpotzeeHook().upsert_users(USERS)
        assert KEY not in str(info.value)
        assert elsewhere.requests == []  # the redirect target never saw a request, let alone the key
    finally:
        elsewhere.close()


def test_what_goes_over_the_wire(hostile):
    hostile.answer = (200, {}, _results(3))
    SpotzeeHook().upsert_users(USERS)
    sent = hostile.requests[0]
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}" and headers["spotzee-version"] == "2026-04-28"
    assert headers["idempotency-key"].startswith("spz1-") and headers["x-spotzee-client-type"] == "sdk-python"
    assert json.loads(sent["body"])[0] == {"external_id": "h-0", "email": "h0@example.com"}

"""The HTTP transport: an httpx async client with explicit timeouts, pacing and tenacity retries.

One :class:`SpotzeeTransport` per send. Every request goes through :meth:`SpotzeeTransport.request`,
which waits for the pacer, sends, classifies the answer and retries what is safe to retry:

- transport errors and timeouts, 5xx, 429 ``rate_limited`` and 409 ``idempotency_in_progress`` are
  retried with the same bytes and the same ``Idempotency-Key``;
- 429 and 409 honour ``Retry-After`` (seconds or HTTP-date) plus 0–500 ms jitter, doubling on
  consecutive repeats, capped at ``max_wait``; everything else backs off exponentially with jitter;
- 401/403 and 400 ``version_unsupported`` raise :class:`SpotzeeAuthError` at once, a redirect or a
  404 for the endpoint itself :class:`SpotzeeConfigError` (the base URL is wrong);
  any other 4xx is returned to the caller (never retried).

Nothing here logs a header, a body or the key.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from airflow_provider_spotzee.config import CLIENT_TYPE, ClientConfig
from airflow_provider_spotzee.exceptions import SpotzeeAPIError, SpotzeeAuthError, SpotzeeConfigError
from airflow_provider_spotzee.pacing import Pacer

log = logging.getLogger(__name__)

USER_AGENT = "airflow-provider-spotzee/0.1"
#: Status codes that are retried (with the same idempotency key).
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
JITTER_SECONDS = 0.5


class RetryableError(Exception):
    """A failed attempt that is safe to repeat. ``retry_after`` is the server's hint in seconds."""

    def __init__(self, code: str, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


@dataclass
class ApiResponse:
    status: int
    headers: httpx.Headers
    body: bytes
    replayed: bool = False

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return _problem(self.body).get("code") or f"http_{self.status}"

    @property
    def request_id(self) -> str | None:
        return _problem(self.body).get("request_id") or self.headers.get("x-request-id")


def _problem(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (int/float) or as an HTTP-date. Garbage and negatives give ``None``/0."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    replayed: int = 0


@dataclass
class _Attempt:
    """Per-request retry bookkeeping: consecutive server-directed waits double."""

    server_waits: int = 0
    last: RetryableError | None = field(default=None)


class SpotzeeTransport:
    """Async HTTP access to one Spotzee project. Use as ``async with SpotzeeTransport(config) as t``."""

    def __init__(self, config: ClientConfig, *, counters: Counters | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.counters = counters or Counters()
        self._rng = rng or random.Random()
        self.write_pacer = Pacer(config.requests_per_second * 0.98, fair_share=config.fair_share)
        self.read_pacer = Pacer(config.read_requests_per_second * 0.98)
        headers = {
            "Authorization": f"Bearer {config.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "x-spotzee-client-type": CLIENT_TYPE,
        }
        if config.api_version:
            headers["Spotzee-Version"] = config.api_version
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
            limits=httpx.Limits(max_connections=config.max_in_flight + 4,
                                max_keepalive_connections=config.max_in_flight + 4),
            follow_redirects=False,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE, as users of httpx expect
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ----------------------------------------------------------------------------------------- request

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        idempotency_key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> ApiResponse:
        """Send with retries. Returns any 2xx or non-retryable 4xx; raises auth/config errors and
        :class:`RetryableError` (the last one) when retries are exhausted."""
        write = method.upper() != "GET"
        pacer = self.write_pacer if write else self.read_pacer
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        attempt = _Attempt()

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=lambda state: self._wait(state, attempt),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                await pacer.acquire()
                return await self._once(method, path, body, headers, params, pacer, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None,
                    params: dict[str, Any] | None, pacer: Pacer, attempt: _Attempt) -> ApiResponse:
        self.counters.requests += 1
        try:
            raw = await self._client.request(method, path, content=body, headers=headers, params=params)
        except httpx.TimeoutException as exc:
            pacer.answered()
            attempt.last = RetryableError("timeout", f"{method} {path} timed out ({type(exc).__name__})")
            raise attempt.last from None
        except httpx.TransportError as exc:
            pacer.answered()
            attempt.last = RetryableError("transport_error", f"{method} {path} failed: {type(exc).__name__}")
            raise attempt.last from None
        response = ApiResponse(raw.status_code, raw.headers, raw.content,
                               replayed=raw.headers.get("idempotent-replayed", "").lower() == "true")
        pacer.observe(raw.headers, raw.status_code)
        status = raw.status_code
        if 200 <= status < 300:
            self.counters.replayed += response.replayed
            return response
        code = response.error_code
        if status == 429 or (status == 409 and code == "idempotency_in_progress"):
            if status == 429:
                self.counters.throttled += 1
            hint = parse_retry_after(raw.headers.get("retry-after"))
            if status == 429:
                pacer.pause(min(hint if hint is not None else 1.0, self.config.max_wait))
            attempt.last = RetryableError(code, f"{method} {path}: HTTP {status} {code}", status=status,
                                          retry_after=hint if hint is not None else 1.0)
            raise attempt.last
        if status in RETRYABLE_STATUS or status >= 500:
            attempt.last = RetryableError(code, f"{method} {path}: HTTP {status} {code}", status=status)
            raise attempt.last
        if status in (401, 403):
            raise SpotzeeAuthError(
                "Spotzee refused the API key: check the connection's password holds a valid sk_… key for "
                "this project" + (" with write permission" if status == 403 else ""),
                status=status, code=code, request_id=response.request_id)
        if code == "version_unsupported":
            raise SpotzeeAuthError(
                f"Spotzee does not support API version {self.config.api_version!r}: fix the connection's "
                "'api_version' extra (YYYY-MM-DD), or remove it to use the current version",
                status=status, code=code, request_id=response.request_id)
        if 300 <= status < 400:
            raise SpotzeeConfigError(
                f"Spotzee answered {method} {path} with a redirect (HTTP {status}); redirects are not "
                "followed so the key is never sent elsewhere: set the connection's host to the final base URL")
        return response

    def _wait(self, state: RetryCallState, attempt: _Attempt) -> float:
        error = attempt.last
        jitter = self._rng.uniform(0, JITTER_SECONDS)
        if error is not None and error.retry_after is not None:
            attempt.server_waits += 1
            base = error.retry_after * (2 ** (attempt.server_waits - 1))
        else:
            attempt.server_waits = 0
            base = 0.25 * (2 ** (state.attempt_number - 1))
        return min(self.config.max_wait, base) + jitter

    def _count_retry(self, state: RetryCallState) -> None:
        self.counters.retries += 1
        if self.counters.retries in (1, 10, 100) or self.counters.retries % 1000 == 0:
            error = state.outcome.exception() if state.outcome else None
            log.info("Spotzee: retrying (%d retries so far; last: %s)", self.counters.retries,
                     getattr(error, "code", type(error).__name__))


def api_error(response: ApiResponse, what: str) -> SpotzeeAPIError:
    return SpotzeeAPIError(what, status=response.status, code=response.error_code,
                           request_id=response.request_id)

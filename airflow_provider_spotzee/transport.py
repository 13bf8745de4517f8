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

import asyncio
import bisect
import email.utils
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from airflow_provider_spotzee.api_facts import RATE_WINDOW_SECONDS
from airflow_provider_spotzee.config import CLIENT_TYPE, ClientConfig
from airflow_provider_spotzee.exceptions import SpotzeeAPIError, SpotzeeAuthError, SpotzeeConfigError

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


class Pacer:
    """Paces requests below the key's budget, alone or with other workers on the same key.

    A token bucket at ``rate`` req/s with a small bucket (so the 10 s sliding window can never be
    overrun by a burst). The server's headers steer it: ``X-RateLimit-Limit`` − ``X-RateLimit-Remaining``
    is what *every* client of the key used in the window, and the pacer knows what it sent itself in the
    same window. Alone on the key it paces at ``rate`` (0.98 × the plan). When others use the key too
    (mapped partitions, another DAG) it takes its share of a shared target (:data:`SHARED_TARGET` × the
    window's limit): its current rate over everybody's, or, with a ``fair_share`` (``1/N`` partitions),
    exactly that unless clearly fewer workers are busy. Past the target every worker brakes, to a stop at
    the limit. Before the first response it sends one probe and waits for the answer, so eight workers
    starting together do not burst. When ``X-RateLimit-Remaining`` runs low every sender waits
    ``X-RateLimit-Reset``; a 429 pauses everybody for ``Retry-After``. Without rate headers (another
    server) it falls back to AIMD on 429s. ``tests/unit/test_pacer.py`` simulates several of them.
    """

    #: A shared key's window is filled to this fraction of its limit: the margin absorbs a newcomer's
    #: ramp-up and responses that are one round trip old.
    SHARED_TARGET = 0.94
    #: Alone on the key it fills the window to this fraction (= its own pacing ceiling).
    ALONE_TARGET = 0.98
    #: The server's sliding window (api-facts: 10 s).
    WINDOW = RATE_WINDOW_SECONDS
    #: A worker that has no share yet (a newcomer) still sends this often, so it can grow one.
    MIN_RATE = 1.0
    #: Rates are measured over this many seconds.
    RECENT = 3.0
    PROBE_TIMEOUT = 2.0

    def __init__(self, rate: float, *, fair_share: float | None = None, low_water: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = rate
        self.rate = rate
        self.fair_share = fair_share or 0.0
        self.low_water = low_water
        self.shared = False
        self._clock = clock
        # 150 ms of tokens: enough to catch up after a short stall (a descheduled VM, a GC pause), small
        # enough that 10 s at the paced rate plus a full bucket stays under the 10 s window's limit
        self.capacity = max(1.0, rate * 0.15)
        self._tokens = 1.0  # the probe; the bucket fills at the paced rate from there
        self._updated = clock()
        self._paused_until = 0.0
        self._sent: deque[float] = deque()  # this pacer's sends in the last WINDOW seconds
        self._others: deque[tuple[float, int]] = deque()  # (when, others' window count), RECENT seconds
        self._first: float | None = None
        self._informed = False
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while (wait := self.take()) > 0:
                await asyncio.sleep(wait)

    def take(self) -> float:
        """Take a token and return 0, or return how long to wait before asking again."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if self._first is not None and not self._informed and now - self._first < self.PROBE_TIMEOUT:
            return 0.02  # the probe is out: wait for the server's word on the key's usage
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1.0 - 1e-9:  # (float dust must not turn into a zero-length wait)
            return max(0.001, (1.0 - self._tokens) / self.rate)
        self._tokens = max(0.0, self._tokens - 1.0)
        if self._first is None:
            self._first = now
        self._sent.append(now)
        return 0.0

    def answered(self) -> None:
        """The probe came back without rate headers (a transport error): stop waiting for them."""
        self._informed = True

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        self._informed = True
        if status == 429:
            if self._sent:
                self._sent.pop()  # refused requests do not count against the window
            self._set_rate(max(self.ceiling * 0.1, self.rate * 0.7))
            return
        try:
            limit, remaining = int(headers["x-ratelimit-limit"]), int(headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            self._set_rate(min(self.ceiling, self.rate + self.ceiling * 0.01))  # no headers: AIMD
            return
        self._share(limit, remaining)
        try:
            reset = float(headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return
        if remaining <= self.low_water and 0 < reset <= 60:
            self.pause(reset)

    def _share(self, limit: int, remaining: int) -> None:
        now = self._clock()
        sent = self._sent
        while sent and sent[0] <= now - self.WINDOW:
            sent.popleft()
        own = len(sent)
        others = max(0, limit - remaining - own)  # in-flight requests make this an underestimate
        history = self._others
        history.append((now, others))
        while len(history) > 1 and history[1][0] <= now - self.RECENT:
            history.popleft()
        # In its first window this pacer's count is exact, so any other use is another worker; later,
        # own sends just out of its window may still be in the server's, so a few are tolerated.
        age = max(1e-3, now - (self._first if self._first is not None else now))
        self.shared = others > (0 if age < self.WINDOW else max(3, 0.01 * limit))
        target = (self.SHARED_TARGET if self.shared else self.ALONE_TARGET) * limit
        # Rates now rather than window averages, so that a worker that stops (or starts) shows at once.
        # Own: exact, over RECENT seconds. Others: their window count over the time this pacer has seen
        # (an overestimate when they started earlier: this pacer then yields), or, once a falling count
        # shows that some of them stopped, what the count did over RECENT seconds plus what left.
        own_rate = (bisect.bisect_right(sent, now) - bisect.bisect_right(sent, now - self.RECENT))
        own_rate /= min(self.RECENT, age)
        others_rate = others / min(self.WINDOW, age)
        then, others_then = history[0]
        span = now - then
        if span >= self.RECENT / 2:
            others_rate = min(others_rate, max(0.0, (others - others_then) / span + others_then / self.WINDOW))
        share = own_rate / (own_rate + others_rate) if own_rate else 0.0
        if self.fair_share and (share < 1.5 * self.fair_share or age < self.WINDOW):
            # Noisy estimates around the fair share would, floored at it, add up to more than the whole
            # budget; take more only when clearly fewer workers are busy (one started late or finished),
            # and not in the first window, whose counts are too young to say.
            share = self.fair_share
        # Any 10 s of sends must fit the window, so together the workers send at most target / window;
        # this pacer sends its share of that (its part of the key's current use).
        rate = share * target / self.WINDOW
        used = own + others
        if self.shared and used > target:
            # The shares are estimates (and fair shares are floors), so together they can overshoot:
            # brake as the window fills past the target, to a stop at the limit, instead of running
            # into 429s (each one pauses the worker that gets it for a whole second).
            rate *= max(0.0, (limit - used) / max(1.0, limit - target))
        self._set_rate(min(self.ceiling, max(self.MIN_RATE, rate)))

    def _set_rate(self, rate: float) -> None:
        if rate != self.rate:
            now = self._clock()  # settle the tokens earned at the old rate first
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self.rate = rate
            self.capacity = max(1.0, rate * 0.15)
            self._tokens = min(self._tokens, self.capacity)


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

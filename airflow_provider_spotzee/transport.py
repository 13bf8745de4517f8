"""The HTTP transport: an httpx async client with explicit timeouts, pacing and tenacity retries.

One :class:`SpotzeeTransport` per send. Every request goes through :meth:`SpotzeeTransport.request`,
which waits for the pacer (:mod:`airflow_provider_spotzee.pacing`), sends, and lets tenacity retry
what is safe to retry. Two pure functions make every decision, from tenacity's own outcome (the
response or the exception of the last attempt):

:func:`classify` — retry or not, and why:

========================================  ========  =============================================
outcome                                   retried   reason (``code`` when retries run out)
========================================  ========  =============================================
2xx                                       no        ``ok`` (returned)
connect error / connect timeout           yes       ``connect_error`` (``transport_error``/``timeout``)
other transport error (reset, EOF, ...)   yes       ``transport_error``
read/write/pool timeout                   yes       ``timeout``
5xx                                       yes       ``server_error`` (the body's code)
408                                       yes       ``request_timeout``
429                                       yes       ``rate_limited`` (waits ``Retry-After``)
409 ``idempotency_in_progress``           yes       ``idempotency_in_progress`` (waits ``Retry-After``)
401 / 403                                 no        ``unauthorized``: :class:`SpotzeeAuthError` at once
400 ``version_unsupported``               no        ``version_unsupported``: :class:`SpotzeeAuthError`
3xx                                       no        ``redirect``: :class:`SpotzeeConfigError`
any other 4xx                             no        ``client_error`` (returned to the caller)
========================================  ========  =============================================

:func:`backoff` — how long before the next attempt: a server-directed wait (429, 409 in progress)
is ``Retry-After`` (seconds or HTTP-date; 1 s when absent), doubled on each consecutive repeat;
anything else is 0.25 s doubling per attempt (0.25, 0.5, 1, 2, ...); either is capped at
``max_wait``, then 0–500 ms of random jitter is added.

Retries are re-sent with the same bytes and the same ``Idempotency-Key``. When they run out,
:class:`~airflow_provider_spotzee.exceptions.SpotzeeRetriesExhausted` is raised, carrying the last
status and code.

Fail fast when nothing listens: when the service has never answered on this transport and a request
cannot connect at all (connection refused, DNS failure, TLS failure, connect timeout), it gets
:data:`CONNECT_ATTEMPTS` tries (two quick retries, under 2 s of waiting) and then
:class:`~airflow_provider_spotzee.exceptions.SpotzeeConnectError` ("cannot connect to <base URL>:
Connection refused") is raised, for this request and every later one on the transport. Once the
service has answered, connect errors are ordinary transport errors and get the full retries.

A 404 is returned to the caller, who knows whether it can mean "no such contact";
:meth:`SpotzeeTransport.confirm_base_url` then tells that apart from a base URL without
``/api/client`` (:func:`wrong_base_url`).

Nothing here logs a header, a body or the key, and nothing here changes process-wide state: httpx's
per-request INFO line is dropped for this transport's own requests by a :class:`logging.Filter` keyed
on the sending context, not by changing the ``httpx`` logger's level.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import logging
import math
import os
import random
import socket
import ssl
import time
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Self
from urllib.parse import quote, urlencode

import httpx
from pydantic_core import from_json
from tenacity import AsyncRetrying, RetryCallState

from airflow_provider_spotzee.config import CLIENT_TYPE, ClientConfig
from airflow_provider_spotzee.exceptions import (
    SpotzeeAPIError,
    SpotzeeAuthError,
    SpotzeeConfigError,
    SpotzeeConnectError,
    SpotzeeError,
    SpotzeeRetriesExhausted,
)
from airflow_provider_spotzee.pacing import Pacer

log = logging.getLogger(__name__)

#: True while this provider's transport sends (set per request, so per asyncio task).
_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("spotzee_transport_sending", default=False)


class _QuietOwnRequests(logging.Filter):
    """Drops httpx's per-request INFO line ("HTTP Request: POST https://…/users/batch …") for requests
    this transport sends, and only those.

    A million-row sync would otherwise write ten thousand such lines into the task log, and the line's
    URL carries user ids (``/users/{external_id}``, ``?q=``). Filtering by the sending context, instead
    of raising the ``httpx`` logger's level, leaves every other httpx user in the process (and anybody
    who turns httpx logging up on purpose) exactly as they were: nothing global changes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


_QUIET_FILTER = _QuietOwnRequests()


def _install_quiet_filter() -> None:
    httpx_log = logging.getLogger("httpx")  # httpx logs its request lines on exactly this logger
    if not any(isinstance(f, _QuietOwnRequests) for f in httpx_log.filters):
        httpx_log.addFilter(_QUIET_FILTER)


_install_quiet_filter()

USER_AGENT = "airflow-provider-spotzee/0.1"
#: How requests go out: httpx (the default) or the provider's own asyncio HTTP/1.1 client (opt-in).
TRANSPORTS = ("httpx", "asyncio")
TRANSPORT_ENV = "SPOTZEE_TRANSPORT"
JITTER_SECONDS = 0.5
#: Backoff without a server hint: this many seconds, doubling per attempt.
BASE_BACKOFF_SECONDS = 0.25
#: Tries of a request that cannot connect while the service has never answered on the transport.
CONNECT_ATTEMPTS = 3


def __getattr__(name: str) -> Any:
    if name == "RetryableError":  # the old name of what exhausted retries raise
        warnings.warn("airflow_provider_spotzee.transport.RetryableError is deprecated: catch "
                      "airflow_provider_spotzee.exceptions.SpotzeeRetriesExhausted", DeprecationWarning,
                      stacklevel=2)
        return SpotzeeRetriesExhausted
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ResponseHeaders(dict[str, str]):
    """A response's headers as the asyncio transport reads them: by lower-case name, looked up in any case
    (as :class:`httpx.Headers` are), a repeated header's values joined with ``", "`` (what
    ``httpx.Headers.get`` answers). A plain dict underneath: an answer's ten headers cost ~2.5 µs as
    ``httpx.Headers``, and every lookup was a Python-level scan of them."""

    __slots__ = ()

    @classmethod
    def parse(cls, fields: str) -> ResponseHeaders:
        """``Name: value`` lines (CRLF-separated, as they follow the status line) into headers. Raises
        :class:`ValueError` for a line without a colon."""
        headers = cls()
        if fields:
            put, has = dict.__setitem__, dict.__contains__
            for line in fields.split("\r\n"):
                name, sep, value = line.partition(":")
                if not sep:
                    raise ValueError("header line without a colon")
                name, value = name.strip().lower(), value.strip()
                put(headers, name, f"{dict.__getitem__(headers, name)}, {value}" if has(headers, name) else value)
        return headers

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


@dataclass
class ApiResponse:
    status: int
    headers: Mapping[str, str]  # httpx.Headers (httpx transport) or ResponseHeaders (asyncio): any case
    body: bytes
    replayed: bool = False

    def json(self) -> Any:
        return parse_json(self.body)

    @property
    def error_code(self) -> str:
        return _problem(self.body).get("code") or f"http_{self.status}"

    @property
    def request_id(self) -> str | None:
        return _problem(self.body).get("request_id") or self.headers.get("x-request-id")


def parse_json(body: bytes) -> Any:
    """A body as JSON. pydantic_core's parser first (a 100-item answer parses ~1.4 × faster); any body it
    refuses goes to the stdlib's, so what is accepted, and how, is exactly ``json.loads``'s. Raises
    :class:`ValueError` (``UnicodeDecodeError`` included) for what is not JSON."""
    try:
        return from_json(body)
    except ValueError:
        return json.loads(body)


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


#: Reasons whose requests never reached the service: the connection could not even be opened.
CONNECT_REASONS = frozenset({"connect_error"})
#: Reasons that raise at once (never retried, never returned).
FATAL_REASONS = frozenset({"unauthorized", "version_unsupported", "redirect"})


@dataclass(frozen=True)
class Decision:
    """What one attempt's outcome means: retry or not, and why.

    ``reason`` is the classification (see the module docstring's table); ``code`` is what a failure
    reports (the response's error code, or ``transport_error``/``timeout`` when nothing answered);
    ``retry_after`` is the server's wait hint (429 and 409 ``idempotency_in_progress`` only)."""

    retry: bool
    reason: str
    code: str | None = None
    status: int | None = None
    retry_after: float | None = None

    @property
    def fatal(self) -> bool:
        return self.reason in FATAL_REASONS

    @property
    def cannot_connect(self) -> bool:
        return self.reason in CONNECT_REASONS


def classify(outcome: ApiResponse | BaseException, *, now: float | None = None) -> Decision:
    """Classify one attempt's outcome (a response, or the exception the attempt raised). Pure: it reads
    only ``outcome`` (and ``now``, for a ``Retry-After`` given as an HTTP-date)."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, (httpx.ConnectError, httpx.ConnectTimeout)):
            code = "timeout" if isinstance(outcome, httpx.TimeoutException) else "transport_error"
            return Decision(True, "connect_error", code)
        if isinstance(outcome, httpx.TimeoutException):
            return Decision(True, "timeout", "timeout")
        if isinstance(outcome, httpx.TransportError):
            return Decision(True, "transport_error", "transport_error")
        return Decision(False, "exception", type(outcome).__name__)
    status = outcome.status
    if 200 <= status < 300:
        return Decision(False, "ok", status=status)
    code = outcome.error_code
    if status == 429 or (status == 409 and code == "idempotency_in_progress"):
        hint = parse_retry_after(outcome.headers.get("retry-after"), now=now)
        return Decision(True, "rate_limited" if status == 429 else "idempotency_in_progress", code, status,
                        retry_after=hint if hint is not None else 1.0)
    if status >= 500:
        return Decision(True, "server_error", code, status)
    if status == 408:
        return Decision(True, "request_timeout", code, status)
    if status in (401, 403):
        return Decision(False, "unauthorized", code, status)
    if code == "version_unsupported":
        return Decision(False, "version_unsupported", code, status)
    if 300 <= status < 400:
        return Decision(False, "redirect", code, status)
    return Decision(False, "client_error", code, status)


def backoff(attempt: int, retry_after: float | None, *, repeat: int = 1, max_wait: float = 60.0,
            jitter: float = 0.0) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based). Pure.

    With a server hint (``retry_after``, seconds) the wait is the hint doubled for each consecutive
    server-directed wait (``repeat`` counts them, this one included: 1, 2, 3 → ×1, ×2, ×4); without one
    it is ``BASE_BACKOFF_SECONDS`` doubled per attempt. Either is capped at ``max_wait``; ``jitter``
    (the caller's random 0–0.5 s) is added on top.
    """
    if retry_after is not None:
        base = retry_after * 2.0 ** (max(1, repeat) - 1)
    else:
        base = BASE_BACKOFF_SECONDS * 2.0 ** (max(1, attempt) - 1)
    return min(max_wait, base) + jitter


def describe(method: str, path: str, outcome: ApiResponse | BaseException) -> str:
    """One attempt in words, for logs and failure messages: never a header, a body or the key."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, httpx.TimeoutException):
            return f"{method} {path} timed out ({type(outcome).__name__})"
        return f"{method} {path} failed: {type(outcome).__name__}"
    return f"{method} {path}: HTTP {outcome.status} {outcome.error_code}"


def connect_failure(exc: BaseException) -> str:
    """Why a connection could not be opened, in a few words ("Connection refused", ...), from the
    exception chain httpx raises. Never echoes a URL, a header or the key."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve ({cause.strerror or 'DNS failure'})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or type(cause).__name__})"
        if isinstance(cause, ConnectionRefusedError):
            return "Connection refused"
        if isinstance(cause, (TimeoutError, httpx.ConnectTimeout)):
            return "the connection timed out"
        if isinstance(cause, OSError) and isinstance(cause.errno, int) and cause.errno > 0:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _outcome(state: RetryCallState) -> ApiResponse | BaseException:
    """The last attempt's outcome, as tenacity recorded it: its exception, or its response."""
    future = state.outcome
    if future is None:  # pragma: no cover - tenacity always sets it before asking
        raise RuntimeError("tenacity asked about an attempt without an outcome")
    error = future.exception()
    return error if error is not None else future.result()


class _Backoff:
    """tenacity's wait for one request: :func:`backoff` of the last outcome's :func:`classify`. Its one
    piece of state is how many server-directed waits came in a row (they double)."""

    def __init__(self, max_wait: float, rng: random.Random) -> None:
        self.max_wait = max_wait
        self.rng = rng
        self.repeat = 0

    def __call__(self, state: RetryCallState) -> float:
        hint = classify(_outcome(state)).retry_after
        self.repeat = self.repeat + 1 if hint is not None else 0
        return backoff(state.attempt_number, hint, repeat=self.repeat, max_wait=self.max_wait,
                       jitter=self.rng.uniform(0, JITTER_SECONDS))


class _Wire:
    """A small HTTP/1.1 client on asyncio streams, for :class:`SpotzeeTransport` when ``transport`` is
    ``"asyncio"`` (opt-in; httpx is the default). Keep-alive connections, one request per connection at a
    time; the most recently used connection first. It speaks only what Spotzee's API needs: a body with a
    ``Content-Length``, answers framed by ``Content-Length``, chunked, or the connection's end.

    It raises httpx's exception types (:class:`httpx.ConnectError`, :class:`httpx.ConnectTimeout`,
    :class:`httpx.ReadTimeout`, :class:`httpx.RemoteProtocolError`, ...), chained to the socket's error, so
    :func:`classify`, :func:`connect_failure` and the retries treat both transports the same way.
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float, connect_timeout: float,
                 tls: Callable[[], ssl.SSLContext]) -> None:
        url = httpx.URL(base_url)
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.raw_path.decode("ascii").rstrip("/")
        self.https = url.scheme == "https"
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._tls = tls
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if url.port is None else f"{host}:{self.port}"
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": authority, **headers}.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open: set[asyncio.StreamWriter] = set()

    async def aclose(self) -> None:
        writers, self._open, self._idle = self._open, set(), []
        for writer in writers:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._tls() if self.https else None, limit=2**20,
                    server_hostname=self.host if self.https else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connect timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self._open.add(writer)
        return reader, writer

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        writer.close()

    async def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None,
                      params: dict[str, Any] | None) -> tuple[int, Mapping[str, str], bytes]:
        target = self.prefix + path
        if params:
            target += "?" + urlencode(params, quote_via=quote)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        head = f"{method} {target} HTTP/1.1\r\n{self._head}{extra}{length}\r\n".encode("latin-1")
        while self._idle:  # the server may have closed an idle connection meanwhile
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                break
            self._drop(writer)
        else:
            reader, writer = await self._connect()
        keep = reading = False
        try:
            try:
                # (one timeout for the exchange: writing a request body to the socket's buffer is immediate
                # unless the peer stops reading, and a second timer per request costs more than it tells)
                async with asyncio.timeout(self.timeout):
                    writer.write(head + body if body else head)
                    await writer.drain()
                    reading = True
                    status, answer, content, keep = await self._read(reader, method)
            except TimeoutError as exc:
                raise (httpx.ReadTimeout("read timed out") if reading
                       else httpx.WriteTimeout("write timed out")) from exc
            except asyncio.IncompleteReadError as exc:
                raise httpx.RemoteProtocolError("server disconnected without sending a complete response") from exc
            except asyncio.LimitOverrunError as exc:
                raise httpx.RemoteProtocolError("response head too long") from exc
            except (ValueError, IndexError) as exc:
                raise httpx.RemoteProtocolError(f"malformed response ({type(exc).__name__})") from exc
            except OSError as exc:
                error = httpx.ReadError if reading else httpx.WriteError
                raise error(str(exc) or type(exc).__name__) from exc
            return status, answer, content
        finally:
            if keep:
                self._idle.append((reader, writer))
            else:  # an error, a cancellation, or the server's "Connection: close"
                self._drop(writer)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, method: str) -> tuple[int, ResponseHeaders, bytes, bool]:
        while True:
            raw = await reader.readuntil(b"\r\n\r\n")
            status_line, _, fields = raw[:-4].decode("latin-1").partition("\r\n")
            version, _, rest = status_line.partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError("not an HTTP/1.x status line")
            status = int(rest[:3])
            if not 100 <= status < 200:
                break  # (1xx interim answers are skipped)
        answer = ResponseHeaders.parse(fields)
        connection = answer.get("connection", "").lower()
        keep = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        if method == "HEAD" or status in (204, 304):
            return status, answer, b"", keep
        if "chunked" in answer.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return status, answer, b"".join(parts), keep
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = answer.get("content-length")
        if length is not None:
            return status, answer, await reader.readexactly(int(length)), keep
        return status, answer, await reader.read(), False  # framed by the connection's end


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    replayed: int = 0


class SpotzeeTransport:
    """Async HTTP access to one Spotzee project. Use as ``async with SpotzeeTransport(config) as t``."""

    #: One single-connection httpx client per request in flight (False: one client and httpcore's pool of
    #: ``max_in_flight + 4`` connections, kept for the benchmarks' same-run comparison).
    client_per_slot = True

    def __init__(self, config: ClientConfig, *, counters: Counters | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.counters = counters or Counters()
        self._rng = rng or random.Random()
        #: The service has answered (any HTTP status) on this transport at least once.
        self.answered = False
        #: Nothing could be reached: every later request that cannot connect gives up at once.
        self.unreachable = False
        #: The base URL is known to serve the API (a 2xx came back, or :meth:`confirm_base_url` said so).
        self.api_confirmed = False
        self._confirming = asyncio.Lock()
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
        self._headers = headers
        # One httpx client per request in flight, each holding one connection (see :meth:`_slot`): httpcore's
        # pool walks every connection of the pool (a poll() and a getpeername() each) twice per request,
        # which with 20 connections cost more CPU than validating the request's 100 items.
        self._slots = asyncio.Semaphore(config.max_in_flight + 4)
        self._free: list[httpx.AsyncClient] = []
        self._clients: list[httpx.AsyncClient] = []
        self._tls: ssl.SSLContext | None = None
        self._wire = self._choose_wire(config, headers)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:  # made as httpx makes it (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured)
            self._tls = httpx.create_ssl_context(trust_env=True)
        return self._tls

    def _choose_wire(self, config: ClientConfig, headers: dict[str, str]) -> _Wire | None:
        """The opt-in asyncio transport (``transport="asyncio"``: the connection's ``transport`` extra once
        config carries it, else the ``SPOTZEE_TRANSPORT`` environment variable), or ``None`` for httpx.
        A proxy from the environment (``HTTPS_PROXY``...) for the API's host keeps httpx, which speaks it."""
        kind = config.transport or os.environ.get(TRANSPORT_ENV) or "httpx"
        if kind not in TRANSPORTS:
            raise SpotzeeConfigError(f"transport must be one of {', '.join(TRANSPORTS)}, got {kind!r}")
        if kind == "httpx":
            return None
        url = httpx.URL(config.base_url)
        proxies = urllib.request.getproxies_environment()
        if (proxies.get(url.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(url.host):
            log.info("Spotzee: a proxy is configured for %s; using the httpx transport", url.host)
            return None
        return _Wire(config.base_url, headers, config.timeout, min(10.0, config.timeout), self._tls_context)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        clients, self._clients, self._free = self._clients, [], []
        for client in clients:
            await client.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        """An httpx client with a single keep-alive connection (or the whole pool: ``client_per_slot``)."""
        config = self.config
        pool = 1 if self.client_per_slot else config.max_in_flight + 4
        client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=self._headers,
            timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=False,
            verify=self._tls_context(),  # (one shared: building one loads the CA bundle, ~50 ms)
            trust_env=True,  # HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE, as users of httpx expect
        )
        self._clients.append(client)
        return client

    async def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None,
                    params: dict[str, Any] | None) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange: (status, headers, body). With httpx, on a free client (a new one while fewer
        than ``max_in_flight + 4`` exist; the most recently used first, so its connection is warm)."""
        if not self.client_per_slot and self._wire is None:  # one client, httpcore's pool (the old way)
            client = self._clients[0] if self._clients else self._new_client()
            raw = await client.request(method, path, content=body, headers=headers, params=params)
            return raw.status_code, raw.headers, raw.content
        async with self._slots:
            if self._wire is not None:
                return await self._wire.request(method, path, body, headers, params)
            client = self._free.pop() if self._free else self._new_client()
            try:
                raw = await client.request(method, path, content=body, headers=headers, params=params)
                return raw.status_code, raw.headers, raw.content
            finally:
                if client in self._clients:  # (not closed meanwhile by aclose)
                    self._free.append(client)

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
        """Send with retries. Returns any 2xx or non-retryable 4xx; raises auth/config errors at once,
        :class:`SpotzeeConnectError` when nothing can be reached, and :class:`SpotzeeRetriesExhausted`
        when retries run out."""
        write = method.upper() != "GET"
        pacer = self.write_pacer if write else self.read_pacer
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        # The first attempt is made here, and tenacity is set up only when it must be retried (most
        # requests need no retry, and tenacity's async machinery costs ~1 µs an item). It then starts from
        # that outcome, as if it had made the attempt itself: the same stops, waits and counters.
        first: ApiResponse | Exception
        try:
            first = await self._once(method, path, body, headers, params, pacer)
        except Exception as exc:  # noqa: BLE001 - classified below, exactly as tenacity would see it
            first = exc
        decision = classify(first)
        if decision.retry:
            retrying = AsyncRetrying(
                retry=self._should_retry,
                stop=self._should_stop,
                wait=_Backoff(self.config.max_wait, self._rng),
                before_sleep=self._count_retry,
                retry_error_callback=lambda state: self._give_up(method, path, state),
            )
            replay: list[ApiResponse | Exception] = [first]

            async def attempt() -> ApiResponse:
                if replay:  # tenacity's attempt 1: the outcome of the attempt made above
                    outcome = replay.pop()
                    if isinstance(outcome, Exception):
                        raise outcome
                    return outcome
                return await self._once(method, path, body, headers, params, pacer)

            response: ApiResponse = await retrying(attempt)
            decision = classify(response)
        elif isinstance(first, Exception):
            raise first
        else:
            response = first
        if decision.fatal:
            raise self._fatal(method, path, response, decision)
        return response

    async def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None,
                    params: dict[str, Any] | None, pacer: Pacer) -> ApiResponse:
        """One attempt: pace, send, feed the pacer and the counters. Transport errors propagate (tenacity
        records them as the outcome); every response is returned, whatever its status."""
        await pacer.acquire()
        self.counters.requests += 1
        quiet = _SENDING.set(True)
        try:
            status, answer, content = await self._send(method, path, body, headers, params)
        except httpx.TransportError:
            pacer.answered()
            raise
        finally:
            _SENDING.reset(quiet)
        self.answered = True
        response = ApiResponse(status, answer, content,
                               replayed=answer.get("idempotent-replayed", "").lower() == "true")
        pacer.observe(answer, status)
        if 200 <= status < 300:
            self.counters.replayed += response.replayed
            self.api_confirmed = True
        elif status == 429:
            self.counters.throttled += 1
            hint = classify(response).retry_after
            pacer.pause(min(hint if hint is not None else 1.0, self.config.max_wait))
        return response

    async def confirm_base_url(self) -> None:
        """After a 404 that may mean "no such contact": make sure it does not mean "no such API". One
        ``GET /users?limit=1`` per transport (none once anything succeeded); a 404 there raises
        :class:`SpotzeeConfigError` naming the base URL and the fix."""
        if self.api_confirmed:
            return
        async with self._confirming:
            if self.api_confirmed:
                return
            response = await self.request("GET", "/users", params={"limit": 1})
            if response.status == 404:
                raise wrong_base_url("GET", "/users", response, self.config.base_url)
            self.api_confirmed = True

    def _should_retry(self, state: RetryCallState) -> bool:
        return classify(_outcome(state)).retry

    def _should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.config.max_retries + 1:
            return True
        if not self.answered and classify(_outcome(state)).cannot_connect:
            return self.unreachable or state.attempt_number >= CONNECT_ATTEMPTS
        return False

    def _give_up(self, method: str, path: str, state: RetryCallState) -> NoReturn:
        """Retries ran out (tenacity's ``retry_error_callback``): raise what the last outcome means."""
        outcome = _outcome(state)
        decision = classify(outcome)
        if decision.cannot_connect and not self.answered and isinstance(outcome, BaseException):
            self.unreachable = True
            raise SpotzeeConnectError(
                f"cannot connect to {self.config.base_url}: {connect_failure(outcome)} (nothing answered "
                "there; check the connection's host and port, and any proxy or TLS settings)",
                code="connect_error")
        request_id = outcome.request_id if isinstance(outcome, ApiResponse) else None
        raise SpotzeeRetriesExhausted(
            f"Spotzee {method} {path} kept failing after {state.attempt_number - 1} retries",
            status=decision.status, code=decision.code, request_id=request_id,
            last_error=describe(method, path, outcome))

    def _fatal(self, method: str, path: str, response: ApiResponse, decision: Decision) -> SpotzeeError:
        status, code = response.status, decision.code
        if decision.reason == "unauthorized":
            return SpotzeeAuthError(
                "Spotzee refused the API key: check the connection's password holds a valid sk_… key for "
                "this project" + (" with write permission" if status == 403 else ""),
                status=status, code=code, request_id=response.request_id)
        if decision.reason == "version_unsupported":
            return SpotzeeAuthError(
                f"Spotzee does not support API version {self.config.api_version!r}: fix the connection's "
                "'api_version' extra (YYYY-MM-DD), or remove it to use the current version",
                status=status, code=code, request_id=response.request_id)
        return SpotzeeConfigError(
            f"Spotzee answered {method} {path} with a redirect (HTTP {status}); redirects are not "
            "followed so the key is never sent elsewhere: set the connection's host to the final base URL")

    def _count_retry(self, state: RetryCallState) -> None:
        self.counters.retries += 1
        if self.counters.retries in (1, 10, 100) or self.counters.retries % 1000 == 0:
            log.info("Spotzee: retrying (%d retries so far; last: %s)", self.counters.retries,
                     classify(_outcome(state)).code)


def wrong_base_url(method: str, path: str, response: ApiResponse, base_url: str) -> SpotzeeConfigError:
    """A 404 for an endpoint itself: the base URL does not serve Spotzee's client API."""
    return SpotzeeConfigError(
        f"Spotzee answered {method} {path} with 404 ({response.error_code}): check that the "
        f"connection's base URL ends in /api/client (now {base_url})")


def api_error(response: ApiResponse, what: str) -> SpotzeeAPIError:
    return SpotzeeAPIError(what, status=response.status, code=response.error_code,
                           request_id=response.request_id)

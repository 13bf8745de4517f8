"""The emulator's ASGI application.

``/api/client/...`` is served by :class:`ClientAPI`, a raw ASGI handler (routing on the raw path so
URL-escaped external_ids containing ``/`` work, and with direct access to the connection so a fault can
cut it after a write was applied). ``/__emulator/...`` is the Starlette admin app. Every client request
goes through the same pipeline::

    auth -> version -> rate limit (and 429 storms) -> route -> Idempotency-Key format
    -> injected 5xx / forced 409 in_progress -> idempotency lookup (replay, mismatch, in progress)
    -> body parse and validation -> apply -> injected latency -> idempotency record completed
    -> maybe drop the connection -> response
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_spotzee.api_facts import is_api_version
from airflow_provider_spotzee.testing import endpoints
from airflow_provider_spotzee.testing.clock import iso
from airflow_provider_spotzee.testing.config import CURRENT_VERSION, SUPPORTED_VERSIONS, EmulatorConfig, Plan
from airflow_provider_spotzee.testing.endpoints import Request
from airflow_provider_spotzee.testing.idempotency import MAX_KEY_LENGTH, Record
from airflow_provider_spotzee.testing.items import MAX_ITEMS
from airflow_provider_spotzee.testing.problems import PROBLEM_CONTENT_TYPE, ApiError, problem_body
from airflow_provider_spotzee.testing.state import EmulatorState

log = logging.getLogger(__name__)

API_PREFIX = "/api/client"
ADMIN_PREFIX = "/__emulator"

_API_PREFIX_B = API_PREFIX.encode()
_JSON = b"application/json"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CURRENT_B = CURRENT_VERSION.encode()
_SUPPORTED_B = frozenset(v.encode() for v in SUPPORTED_VERSIONS)

class _Route:
    __slots__ = ("allow", "handler", "label", "takes_body", "user_id")

    def __init__(
        self,
        label: str,
        handler: Any = None,
        takes_body: bool = False,
        user_id: str | None = None,
        allow: str | None = None,
    ) -> None:
        self.label = label
        self.handler = handler
        self.takes_body = takes_body
        self.user_id = user_id
        self.allow = allow  # set when the path exists but not for this method


_NOT_FOUND = _Route("UNMATCHED")


def resolve(method: str, segments: list[str] | None) -> _Route:
    """Map (method, decoded path segments below /api/client) to a route."""
    if not segments:
        return _NOT_FOUND
    n, head = len(segments), segments[0]
    if head == "users":
        if n == 1:
            if method == "GET":
                return _Route("GET /users", endpoints.list_users)
            if method == "PATCH":
                return _Route("PATCH /users", endpoints.upsert_async, True)
            return _Route(f"{method} /users", allow="GET, PATCH")
        if n == 2:
            if method == "GET":  # GET /users/batch looks up the contact whose external_id is "batch"
                return _Route("GET /users/{userId}", endpoints.get_user, user_id=segments[1])
            if method == "POST" and segments[1] == "batch":
                return _Route("POST /users/batch", endpoints.upsert_batch, True)
            return _Route(
                f"{method} /users/{{userId}}", allow="GET, POST" if segments[1] == "batch" else "GET"
            )
        if n == 3 and segments[2] == "subscriptions":
            if method == "PATCH":
                return _Route(
                    "PATCH /users/{userId}/subscriptions",
                    endpoints.toggle_user_subscriptions,
                    True,
                    user_id=segments[1],
                )
            return _Route(f"{method} /users/{{userId}}/subscriptions", allow="PATCH")
        return _NOT_FOUND
    if head == "events" and n == 1:
        if method == "POST":
            return _Route("POST /events", endpoints.track_events, True)
        return _Route(f"{method} /events", allow="POST")
    if head == "subscriptions" and n == 2 and segments[1] == "batch":
        if method == "POST":
            return _Route("POST /subscriptions/batch", endpoints.subscriptions_batch, True)
        return _Route(f"{method} /subscriptions/batch", allow="POST")
    return _NOT_FOUND


def _segments(scope: dict[str, Any]) -> list[str] | None:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    rest = raw[len(_API_PREFIX_B) :]
    if not rest.startswith(b"/"):
        return None
    try:
        return [unquote_to_bytes(part).decode("utf-8") for part in rest[1:].split(b"/")]
    except UnicodeDecodeError:
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def dump_json(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":")).encode()``, by msgspec when the answer is plain ASCII
    (the common case; several times faster; ``value`` may hold msgspec structs such as
    :class:`~airflow_provider_spotzee.testing.contacts.ContactView`). Otherwise (non-ASCII text, which
    ``json.dumps`` escapes, or anything msgspec refuses) the stdlib writes it, so the bytes are the same as
    ever. Floats are the one difference: beyond ``1e16`` or under ``1e-4`` msgspec writes ``1e16`` /
    ``0.00001`` where the stdlib writes ``1e+16`` / ``1e-05`` (the same number)."""
    try:
        out = _encode(value)
        if out.isascii():
            return out
    except (TypeError, ValueError, OverflowError):  # e.g. a lone surrogate the stdlib parser let in
        pass
    return json.dumps(msgspec.to_builtins(value), separators=(",", ":")).encode()


def parse_items(body: bytes) -> list[Any]:
    """The body of every write: a JSON array of 1 to 100 items (whole-request 400 otherwise).

    msgspec decodes a well-formed body (the same values as ``json.loads``); whatever it refuses (bad
    UTF-8, ``NaN``, numbers out of float range, lone surrogates, ...) goes through the stdlib parser,
    which accepts or words the refusal exactly as before."""
    try:
        data = _decode(body)
    except Exception:  # noqa: BLE001 - the stdlib path below decides, and words the 400
        return _parse_items_stdlib(body)
    return _check_items(data)


def _parse_items_stdlib(body: bytes) -> list[Any]:
    if not body.strip():
        raise ApiError("parameter_missing", "A JSON array body is required.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("parameter_invalid_format", "The body is not valid UTF-8.") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError("parameter_invalid_format", "The body is not valid JSON.") from None
    return _check_items(data)


def _check_items(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise ApiError(
            "parameter_invalid_format", f"The body must be a JSON array of 1 to {MAX_ITEMS} items."
        )
    if not 1 <= len(data) <= MAX_ITEMS:
        raise ApiError(
            "parameter_invalid_format",
            f"The body must hold 1 to {MAX_ITEMS} items; it holds {len(data)}.",
        )
    return data


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> bytes:
    """The request body; past ``limit`` the rest is read and discarded, then _BodyTooLarge is raised
    (so the client, still sending, is not cut off before it can read the 400)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            else:
                chunks.clear()
        if not message.get("more_body", False):
            if size > limit:
                raise _BodyTooLarge
            return b"".join(chunks)


class _Exchange:
    """One request on its way through the pipeline: what each step reads and what it leaves for the next.

    ``out`` collects the response headers besides ``X-Request-Id`` and ``Spotzee-Version`` (rate-limit
    headers first, then an error's or a handler's own); ``record`` is the idempotency record this request
    holds "in progress", if any."""

    __slots__ = (
        "api_key",
        "applied",
        "content_type",
        "headers",
        "idem_key",
        "kind",
        "method",
        "now",
        "out",
        "payload",
        "plan",
        "record",
        "request_id",
        "route",
        "scope",
        "status",
        "tier",
        "version",
    )

    def __init__(
        self, scope: dict[str, Any], now: float, request_id: str, headers: dict[bytes, bytes], route: _Route
    ) -> None:
        self.scope = scope
        self.now = now
        self.request_id = request_id
        self.method: str = scope["method"]
        self.headers = headers
        self.route = route
        self.kind = "read" if self.method in _READ_METHODS else "write"
        self.version = _CURRENT_B
        self.out: list[tuple[bytes, bytes]] = []
        self.record: Record | None = None
        self.api_key = self.idem_key = self.tier = ""
        self.plan: Plan | None = None
        self.applied = False
        self.status = 500
        self.payload = b""
        self.content_type: bytes | None = None


class ClientAPI:
    """The Spotzee client API under ``/api/client``.

    ``__call__`` runs the pipeline of the module docstring, one small step per stage: :meth:`_start`
    (route), then :meth:`_admit` (:meth:`_authenticate`, :meth:`_check_version`, :meth:`_rate_limit`,
    :meth:`_check_route`, :meth:`_idempotency_key`, :meth:`_inject_failure`), the body, :meth:`_claim`
    (idempotency), :meth:`_handle` (body parse and handler), :meth:`_latency` and :meth:`_remember`
    (idempotency record), :meth:`_drop_after_apply` and :meth:`_respond`. A step that refuses the
    request raises :class:`ApiError`, which :meth:`_fail` turns into the problem+json response.
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Steps are plain methods, awaiting only where I/O happens: a coroutine per step would cost
        # more than most of the steps themselves.
        x = self._start(scope)
        try:
            has_key = self._admit(x)
            body = await _read_body(receive, self.state.config.max_body_bytes) if x.route.takes_body else b""
            if not (has_key and self._claim(x, body)):  # a replay answers with the stored response
                self._handle(x, body)
        except ApiError as exc:
            self._fail(x, exc.status, exc.code, exc.message, exc.headers)
        except _BodyTooLarge:
            self._fail(x, 400, "parameter_invalid_format", "The body is too large.")
        except _Disconnected:
            self._release(x)
            self.state.stats.request(x.route.label, "disconnected")
            return
        except Exception:  # a bug in the emulator: still answer with problem+json, never crash
            log.exception("Spotzee emulator: unexpected error while handling %s", x.route.label)
            self._fail(x, 500, "internal_error", "Unexpected emulator error (see the server log).")
        except BaseException:
            self._release(x)
            raise
        try:
            delay = self._latency()
            if delay > 0:
                await asyncio.sleep(delay)  # the idempotency key stays "in progress" meanwhile
        finally:
            self._remember(x)
        if self._drop_after_apply(x):
            await _drop_connection(send)
            return
        start, body_message = self._respond(x)
        await send(start)
        await send(body_message)

    def _admit(self, x: _Exchange) -> bool:
        """Every check before the body is read, in order. Returns whether the write carries a key."""
        self._authenticate(x)
        self._check_version(x)
        self._rate_limit(x)
        self._check_route(x)
        has_key = self._idempotency_key(x)
        self._inject_failure(x, has_key)
        return has_key

    # -- the steps ---------------------------------------------------------------------------------------
    def _start(self, scope: dict[str, Any]) -> _Exchange:
        """Due async upserts applied, a request id drawn, the caller kind counted, the route resolved."""
        st = self.state
        now = st.clock.now()
        st.drain(now)
        headers: dict[bytes, bytes] = dict(scope["headers"])
        client_type = headers.get(b"x-spotzee-client-type")
        st.stats.client_type(client_type.decode("latin-1")[:64] if client_type else None)
        return _Exchange(scope, now, st.request_id(), headers, resolve(scope["method"], _segments(scope)))

    def _peek_rate(self, x: _Exchange) -> None:
        """The key's rate-limit headers without spending budget (for refusals before the rate limit)."""
        assert x.plan is not None
        x.out = self.state.limiter.check(
            x.api_key, x.kind, x.tier, x.plan, x.now, consume=False, enforce=self.state.config.rate_limits
        ).headers()

    def _authenticate(self, x: _Exchange) -> None:
        """401 without a known Bearer key; 403 for a write with a key that may not write."""
        st = self.state
        auth = x.headers.get(b"authorization", b"")
        key = st.keys.get(auth[7:].strip().decode("latin-1")) if auth[:7].lower() == b"bearer " else None
        if key is None:
            raise ApiError("unauthorized", "The API key is missing or not recognised.")
        x.api_key = key.key
        x.version = key.default_version.encode()
        x.tier, x.plan = st.config.plan_for(key)
        if x.kind == "write" and not key.can("write"):
            self._peek_rate(x)
            raise ApiError("forbidden", "This API key is not allowed to write.")

    def _check_version(self, x: _Exchange) -> None:
        """``Spotzee-Version``, when sent: a supported date (400 otherwise, no budget spent)."""
        asked = x.headers.get(b"spotzee-version")
        if asked is None:
            return
        asked = asked.strip()
        if asked not in _SUPPORTED_B:
            self._peek_rate(x)
            if not is_api_version(asked.decode("latin-1")):
                raise ApiError("parameter_invalid_format", "Spotzee-Version: must be a YYYY-MM-DD date.")
            raise ApiError(
                "version_unsupported",
                f"Spotzee-Version: unsupported; supported: {', '.join(sorted(SUPPORTED_VERSIONS))}.",
            )
        x.version = asked

    def _rate_limit(self, x: _Exchange) -> None:
        """429 during a storm (writes) or over the key's budget; otherwise one request is spent."""
        st = self.state
        assert x.plan is not None
        enforce = st.config.rate_limits
        if x.kind == "write":
            storm = st.faults.storm_retry_after(x.now)
            if storm:
                st.stats.faults["storm_429"] += 1
                self._peek_rate(x)
                x.out[2] = (b"x-ratelimit-reset", str(storm).encode())
                raise ApiError(
                    "rate_limited",
                    "Too many requests; retry after the Retry-After delay.",
                    [(b"retry-after", str(storm).encode())],
                )
        decision = st.limiter.check(x.api_key, x.kind, x.tier, x.plan, x.now, enforce=enforce)
        x.out = decision.headers()
        if not decision.allowed:
            raise ApiError(
                "rate_limited",
                "Too many requests; retry after the Retry-After delay.",
                [(b"retry-after", str(decision.retry_after).encode())],
            )

    def _check_route(self, x: _Exchange) -> None:
        """404 for an unknown path, 405 (with ``Allow``) for a known path and another method."""
        route = x.route
        if route.handler is None:
            if route.allow:
                raise ApiError(
                    "method_not_allowed", f"{x.method} is not allowed here.", [(b"allow", route.allow.encode())]
                )
            raise ApiError("resource_missing", "No such endpoint.")

    def _idempotency_key(self, x: _Exchange) -> bool:
        """Whether a write carries a well-formed ``Idempotency-Key`` (ignored on reads; 400 if malformed)."""
        if x.kind != "write":
            return False
        raw_key = x.headers.get(b"idempotency-key")
        if raw_key is None:
            return False
        try:
            x.idem_key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            x.idem_key = raw_key.decode("latin-1")
        if not x.idem_key.strip() or len(x.idem_key) > MAX_KEY_LENGTH:
            raise ApiError(
                "idempotency_key_invalid", f"Idempotency-Key: must be 1 to {MAX_KEY_LENGTH} characters."
            )
        return True

    def _inject_failure(self, x: _Exchange, has_key: bool) -> None:
        """Injected 5xx, and forced 409 ``idempotency_in_progress``, before anything is applied."""
        st = self.state
        injected = st.faults.server_error()
        if injected:
            if injected == 500:
                st.stats.faults["error_500"] += 1
                raise ApiError("internal_error", "An internal error occurred (injected).")
            st.stats.faults["error_503"] += 1
            raise ApiError(
                "service_unavailable",
                "The service is temporarily unavailable (injected).",
                [(b"retry-after", b"1")],
            )
        if has_key and st.faults.forced_in_progress():
            st.stats.faults["in_progress_409"] += 1
            raise ApiError(
                "idempotency_in_progress",
                "A request with this Idempotency-Key is in progress.",
                [(b"retry-after", b"1")],
            )

    def _claim(self, x: _Exchange, body: bytes) -> bool:
        """Claim the key for this request (method, path and body bytes). ``True``: a replay, whose stored
        response is now in ``x``; ``False``: a new request, holding ``x.record`` until it is answered."""
        st = self.state
        scope = x.scope
        hasher = hashlib.blake2b(
            x.method.encode() + b" " + (scope.get("raw_path") or scope["path"].encode()) + b"\n", digest_size=16
        )
        hasher.update(body)  # (not concatenated: a body is up to a few hundred kB)
        fingerprint = hasher.digest()
        outcome, record = st.idempotency.claim(x.api_key, x.idem_key, fingerprint, x.now)
        if outcome == "mismatch":
            raise ApiError(
                "idempotency_key_mismatch", "This Idempotency-Key was used with a different request body."
            )
        if outcome == "in_progress":
            raise ApiError(
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still in progress.",
                [(b"retry-after", b"1")],
            )
        assert record is not None
        if outcome == "replay":
            st.stats.replays += 1
            x.status, x.payload = record.status, record.body
            x.out.extend(record.headers)
            x.out.append((b"idempotent-replayed", b"true"))
            x.out.append((b"original-request-id", record.request_id.encode()))
            return True
        x.record = record
        return False

    def _handle(self, x: _Exchange, body: bytes) -> None:
        """Parse and validate the body (writes), apply it through the endpoint, keep its response."""
        st = self.state
        route = x.route
        req = Request(route.label, x.now, x.idem_key or None, x.scope.get("query_string", b""), route.user_id)
        if route.takes_body:
            items = parse_items(body)
            st.stats.items_received[route.label] += len(items)
            status, result, extra = route.handler(st, items, req)
        else:
            status, result, extra = route.handler(st, req)
        x.status = status
        x.applied = x.kind == "write"
        x.out.extend(extra)
        if result is not None:
            x.payload = dump_json(result)
            x.content_type = _JSON
            x.out.append((b"content-type", _JSON))

    def _fail(
        self, x: _Exchange, status: int, code: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """The response becomes a problem+json error (the rate-limit headers already in ``x.out`` stay)."""
        x.status = status
        x.payload = problem_body(code, message, x.request_id)
        x.out.extend(headers)
        x.out.append((b"content-type", PROBLEM_CONTENT_TYPE))

    def _release(self, x: _Exchange) -> None:
        if x.record is not None:
            self.state.idempotency.release(x.api_key, x.idem_key, x.record)

    def _latency(self) -> float:
        """Seconds of injected latency for this response (0: none)."""
        delay = self.state.faults.latency_seconds()
        if delay > 0:
            self.state.stats.faults["latency"] += 1
        return delay

    def _remember(self, x: _Exchange) -> None:
        """A 2xx outcome is stored for replay; any other outcome frees the key."""
        record = x.record
        if record is None:
            return
        st = self.state
        if 200 <= x.status < 300:
            stored = [(b"content-type", x.content_type)] if x.content_type else []
            st.idempotency.complete(
                x.api_key, x.idem_key, record, x.status, stored, x.payload, x.request_id, st.clock.now()
            )
        else:
            st.idempotency.release(x.api_key, x.idem_key, record)

    def _drop_after_apply(self, x: _Exchange) -> bool:
        """Whether to cut the connection now, after a successful write was applied (and remembered)."""
        st = self.state
        if x.applied and 200 <= x.status < 300 and st.faults.drop_after_apply():
            st.stats.faults["drop_after_apply"] += 1
            st.stats.request(x.route.label, "dropped")
            return True
        return False

    def _unspent_rate_headers(self, x: _Exchange) -> list[tuple[bytes, bytes]]:
        """Rate-limit headers for a response refused before any budget was looked at: the key's budget,
        untouched; without a (known) key, the emulator's plan with nothing spent (nobody's budget)."""
        st = self.state
        if x.plan is None:
            x.tier = st.config.plan
            x.plan = st.config.plans[x.tier]
            return st.limiter.check(x.api_key, x.kind, x.tier, x.plan, x.now, enforce=False).headers()
        return st.limiter.check(
            x.api_key, x.kind, x.tier, x.plan, x.now, consume=False, enforce=st.config.rate_limits
        ).headers()

    def _respond(self, x: _Exchange) -> tuple[dict[str, Any], dict[str, Any]]:
        """The two ASGI messages of the response (counted in the stats here). Every response carries the
        ``X-RateLimit-*`` headers, first after ``X-Request-Id`` and ``Spotzee-Version``."""
        status = x.status
        self.state.stats.request(x.route.label, status)
        headers = [(b"x-request-id", x.request_id.encode()), (b"spotzee-version", x.version)]
        if not x.out or x.out[0][0] != b"x-ratelimit-limit":  # 401, or an emulator bug before the limiter
            headers.extend(self._unspent_rate_headers(x))
        headers.extend(x.out)
        if status != 204:
            headers.append((b"content-length", str(len(x.payload)).encode()))
        return (
            {"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": x.payload if status != 204 else b""},
        )


class ConnectionDropped(Exception):
    """Raised (fallback path only) to make the server abort a response mid-way."""


async def _drop_connection(send: Any) -> None:
    """Close the connection without a response. Uses the server's transport when the ASGI server
    exposes it (uvicorn does); otherwise starts a response that can never complete."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        # let the server notice the loss before the app returns, so it does not try to send a 500
        for _ in range(5):
            await asyncio.sleep(0)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"1024"), (b"content-type", _JSON)],
        }
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionDropped


# -- admin API ---------------------------------------------------------------------------------------------
def _problem(status: int, message: str) -> Response:
    code = {400: "parameter_invalid_format", 404: "resource_missing", 405: "method_not_allowed"}.get(
        status, "internal_error"
    )
    return Response(
        problem_body(code, message, None), status_code=status, media_type="application/problem+json"
    )


async def _json_body(request: StarletteRequest) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body must be a JSON object")
    return data


def _page_params(request: StarletteRequest, default_limit: int = 1000) -> tuple[int, int | None]:
    try:
        offset = int(request.query_params.get("offset", "0"))
        limit_text = request.query_params.get("limit")
        limit = default_limit if limit_text is None else int(limit_text)
    except ValueError:
        raise HTTPException(400, "offset and limit must be integers") from None
    if offset < 0 or limit < 0:
        raise HTTPException(400, "offset and limit must be >= 0")
    return offset, limit


class _AdminJSON(JSONResponse):
    """The admin API's answers, written as the API's own are (:func:`dump_json`): escaped to ASCII, so
    whatever text a contact holds (a lone surrogate included) is answered, never a 500."""

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def build_admin_routes(state: EmulatorState) -> list[Route]:
    st = state

    async def health(request: StarletteRequest) -> Response:
        return _AdminJSON({"status": "ok"})

    async def stats(request: StarletteRequest) -> Response:
        return _AdminJSON(st.stats.snapshot())

    async def summary(request: StarletteRequest) -> Response:
        st.drain(st.clock.now())
        return _AdminJSON(st.summary())

    async def ledger_events(request: StarletteRequest) -> Response:
        offset, limit = _page_params(request)
        qp = request.query_params
        total, rows = st.ledger.events(
            offset,
            limit,
            name=qp.get("name"),
            external_id=qp.get("external_id"),
            anonymous_id=qp.get("anonymous_id"),
            duplicates_only=qp.get("duplicates") in ("1", "true"),
        )
        return _AdminJSON({"total": total, "offset": offset, "limit": limit, "events": rows})

    async def ledger_contacts(request: StarletteRequest) -> Response:
        st.drain(st.clock.now())
        offset, limit = _page_params(request)
        qp = request.query_params
        store = st.contacts
        if "external_id" in qp or "anonymous_id" in qp or "id" in qp:
            c = None
            if "id" in qp:
                try:
                    c = store.by_id.get(int(qp["id"]))
                except ValueError:
                    raise HTTPException(400, "id must be an integer") from None
            elif "external_id" in qp:
                c = store.by_external.get(qp["external_id"])
            else:
                c = store.by_anonymous.get(qp["anonymous_id"])
            rows = [st.contact_view(c)] if c is not None else []
            total = len(rows)
        else:
            total = len(store)
            rows = []
            for i, c in enumerate(store.by_id.values()):
                if i < offset:
                    continue
                if limit is not None and len(rows) >= limit:
                    break
                rows.append(st.contact_view(c))
        return _AdminJSON({"total": total, "offset": offset, "limit": limit, "contacts": rows})

    async def ledger_subscriptions(request: StarletteRequest) -> Response:
        offset, limit = _page_params(request)
        qp = request.query_params
        try:
            contact_id = int(qp["contact_id"]) if "contact_id" in qp else None
            subscription_id = int(qp["subscription_id"]) if "subscription_id" in qp else None
        except ValueError:
            raise HTTPException(400, "contact_id and subscription_id must be integers") from None
        total, toggles = st.ledger.toggles(
            offset, limit, contact_id=contact_id, subscription_id=subscription_id
        )
        states = []
        for c in st.contacts.by_id.values():
            if not c.subscriptions or (contact_id is not None and c.id != contact_id):
                continue
            for sid, current in c.subscriptions.items():
                if subscription_id is None or sid == subscription_id:
                    states.append(
                        {
                            "contact_id": c.id,
                            "external_id": c.external_id,
                            "anonymous_id": c.anonymous_id,
                            "subscription_id": sid,
                            "state": current,
                        }
                    )
        return _AdminJSON(
            {"total": total, "offset": offset, "limit": limit, "toggles": toggles, "states": states}
        )

    async def get_faults(request: StarletteRequest) -> Response:
        return _AdminJSON(st.faults.view(st.clock.now()))

    async def set_faults(request: StarletteRequest) -> Response:
        changes = await _json_body(request)
        try:
            st.faults.update(st.clock.now(), **changes)
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return _AdminJSON(st.faults.view(st.clock.now()))

    async def get_config(request: StarletteRequest) -> Response:
        return _AdminJSON(st.config.public_dict())

    async def set_config(request: StarletteRequest) -> Response:
        changes = await _json_body(request)
        try:
            st.configure(**changes)
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return _AdminJSON(st.config.public_dict())

    async def clock(request: StarletteRequest) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            try:
                st.clock.advance(body.get("advance_seconds", 0))
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
        now = st.clock.now()
        return _AdminJSON({"now": iso(now), "epoch_seconds": now, "offset_seconds": st.clock.offset})

    async def reset(request: StarletteRequest) -> Response:
        body = await _json_body(request)
        config = None
        if body.get("config") is not None:
            try:
                config = EmulatorConfig.from_dict(body["config"])
            except (TypeError, ValueError) as exc:
                raise HTTPException(400, str(exc)) from None
        st.reset(config)
        return _AdminJSON({"status": "reset", "config": st.config.public_dict()})

    p = ADMIN_PREFIX
    return [
        Route(f"{p}/health", health, methods=["GET"]),
        Route(f"{p}/stats", stats, methods=["GET"]),
        Route(f"{p}/ledger/summary", summary, methods=["GET"]),
        Route(f"{p}/ledger/events", ledger_events, methods=["GET"]),
        Route(f"{p}/ledger/contacts", ledger_contacts, methods=["GET"]),
        Route(f"{p}/ledger/subscriptions", ledger_subscriptions, methods=["GET"]),
        Route(f"{p}/faults", get_faults, methods=["GET"]),
        Route(f"{p}/faults", set_faults, methods=["POST"]),
        Route(f"{p}/config", get_config, methods=["GET"]),
        Route(f"{p}/config", set_config, methods=["POST"]),
        Route(f"{p}/clock", clock, methods=["GET", "POST"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
    ]


class EmulatorApp:
    """The whole emulator: the client API plus the admin API, over one :class:`EmulatorState`."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.state = EmulatorState(config)
        self.client_api = ClientAPI(self.state)

        async def http_exception(request: StarletteRequest, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            response = _problem(exc.status_code, str(exc.detail))
            if exc.headers:
                response.headers.update(exc.headers)
            return response

        self.admin = Starlette(
            routes=build_admin_routes(self.state),
            exception_handlers={HTTPException: http_exception},
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(API_PREFIX) and (len(path) == len(API_PREFIX) or path[len(API_PREFIX)] == "/"):
                await self.client_api(scope, receive, send)
                return
        await self.admin(scope, receive, send)


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """A fresh emulator ASGI app (serve it with any ASGI server; ``run_emulator`` does it for you)."""
    return EmulatorApp(config)

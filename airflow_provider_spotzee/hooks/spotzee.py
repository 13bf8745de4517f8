"""SpotzeeHook: the connection and every call to Spotzee.

Writes go through one send path (:mod:`airflow_provider_spotzee.send`): validated, chunked into ≤ 100
items, keyed with a deterministic ``Idempotency-Key``, paced below the key's budget, several batches in
flight, retried safely. Sync methods for operators and ``@task`` code; ``a``-prefixed async methods for
triggers.

Which contact a ``userId`` names
--------------------------------
Spotzee's ``/users/{userId}`` routes accept a numeric contact id *or* an external_id ("the route
resolves both"). For an external_id made of digits, such as ``"1024"`` (CRMs often have those), the
two readings collide: the server may take it for contact *id* 1024, a different person. The hook is
correct under either reading:

- ``user_id`` (a ``str``) is always an **external_id**; ``contact_id`` (an ``int``) is always Spotzee's
  **numeric id**. An ``int`` passed as ``user_id`` still means the numeric id, with a
  ``DeprecationWarning`` (use ``contact_id=``); ``bool`` and empty values are refused.
- Writes never put a numeric-looking external_id in a path. ``update_user_subscriptions("1024", ...)``
  sends the toggles through ``POST /subscriptions/batch``, whose body names ``external_id``; other
  external_ids use ``PATCH /users/{external_id}/subscriptions`` as before. With ``contact_id=`` the
  contact is read first (and accepted only if the answer's ``id`` is that id), then toggled by its
  external_id (or anonymous_id) the same way.
- Reads accept a contact only if it is the one asked for: ``get_user("1024")`` reads
  ``GET /users/1024`` and keeps the answer only if its ``external_id`` is ``"1024"``; otherwise (the
  server read the digits as a numeric id) it searches ``GET /users?q=1024`` (every page) for the exact
  external_id, and returns ``None`` when nobody has it. The contact sensor and trigger use the same
  lookup, so they never report another person as visible.
- ``get_user(contact_id=1024)`` keeps an answer only if its ``id`` is 1024. If the server reads
  ``/users/1024`` as another contact's external_id, that numeric id cannot be addressed at all, and a
  :class:`~airflow_provider_spotzee.exceptions.SpotzeeAPIError` with code ``contact_id_ambiguous`` says
  to use the external_id.

"Numeric-looking" means what a lenient integer parser accepts: digits, optionally signed, with ``_``
separators or surrounding blanks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import math
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from functools import cached_property
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from pydantic import ValidationError

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.batching import check_batch_size, idempotency_key
from airflow_provider_spotzee.config import ClientConfig, client_config_from_connection
from airflow_provider_spotzee.exceptions import (
    SpotzeeAPIError,
    SpotzeeConfigError,
    SpotzeeError,
    SpotzeeRetriesExhausted,
)
from airflow_provider_spotzee.models import (
    Contact,
    ItemFailure,
    SendResult,
    SubscriptionChange,
    SubscriptionToggle,
)
from airflow_provider_spotzee.send import (
    EVENTS,
    SUBSCRIPTIONS_BATCH,
    USERS_ASYNC,
    USERS_BATCH,
    Endpoint,
    send_records,
)
from airflow_provider_spotzee.transport import SpotzeeTransport, api_error, wrong_base_url
from airflow_provider_spotzee.visibility import (
    fetch_by_contact_id,
    fetch_user,  # noqa: F401  (its old home: still importable)
    find_by_external_id,
    looks_numeric,
)

T = TypeVar("T")



def _namespace(given: str | None) -> str:
    """Without a namespace every call gets its own: retries inside the call reuse their keys, but two
    separate calls with the same body are two sends (an event sent twice on purpose is recorded twice).
    Pass a stable namespace (operators do: dag/task/data interval/map index) to make calls replay-safe."""
    return given or f"call-{uuid.uuid4()}"


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop.

    The coroutine never runs inside an ``except`` block, so what it raises is not chained to
    ``RuntimeError: no running event loop`` (the probe's own exception)."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:
        return asyncio.run(make())  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()  # type: ignore[arg-type]


def _fraction(name: str, value: float | None) -> float | None:
    if value is not None and not 0 < value <= 1:
        raise SpotzeeConfigError(f"{name} must be in (0, 1], got {value!r}")
    return value


class SpotzeeHook(BaseHook):
    """Interact with the Spotzee client API.

    :param spotzee_conn_id: Airflow connection of type ``spotzee`` (password = ``sk_…`` key, host = base
        URL, extras ``api_version``, ``plan``, ``requests_per_second``, ``timeout``, ``max_in_flight``).
    :param requests_per_second: override the write budget for this hook (e.g. a share of the key's budget
        when several workers use the same key).
    :param max_in_flight: override the number of batches in flight.
    :param rate_share: use at most this fraction of the write budget, always (e.g. to leave room for
        another application on the same key).
    :param fair_share: this worker's fair part of the key when it shares the key with others
        (``1/N`` for N partitions). The pacer takes at least that much while the others are busy and
        the whole budget when they are not; see docs/performance.md.
    """

    conn_name_attr = "spotzee_conn_id"
    default_conn_name = "spotzee_default"
    conn_type = "spotzee"
    hook_name = "Spotzee"

    def __init__(
        self,
        spotzee_conn_id: str = default_conn_name,
        *,
        requests_per_second: float | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        rate_share: float | None = None,
        fair_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spotzee_conn_id = spotzee_conn_id
        self._overrides = {"requests_per_second": requests_per_second, "max_in_flight": max_in_flight,
                           "timeout": timeout}
        self.rate_share = _fraction("rate_share", rate_share)
        self.fair_share = _fraction("fair_share", fair_share)
        self._async_config: ClientConfig | None = None

    # --------------------------------------------------------------------------------------- config

    @cached_property
    def config(self) -> ClientConfig:
        """The resolved client configuration (read lazily; the key is registered with the masker)."""
        return self._configure(self.get_connection(self.spotzee_conn_id))

    def get_conn(self) -> ClientConfig:
        return self.config

    async def aget_config(self) -> ClientConfig:
        """Async connection lookup, for triggers (never blocks the triggerer's event loop)."""
        if self._async_config is None:
            from airflow.providers.common.compat.connection import get_async_connection

            self._async_config = self._configure(await get_async_connection(self.spotzee_conn_id, self))
        return self._async_config

    def _configure(self, conn: Any) -> ClientConfig:
        if conn.password:
            mask_secret(conn.password)
        config = client_config_from_connection(conn, **self._overrides)
        if self.rate_share is not None:
            config = dataclasses.replace(config, requests_per_second=config.requests_per_second * self.rate_share,
                                         max_in_flight=max(2, math.ceil(config.max_in_flight * self.rate_share)))
        if self.fair_share is not None:
            config = dataclasses.replace(config, fair_share=self.fair_share)
        return config

    # ----------------------------------------------------------------------------------------- writes

    def upsert_users(
        self,
        users: Iterable[Any],
        *,
        mode: Literal["sync", "async"] = "sync",
        idempotency_namespace: str | None = None,
        batch_size: int = MAX_BATCH_SIZE,
        collect_contacts: bool = False,
        on_commit: Callable[[int, SendResult], None] | None = None,
    ) -> SendResult:
        """Upsert contacts: ``sync`` → ``POST /users/batch`` (per-item results), ``async`` → ``PATCH /users``.

        ``collect_contacts=True`` keeps the returned contacts in the result (memory grows with the input).
        """
        if mode not in ("sync", "async"):
            raise SpotzeeConfigError(f"mode must be 'sync' or 'async', got {mode!r}")
        endpoint = USERS_BATCH if mode == "sync" else USERS_ASYNC
        return self.send(endpoint, users, idempotency_namespace=idempotency_namespace, batch_size=batch_size,
                         collect_contacts=collect_contacts, on_commit=on_commit)

    def track_events(self, events: Iterable[Any], *, idempotency_namespace: str | None = None,
                     batch_size: int = MAX_BATCH_SIZE, on_commit: Callable[[int, SendResult], None] | None = None) -> SendResult:
        """Record events (``POST /events``)."""
        return self.send(EVENTS, events, idempotency_namespace=idempotency_namespace, batch_size=batch_size,
                         on_commit=on_commit)

    def set_subscriptions(self, toggles: Iterable[Any], *, idempotency_namespace: str | None = None,
                          batch_size: int = MAX_BATCH_SIZE,
                          on_commit: Callable[[int, SendResult], None] | None = None) -> SendResult:
        """Toggle subscription states across contacts (``POST /subscriptions/batch``)."""
        return self.send(SUBSCRIPTIONS_BATCH, toggles, idempotency_namespace=idempotency_namespace,
                         batch_size=batch_size, on_commit=on_commit)

    def send(self, endpoint: Endpoint, records: Iterable[Any], *, idempotency_namespace: str | None = None,
             batch_size: int = MAX_BATCH_SIZE, collect_contacts: bool = False,
             on_commit: Callable[[int, SendResult], None] | None = None, start_index: int = 0,
             on_failure: Callable[[ItemFailure, Any], None] | None = None) -> SendResult:
        """The one send path, for any batch endpoint spec (see :func:`~airflow_provider_spotzee.send.send_records`).

        The hook changes nothing process-wide (no ``gc.freeze()``, no logger levels): what the task
        process does with its collector is the caller's choice (see docs/performance.md).
        """
        config = self.config
        return run_sync(lambda: self.asend(endpoint, records, idempotency_namespace=idempotency_namespace,
                                           batch_size=batch_size, collect_contacts=collect_contacts,
                                           on_commit=on_commit, start_index=start_index, config=config,
                                           on_failure=on_failure))

    async def asend(self, endpoint: Endpoint, records: Iterable[Any], *, idempotency_namespace: str | None = None,
                    batch_size: int = MAX_BATCH_SIZE, collect_contacts: bool = False,
                    on_commit: Callable[[int, SendResult], None] | None = None, start_index: int = 0,
                    config: ClientConfig | None = None,
                    on_failure: Callable[[ItemFailure, Any], None] | None = None) -> SendResult:
        check_batch_size(batch_size)
        config = config or await self.aget_config()
        async with SpotzeeTransport(config) as transport:
            return await send_records(transport, endpoint, records,
                                      namespace=_namespace(idempotency_namespace),
                                      batch_size=batch_size, collect_contacts=collect_contacts,
                                      on_commit=on_commit, start_index=start_index, on_failure=on_failure)

    def update_user_subscriptions(self, user_id: str | int | None = None, toggles: Iterable[Any] = (), *,
                                  contact_id: int | None = None,
                                  idempotency_namespace: str | None = None) -> Contact:
        """Set one contact's subscription states, ≤ 100 toggles; returns the refreshed contact.

        Address the contact by ``user_id`` (its external_id, a ``str``) or by ``contact_id`` (Spotzee's
        numeric id). An external_id that is not numeric goes to ``PATCH /users/{external_id}/subscriptions``;
        a numeric-looking one (``"1024"``) to ``POST /subscriptions/batch``, which names the external_id in
        the body, so it can never toggle contact *id* 1024 instead (see the module docstring). Invalid
        toggles raise :class:`SpotzeeConfigError`; an unknown contact :class:`SpotzeeAPIError`
        (``resource_missing``).
        """
        external_id, cid = _who(user_id, contact_id)
        config = self.config
        return run_sync(lambda: self.aupdate_user_subscriptions(external_id, toggles, contact_id=cid,
                                                                 idempotency_namespace=idempotency_namespace,
                                                                 config=config))

    async def aupdate_user_subscriptions(self, user_id: str | int | None = None, toggles: Iterable[Any] = (), *,
                                         contact_id: int | None = None,
                                         idempotency_namespace: str | None = None,
                                         config: ClientConfig | None = None) -> Contact:
        external_id, cid = _who(user_id, contact_id)
        try:
            items = [t if isinstance(t, SubscriptionChange) else SubscriptionChange.model_validate(t) for t in toggles]
        except ValidationError as exc:
            raise SpotzeeConfigError(f"invalid subscription toggle: {exc.errors(include_input=False)[0]['msg']}") from None
        if not 1 <= len(items) <= MAX_BATCH_SIZE:
            raise SpotzeeConfigError(f"update_user_subscriptions takes 1 to {MAX_BATCH_SIZE} toggles, got {len(items)}")
        namespace = _namespace(idempotency_namespace)
        async with SpotzeeTransport(config or await self.aget_config()) as transport:
            anonymous_id: str | None = None
            if cid is not None:  # find out who it is, then toggle by an identity no path can misread
                target = await fetch_by_contact_id(transport, cid)
                if target is None:
                    raise SpotzeeAPIError(f"Spotzee has no contact id {cid}", status=404, code="resource_missing")
                external_id, anonymous_id = target.external_id, target.anonymous_id
            if external_id is not None and not looks_numeric(external_id):
                contact = await _patch_subscriptions(transport, external_id, items, namespace)
            else:
                await _batch_subscriptions(transport, external_id, anonymous_id, items, namespace)
                found = (await fetch_by_contact_id(transport, cid) if cid is not None
                         else await find_by_external_id(transport, external_id or ""))
                if found is None:
                    raise SpotzeeAPIError(f"Spotzee accepted the subscription update for contact "
                                          f"{external_id or cid!r} but cannot find the contact", code="resource_missing")
                contact = found
        if (cid is not None and contact.id != cid) or (cid is None and contact.external_id != external_id):
            raise SpotzeeAPIError("Spotzee answered the subscription update with a different contact",
                                  code="response_invalid")
        return contact

    # ------------------------------------------------------------------------------------------ reads

    def get_user(self, user_id: str | int | None = None, *, contact_id: int | None = None) -> Contact | None:
        """One contact, or ``None`` if Spotzee does not have it (yet).

        ``user_id`` is an external_id (``str``): only the contact whose external_id is exactly that is
        returned, never the contact whose numeric id happens to be the same digits. ``contact_id`` is
        Spotzee's numeric id. (An ``int`` ``user_id`` still means a numeric id, with a
        DeprecationWarning: pass ``contact_id=``.)
        """
        external_id, cid = _who(user_id, contact_id)
        config = self.config
        return run_sync(lambda: self.aget_user(external_id, contact_id=cid, config=config))

    async def aget_user(self, user_id: str | int | None = None, *, contact_id: int | None = None,
                        config: ClientConfig | None = None) -> Contact | None:
        external_id, cid = _who(user_id, contact_id)
        async with SpotzeeTransport(config or await self.aget_config()) as transport:
            if cid is not None:
                return await fetch_by_contact_id(transport, cid)
            return await find_by_external_id(transport, external_id or "")

    def iter_users(self, *, q: str | None = None, sort: str | None = None, page_size: int = MAX_BATCH_SIZE,
                   max_items: int | None = None) -> Iterator[Contact]:
        """Every contact (``GET /users`` with cursor pagination), optionally filtered by ``q``.

        One connection serves every page: the pages are fetched on a private event loop that lives as
        long as the iteration.
        """
        check_batch_size(page_size)
        config = self.config
        loop = asyncio.new_event_loop()
        transport = SpotzeeTransport(config)
        try:
            cursor: str | None = None
            seen = 0
            while True:
                page, cursor = loop.run_until_complete(_page(transport, q, sort, page_size, cursor))
                for contact in page:
                    yield contact
                    seen += 1
                    if max_items is not None and seen >= max_items:
                        return
                if cursor is None:
                    return
        finally:
            loop.run_until_complete(transport.aclose())
            loop.close()

    async def aiter_users(self, *, q: str | None = None, sort: str | None = None,
                          page_size: int = MAX_BATCH_SIZE) -> AsyncIterator[Contact]:
        check_batch_size(page_size)
        async with SpotzeeTransport(await self.aget_config()) as transport:
            cursor: str | None = None
            while True:
                page, cursor = await _page(transport, q, sort, page_size, cursor)
                for contact in page:
                    yield contact
                if cursor is None:
                    return

    # ----------------------------------------------------------------------------------- connection

    def test_connection(self) -> tuple[bool, str]:
        """A cheap authenticated read (``GET /users?limit=1``). Never raises."""
        try:
            config = dataclasses.replace(self.config, max_retries=1, max_wait=5.0)

            async def probe() -> str:
                async with SpotzeeTransport(config) as transport:
                    response = await transport.request("GET", "/users", params={"limit": 1})
                if response.status == 404:
                    raise wrong_base_url("GET", "/users", response, config.base_url)
                if response.status >= 300:
                    raise api_error(response, "Spotzee answered the connection test with an error")
                return (f"Connected to Spotzee at {config.base_url} (API version "
                        f"{response.headers.get('spotzee-version', '?')}, plan {response.headers.get('x-ratelimit-tier', '?')})")

            return True, run_sync(probe)
        except SpotzeeError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - test_connection must never raise
            return False, f"Connection test failed: {type(exc).__name__}"


def _who(user_id: str | int | None, contact_id: int | None) -> tuple[str | None, int | None]:
    """``(external_id, contact_id)``, exactly one of them set. A ``str`` ``user_id`` is always an
    external_id; an ``int`` one is the numeric id (the old spelling, deprecated: use ``contact_id=``)."""
    if user_id is not None and contact_id is not None:
        raise SpotzeeConfigError("pass user_id (an external_id) or contact_id (Spotzee's numeric id), not both")
    if contact_id is not None:
        if isinstance(contact_id, bool) or not isinstance(contact_id, int) or contact_id < 1:
            raise SpotzeeConfigError(f"contact_id must be a positive integer, got {contact_id!r}")
        return None, contact_id
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        warnings.warn(
            "Passing an int user_id is deprecated: it is read as Spotzee's numeric contact id; pass "
            "contact_id= for that (a str user_id is always an external_id)", DeprecationWarning, stacklevel=3)
        return _who(None, user_id)
    if not isinstance(user_id, str):
        raise SpotzeeConfigError("pass user_id (the contact's external_id, a str) or contact_id (Spotzee's numeric id)")
    external_id = user_id.strip()
    if not external_id:
        raise SpotzeeConfigError("user_id must not be empty")
    return external_id, None


async def _patch_subscriptions(transport: SpotzeeTransport, external_id: str, items: list[SubscriptionChange],
                               namespace: str) -> Contact:
    """``PATCH /users/{external_id}/subscriptions``: only for external_ids no path can read as a number."""
    path = f"/users/{quote(external_id, safe='')}/subscriptions"
    body = json.dumps([t.model_dump() for t in items], separators=(",", ":")).encode()
    key = idempotency_key(namespace, "PATCH", path, body)
    response = await transport.request("PATCH", path, body=body, idempotency_key=key)
    if response.status == 404:
        await transport.confirm_base_url()  # (a wrong base URL 404s too)
        raise api_error(response, f"Spotzee has no contact {external_id!r}")
    if response.status >= 300:
        raise api_error(response, f"Spotzee rejected the subscription update for contact {external_id!r}")
    return Contact.model_validate(response.json())


async def _batch_subscriptions(transport: SpotzeeTransport, external_id: str | None, anonymous_id: str | None,
                               items: list[SubscriptionChange], namespace: str) -> None:
    """The same toggles through ``POST /subscriptions/batch``, which names the contact in the body."""
    who = external_id if external_id is not None else anonymous_id
    try:
        records = [SubscriptionToggle(subscription_id=t.subscription_id, state=t.state, external_id=external_id,
                                      anonymous_id=None if external_id is not None else anonymous_id)
                   for t in items]
    except ValidationError as exc:
        raise SpotzeeConfigError(f"invalid contact identity: {exc.errors(include_input=False)[0]['msg']}") from None
    result = await send_records(transport, SUBSCRIPTIONS_BATCH, records, namespace=namespace)
    if not result.failures:
        return
    failure = result.failures[0]
    if failure.code == "resource_missing":
        raise SpotzeeAPIError(f"Spotzee has no contact {who!r}", status=404, code="resource_missing")
    if failure.stage == "dead_lettered":
        raise SpotzeeRetriesExhausted(f"Spotzee POST /subscriptions/batch kept failing for contact {who!r}",
                                      code=failure.code, last_error=failure.message)
    raise SpotzeeAPIError(f"Spotzee rejected the subscription update for contact {who!r}: {failure.message}",
                          code=failure.code)


async def _page(transport: SpotzeeTransport, q: str | None, sort: str | None, limit: int,
                cursor: str | None) -> tuple[list[Contact], str | None]:
    params = {k: v for k, v in {"limit": limit, "q": q, "sort": sort, "cursor": cursor}.items() if v is not None}
    response = await transport.request("GET", "/users", params=params)
    if response.status == 404:
        raise wrong_base_url("GET", "/users", response, transport.config.base_url)
    if response.status >= 300:
        raise api_error(response, "Spotzee could not list contacts")
    payload = response.json()
    return [Contact.model_validate(c) for c in payload.get("results") or []], payload.get("nextCursor")



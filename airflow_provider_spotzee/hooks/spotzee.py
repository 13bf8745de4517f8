"""SpotzeeHook: the connection and every call to Spotzee.

Writes go through one send path (:mod:`airflow_provider_spotzee.send`): validated, chunked into ≤ 100
items, keyed with a deterministic ``Idempotency-Key``, paced below the key's budget, several batches in
flight, retried safely. Sync methods for operators and ``@task`` code; ``a``-prefixed async methods for
triggers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from functools import cached_property
from typing import Any, Literal, TypeVar

from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from pydantic import ValidationError

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.batching import check_batch_size, idempotency_key
from airflow_provider_spotzee.config import ClientConfig, client_config_from_connection
from airflow_provider_spotzee.exceptions import SpotzeeConfigError, SpotzeeError
from airflow_provider_spotzee.models import Contact, ItemFailure, SendResult, SubscriptionChange
from airflow_provider_spotzee.send import (
    EVENTS,
    SUBSCRIPTIONS_BATCH,
    USERS_ASYNC,
    USERS_BATCH,
    Endpoint,
    send_records,
)
from airflow_provider_spotzee.transport import SpotzeeTransport, api_error
from airflow_provider_spotzee.visibility import fetch_user, user_path

T = TypeVar("T")



def _namespace(given: str | None) -> str:
    """Without a namespace every call gets its own: retries inside the call reuse their keys, but two
    separate calls with the same body are two sends (an event sent twice on purpose is recorded twice).
    Pass a stable namespace (operators do: dag/task/data interval/map index) to make calls replay-safe."""
    return given or f"call-{uuid.uuid4()}"


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
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

    def update_user_subscriptions(self, user_id: str | int, toggles: Iterable[Any], *,
                                  idempotency_namespace: str | None = None) -> Contact:
        """Set one contact's subscription states (``PATCH /users/{userId}/subscriptions``), ≤ 100 toggles.

        ``user_id`` is the numeric id or the external_id. Returns the refreshed contact. Invalid toggles
        raise :class:`SpotzeeConfigError`; an unknown contact :class:`SpotzeeAPIError` (``resource_missing``).
        """
        config = self.config
        return run_sync(lambda: self.aupdate_user_subscriptions(user_id, toggles,
                                                                 idempotency_namespace=idempotency_namespace,
                                                                 config=config))

    async def aupdate_user_subscriptions(self, user_id: str | int, toggles: Iterable[Any], *,
                                         idempotency_namespace: str | None = None,
                                         config: ClientConfig | None = None) -> Contact:
        try:
            items = [t if isinstance(t, SubscriptionChange) else SubscriptionChange.model_validate(t) for t in toggles]
        except ValidationError as exc:
            raise SpotzeeConfigError(f"invalid subscription toggle: {exc.errors(include_input=False)[0]['msg']}") from None
        if not 1 <= len(items) <= MAX_BATCH_SIZE:
            raise SpotzeeConfigError(f"update_user_subscriptions takes 1 to {MAX_BATCH_SIZE} toggles, got {len(items)}")
        path = f"/users/{user_path(user_id)}/subscriptions"
        body = json.dumps([t.model_dump() for t in items], separators=(",", ":")).encode()
        key = idempotency_key(_namespace(idempotency_namespace), "PATCH", path, body)
        async with SpotzeeTransport(config or await self.aget_config()) as transport:
            response = await transport.request("PATCH", path, body=body, idempotency_key=key)
        if response.status == 404:
            raise api_error(response, f"Spotzee has no contact {user_id!r}")
        if response.status >= 300:
            raise api_error(response, f"Spotzee rejected the subscription update for contact {user_id!r}")
        return Contact.model_validate(response.json())

    # ------------------------------------------------------------------------------------------ reads

    def get_user(self, user_id: str | int) -> Contact | None:
        """One contact by numeric id or external_id; ``None`` if Spotzee does not have it (yet)."""
        config = self.config
        return run_sync(lambda: self.aget_user(user_id, config=config))

    async def aget_user(self, user_id: str | int, *, config: ClientConfig | None = None) -> Contact | None:
        async with SpotzeeTransport(config or await self.aget_config()) as transport:
            return await fetch_user(transport, user_id)

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
                if response.status >= 300:
                    raise api_error(response, "Spotzee answered the connection test with an error")
                return (f"Connected to Spotzee at {config.base_url} (API version "
                        f"{response.headers.get('spotzee-version', '?')}, plan {response.headers.get('x-ratelimit-tier', '?')})")

            return True, run_sync(probe)
        except SpotzeeError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - test_connection must never raise
            return False, f"Connection test failed: {type(exc).__name__}"


async def _page(transport: SpotzeeTransport, q: str | None, sort: str | None, limit: int,
                cursor: str | None) -> tuple[list[Contact], str | None]:
    params = {k: v for k, v in {"limit": limit, "q": q, "sort": sort, "cursor": cursor}.items() if v is not None}
    response = await transport.request("GET", "/users", params=params)
    if response.status >= 300:
        raise api_error(response, "Spotzee could not list contacts")
    payload = response.json()
    return [Contact.model_validate(c) for c in payload.get("results") or []], payload.get("nextCursor")



"""The emulator's whole mutable state and the operations that apply writes to it.

Everything runs on the server's single event loop, so no locks are needed: one request's apply step
never interleaves with another's.
"""

from __future__ import annotations

import heapq
import itertools
import os
from typing import Any

from airflow_provider_spotzee.testing.clock import Clock, iso
from airflow_provider_spotzee.testing.config import EmulatorConfig, FaultConfig
from airflow_provider_spotzee.testing.contacts import Contact, ContactStore
from airflow_provider_spotzee.testing.faults import FaultInjector
from airflow_provider_spotzee.testing.idempotency import IdempotencyStore
from airflow_provider_spotzee.testing.ledger import Ledger
from airflow_provider_spotzee.testing.ratelimit import RateLimiter
from airflow_provider_spotzee.testing.stats import Stats
from airflow_provider_spotzee.validation import FieldError

#: settings ``POST /__emulator/config`` may change at run time
CONFIGURABLE = frozenset(
    {"plan", "async_delay_seconds", "rate_limits", "plans", "idempotency_ttl_seconds", "numeric_user_ids_first"}
)

Upsert = tuple[str | None, str | None, dict[str, Any], dict[str, Any] | None]


class EmulatorState:
    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.clock = Clock()
        self._rid_prefix = os.urandom(4).hex()
        self._rid = itertools.count(1)
        self._build(config or EmulatorConfig())

    def _build(self, config: EmulatorConfig, faults: FaultConfig | None = None) -> None:
        self.config = config
        self.keys = {k.key: k for k in config.api_keys}
        self.contacts = ContactStore()
        self.ledger = Ledger()
        self.limiter = RateLimiter()
        self.idempotency = IdempotencyStore(config.idempotency_ttl_seconds)
        self.faults = FaultInjector(faults or config.faults, config.seed, self.clock.now())
        self.stats = Stats()
        self._pending: list[tuple[float, int, Upsert, str]] = []
        self._pending_seq = itertools.count()

    # -- lifecycle -----------------------------------------------------------------------------------
    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Forget contacts, ledger, idempotency records, rate windows, stats, faults and the clock offset.

        The config is kept unless one is given. Faults are cleared (all zero), or set to the given
        config's ``faults``; the fault random generator is re-seeded from the config's ``seed``.
        """
        self.clock.reset()
        if config is None:
            self._build(self.config, FaultConfig())
        else:
            self._build(config)

    def configure(self, **changes: Any) -> EmulatorConfig:
        unknown = set(changes) - CONFIGURABLE
        if unknown:
            raise ValueError(f"not configurable at run time: {', '.join(sorted(unknown))}")
        self.config = self.config.updated(**changes)
        self.idempotency.ttl = self.config.idempotency_ttl_seconds
        return self.config

    def request_id(self) -> str:
        return f"req_{self._rid_prefix}{next(self._rid):010x}"

    # -- writes --------------------------------------------------------------------------------------
    def apply_upsert(self, item: Upsert, ts: str) -> Contact:
        external_id, anonymous_id, fields, data = item
        store = self.contacts
        c, _ = store.identify(external_id, anonymous_id, ts)
        store.apply_profile(c, fields, data)
        store.count_upsert(c)
        store.touch(c, ts)
        return c

    def queue_upsert(self, item: Upsert, now: float, endpoint: str) -> None:
        """``PATCH /users``: apply after ``async_delay_seconds`` (at once when it is 0)."""
        delay = self.config.async_delay_seconds
        if delay <= 0:
            try:
                self.apply_upsert(item, iso(now))
            except FieldError:
                self.drop_item(endpoint)
            return
        heapq.heappush(self._pending, (now + delay, next(self._pending_seq), item, endpoint))

    def drain(self, now: float) -> None:
        """Apply queued async upserts whose time has come (called before every request)."""
        pending = self._pending
        while pending and pending[0][0] <= now:
            visible_at, _, item, endpoint = heapq.heappop(pending)
            try:
                self.apply_upsert(item, iso(visible_at))
            except FieldError:
                self.drop_item(endpoint)

    @property
    def pending_async_items(self) -> int:
        return len(self._pending)

    def drop_item(self, endpoint: str) -> None:
        self.stats.dropped_items[endpoint] += 1
        self.ledger.dropped_items += 1

    def apply_event(
        self,
        item: tuple[Any, ...],
        idempotency_key: str | None,
        ts: str,
    ) -> Contact:
        name, external_id, anonymous_id, data, created_at, user_fields, user_data = item
        store = self.contacts
        c, changed = store.identify(external_id, anonymous_id, ts)
        if store.apply_profile(c, user_fields, user_data) or changed:
            store.touch(c, ts)
        self.ledger.record_event(
            name,
            external_id,
            anonymous_id,
            created_at,
            data,
            idempotency_key,
            ts,
            c.id,
            effective_created_at=created_at or ts,
        )
        return c

    def toggle(
        self,
        c: Contact,
        subscription_id: int,
        state: int,
        endpoint: str,
        idempotency_key: str | None,
        ts: str,
    ) -> bool:
        previous = self.contacts.set_subscription(c, subscription_id, state)
        self.ledger.record_toggle(
            c.id,
            c.external_id,
            c.anonymous_id,
            subscription_id,
            state,
            previous,
            endpoint,
            idempotency_key,
            ts,
        )
        return previous != state

    # -- views ---------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        store, ledger = self.contacts, self.ledger
        return {
            "contacts": len(store),
            "contacts_created": store.created,
            "contacts_merged": store.merges,
            "upsert_applications": store.upsert_applications,
            "contacts_upserted_more_than_once": store.upserted_more_than_once,
            "pending_async_items": self.pending_async_items,
            "events_applied": ledger.events_applied,
            "events_distinct": ledger.events_applied - ledger.duplicate_events,
            "duplicate_events": ledger.duplicate_events,
            "subscription_toggles": ledger.subscription_toggles,
            "subscription_changes": ledger.subscription_changes,
            "dropped_items": ledger.dropped_items,
            "idempotency_records": len(self.idempotency),
        }

    def contact_view(self, c: Contact) -> dict[str, Any]:
        data = c.to_dict(self.config.project_id)
        data["upserts"] = c.upserts
        data["anonymous_ids"] = (
            list(c.anon_ids) if c.anon_ids else ([c.anonymous_id] if c.anonymous_id else [])
        )
        return data

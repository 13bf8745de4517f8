"""The ledger: what the emulator applied, for "nothing lost, nothing doubled" assertions.

Contacts (their current state and per-contact upsert counts) live in the contact store; the ledger
keeps every applied event with a duplicate detector, and every applied subscription toggle. All
summary numbers are counters, so the summary is O(1) however many contacts and events there are.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_EVENT_FIELDS = (
    "seq",
    "name",
    "external_id",
    "anonymous_id",
    "created_at",
    "data",
    "idempotency_key",
    "applied_at",
    "contact_id",
    "duplicate",
)
_TOGGLE_FIELDS = (
    "seq",
    "contact_id",
    "external_id",
    "anonymous_id",
    "subscription_id",
    "state",
    "previous_state",
    "changed",
    "endpoint",
    "idempotency_key",
    "applied_at",
)


def event_fingerprint(
    name: str,
    external_id: str | None,
    anonymous_id: str | None,
    created_at: str | None,
    data: dict[str, Any] | None,
) -> bytes:
    """Identity of an event for duplicate detection: name, ids, created_at (as sent) and data.

    Two events are the same when their JSON (keys sorted) is the same text. msgspec writes it (sorted
    keys, compact); a value it refuses (a lone surrogate) goes the stdlib way, as before. Either writing
    tells the same events apart: the same values always take the same way and give the same text."""
    value = [name, external_id, anonymous_id, created_at, data or {}]
    try:
        blob = _encode_sorted(value)
    except (TypeError, ValueError, OverflowError):
        blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.blake2b(blob, digest_size=12).digest()


class Ledger:
    def __init__(self) -> None:
        self._events: list[tuple[Any, ...]] = []
        self._fingerprints: set[bytes] = set()
        self.duplicate_events = 0
        self._toggles: list[tuple[Any, ...]] = []
        self.subscription_changes = 0
        self.dropped_items = 0

    def record_event(
        self,
        name: str,
        external_id: str | None,
        anonymous_id: str | None,
        created_at: str | None,
        data: dict[str, Any] | None,
        idempotency_key: str | None,
        applied_at: str,
        contact_id: int,
        *,
        effective_created_at: str | None = None,
    ) -> bool:
        """Record one applied event; returns whether it duplicates an earlier one.

        The fingerprint uses ``created_at`` as sent (``None`` when omitted); the ledger row shows the
        effective time (``effective_created_at``: the receive time when it was omitted).
        """
        fp = event_fingerprint(name, external_id, anonymous_id, created_at, data)
        duplicate = fp in self._fingerprints
        if duplicate:
            self.duplicate_events += 1
        else:
            self._fingerprints.add(fp)
        self._events.append(
            (
                len(self._events) + 1,
                name,
                external_id,
                anonymous_id,
                effective_created_at or created_at,
                data or {},
                idempotency_key,
                applied_at,
                contact_id,
                duplicate,
            )
        )
        return duplicate

    def record_toggle(
        self,
        contact_id: int,
        external_id: str | None,
        anonymous_id: str | None,
        subscription_id: int,
        state: int,
        previous: int | None,
        endpoint: str,
        idempotency_key: str | None,
        applied_at: str,
    ) -> None:
        changed = previous != state
        if changed:
            self.subscription_changes += 1
        self._toggles.append(
            (
                len(self._toggles) + 1,
                contact_id,
                external_id,
                anonymous_id,
                subscription_id,
                state,
                previous,
                changed,
                endpoint,
                idempotency_key,
                applied_at,
            )
        )

    @property
    def events_applied(self) -> int:
        return len(self._events)

    @property
    def subscription_toggles(self) -> int:
        return len(self._toggles)

    def events(
        self,
        offset: int = 0,
        limit: int | None = None,
        *,
        name: str | None = None,
        external_id: str | None = None,
        anonymous_id: str | None = None,
        duplicates_only: bool = False,
    ) -> tuple[int, list[dict[str, Any]]]:
        rows = self._events
        if name is not None or external_id is not None or anonymous_id is not None or duplicates_only:
            rows = [
                r
                for r in rows
                if (name is None or r[1] == name)
                and (external_id is None or r[2] == external_id)
                and (anonymous_id is None or r[3] == anonymous_id)
                and (not duplicates_only or r[9])
            ]
        end = None if limit is None else offset + limit
        return len(rows), [dict(zip(_EVENT_FIELDS, r)) for r in rows[offset:end]]

    def toggles(
        self,
        offset: int = 0,
        limit: int | None = None,
        *,
        contact_id: int | None = None,
        subscription_id: int | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        rows = self._toggles
        if contact_id is not None or subscription_id is not None:
            rows = [
                r
                for r in rows
                if (contact_id is None or r[1] == contact_id)
                and (subscription_id is None or r[4] == subscription_id)
            ]
        end = None if limit is None else offset + limit
        return len(rows), [dict(zip(_TOGGLE_FIELDS, r)) for r in rows[offset:end]]

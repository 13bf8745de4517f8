"""Idempotency store: one record per (API key, Idempotency-Key), remembered for a TTL (24 h).

States: a record is *processing* from the moment a request claims the key until its response is ready
to be sent (including injected latency), then *completed* (replayable) until it expires. Only 2xx
outcomes are kept; an error releases the key. Records are kept in completion order, so purging
expired ones is amortised O(1).
"""

from __future__ import annotations

from collections import OrderedDict

from airflow_provider_spotzee.api_facts import MAX_IDEMPOTENCY_KEY_LEN

PROCESSING = "processing"
COMPLETED = "completed"

MAX_KEY_LENGTH = MAX_IDEMPOTENCY_KEY_LEN


class Record:
    __slots__ = ("body", "expires_at", "fingerprint", "headers", "request_id", "state", "status")

    def __init__(self, fingerprint: bytes) -> None:
        self.fingerprint = fingerprint
        self.state = PROCESSING
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.request_id = ""
        self.expires_at = float("inf")


class IdempotencyStore:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._records: OrderedDict[tuple[str, str], Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records.clear()

    def _purge(self, now: float) -> None:
        records = self._records
        while records:
            scope, first = next(iter(records.items()))
            if first.state == COMPLETED and first.expires_at <= now:
                del records[scope]
            else:
                break

    def claim(self, api_key: str, key: str, fingerprint: bytes, now: float) -> tuple[str, Record | None]:
        """Return ``("new", record)``, ``("replay", record)``, ``("mismatch", None)`` or
        ``("in_progress", None)``."""
        self._purge(now)
        scope = (api_key, key)
        rec = self._records.get(scope)
        if rec is not None and rec.state == COMPLETED and rec.expires_at <= now:
            del self._records[scope]
            rec = None
        if rec is None:
            rec = Record(fingerprint)
            self._records[scope] = rec
            return "new", rec
        if rec.fingerprint != fingerprint:
            return "mismatch", None
        if rec.state == PROCESSING:
            return "in_progress", None
        return "replay", rec

    def complete(
        self,
        api_key: str,
        key: str,
        rec: Record,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        request_id: str,
        now: float,
    ) -> None:
        rec.status, rec.headers, rec.body, rec.request_id = status, headers, body, request_id
        rec.state = COMPLETED
        rec.expires_at = now + self.ttl
        scope = (api_key, key)
        if self._records.get(scope) is rec:
            self._records.move_to_end(scope)

    def release(self, api_key: str, key: str, rec: Record) -> None:
        scope = (api_key, key)
        if self._records.get(scope) is rec:
            del self._records[scope]

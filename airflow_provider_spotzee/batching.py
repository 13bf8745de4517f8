"""Batch sizes, canonical request bodies and deterministic idempotency keys (the batches themselves are
made by ``send.prepared_batches``, as records are validated).

Same logical partition + same endpoint + same bytes → same key, so every Airflow retry, clear or
backfill of a data interval replays instead of re-applying, and a different body can never reuse a key
(Spotzee's ``409 idempotency_key_mismatch`` is impossible by construction).
"""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE

KEY_PREFIX = "spz1"


def check_batch_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be an integer between 1 and {MAX_BATCH_SIZE}, got {size!r}")
    return size


def canonical_body(items: list[bytes]) -> bytes:
    """A JSON array from already-serialised items: the exact bytes that are sent and hashed."""
    return b"[" + b",".join(items) + b"]"


def idempotency_key(namespace: str, method: str, path: str, body: bytes) -> str:
    """``spz1-<sha256>`` of (namespace, method, path, body): 69 characters, well under Spotzee's 255."""
    digest = hashlib.sha256()
    for part in (namespace.encode(), method.upper().encode(), path.encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    digest.update(body)
    return f"{KEY_PREFIX}-{digest.hexdigest()}"


def namespace_for(
    dag_id: str,
    task_id: str,
    data_interval_start: Any = None,
    data_interval_end: Any = None,
    map_index: int | None = -1,
    *,
    run_id: str | None = None,
) -> str:
    """The logical partition of a task's work: stable across retries, clears and backfills of one interval.

    Never includes the try number. Runs without a data interval (manual, asset-triggered) fall back to
    the run id, which is equally stable across retries of that run.
    """
    if data_interval_start is not None and data_interval_end is not None:
        window = f"{_iso(data_interval_start)}/{_iso(data_interval_end)}"
    else:
        window = f"run={run_id or 'adhoc'}"
    index = -1 if map_index is None else map_index
    return f"{dag_id}/{task_id}/{window}/{index}"


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)

"""Facts of the Spotzee API that the client and the emulator both rely on, each written once.

The client (hook, send path, pacer, config) and the emulator (``airflow_provider_spotzee.testing``)
import these names; neither restates them. docs/api-contract.md describes the same facts in prose, and
``tests/unit/test_api_facts.py`` pins this module against that page.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

#: The version Spotzee serves today; the ``Spotzee-Version`` header pins one (``YYYY-MM-DD``).
CURRENT_API_VERSION = "2026-04-28"

#: Items per request on every batch endpoint (``POST /users/batch``, ``PATCH /users``, ``POST /events``,
#: ``POST /subscriptions/batch``, ``PATCH /users/{userId}/subscriptions``) and the largest list page.
MAX_BATCH_SIZE = 100

#: Rate limits are enforced over a sliding window of this many seconds.
RATE_WINDOW_SECONDS = 10.0

#: Per-item error codes that are transient; every other per-item code is permanent.
TRANSIENT_ITEM_CODES = frozenset({"rate_limited", "internal_error", "service_unavailable"})

#: Idempotency keys are remembered this long, and must be 1..255 characters.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
MAX_IDEMPOTENCY_KEY_LEN = 255


@dataclass(frozen=True)
class PlanBudget:
    """Requests per second a key may make on a plan (reads and writes apart), and the burst factor."""

    read_rps: float
    write_rps: float
    burst: float


PLANS: dict[str, PlanBudget] = {
    "starter": PlanBudget(read_rps=200, write_rps=100, burst=1.5),
    "professional": PlanBudget(read_rps=1000, write_rps=500, burst=1.5),
    "enterprise": PlanBudget(read_rps=5000, write_rps=2500, burst=2.0),
}

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_api_version(value: str) -> bool:
    """Whether ``value`` has the form of an API version: a real calendar date written ``YYYY-MM-DD``."""
    if not _DATE_RE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True

"""TrackEventsOperator: behavioural events to ``POST /events``."""

from __future__ import annotations

from typing import Any

from airflow_provider_spotzee.operators.base import SpotzeeSyncOperator
from airflow_provider_spotzee.send import EVENTS


class TrackEventsOperator(SpotzeeSyncOperator):
    """Record events (``name``, ``external_id``/``anonymous_id``, ``data``, optional ``user`` profile block,
    ``created_at``). Map columns with dotted targets such as ``data.value`` or ``user.email``.

    Events are not upserts: sending one twice records it twice. Exactly-once therefore rests on the
    idempotency keys (retries within 24 h) and on the checkpoint (later retries and clears), both on by
    default. Duplicate detection by contact is off (``dedupe_on=None``): two events of one contact are
    two events.
    """

    endpoint = EVENTS

    def __init__(self, *, dedupe_on: str | None = None, **kwargs: Any) -> None:
        super().__init__(dedupe_on=dedupe_on, **kwargs)

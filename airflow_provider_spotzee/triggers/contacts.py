"""SpotzeeContactTrigger: waits in the triggerer until contacts are visible. Polls only, never writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_spotzee.exceptions import SpotzeeAuthError, SpotzeeConfigError, SpotzeeError
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.visibility import missing_contacts, parse_since

REPORTED_IDS = 100


def next_poll_in(now: float, poll_interval: float, deadline: float | None) -> float:
    """Seconds until the next poll: the interval, or less so that the last poll happens at the deadline."""
    if deadline is None:
        return poll_interval
    return max(0.0, min(poll_interval, deadline - now))


class SpotzeeContactTrigger(BaseTrigger):
    """Poll ``GET /users/{id}`` until every id is visible (and updated at or after ``updated_since``).

    Yields exactly one event: ``{"status": "success", "found": n}``, ``{"status": "timeout",
    "missing": [first 100 ids], "missing_count": n}`` when ``deadline`` (epoch seconds) has passed, or
    ``{"status": "error", "message": ...}`` on an auth or configuration failure (e.g. a base URL without
    ``/api/client``) or after ``max_consecutive_errors`` failed polls in a row. The sensor branches on
    ``status`` only. Timeout is declared only after a poll that
    ended at or after the deadline: the last sleep is shortened so that one poll runs at the deadline
    (a contact that appears between the last regular poll and the deadline is still seen). Rate limiting and 5xx
    are retried inside each poll; a poll that still fails counts as an error, never as "missing".
    Every path through the loop sleeps. All state is in the serialised kwargs, so a triggerer restart
    simply polls again.
    """

    def __init__(self, *, spotzee_conn_id: str, external_ids: list[str], updated_since: str | None = None,
                 poll_interval: float = 30.0, deadline: float | None = None, max_consecutive_errors: int = 5) -> None:
        super().__init__()
        self.spotzee_conn_id = spotzee_conn_id
        self.external_ids = list(external_ids)
        self.updated_since = updated_since
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.max_consecutive_errors = max_consecutive_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "spotzee_conn_id": self.spotzee_conn_id,
                "external_ids": self.external_ids,
                "updated_since": self.updated_since,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = SpotzeeHook(self.spotzee_conn_id)
        since = parse_since(self.updated_since)
        pending = self.external_ids
        errors = 0
        while True:
            try:
                config = await hook.aget_config()
                pending = await missing_contacts(config, pending, since)
                errors = 0
            except (SpotzeeAuthError, SpotzeeConfigError) as exc:  # retrying cannot fix these
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            except SpotzeeError as exc:
                errors += 1
                self.log.warning("Spotzee poll failed (%d in a row): %s", errors, exc)
                if errors >= self.max_consecutive_errors:
                    yield TriggerEvent({"status": "error", "message": f"{errors} polls in a row failed: {exc}"})
                    return
            if not pending:
                yield TriggerEvent({"status": "success", "found": len(self.external_ids)})
                return
            self.log.info("%d of %d contacts not visible yet", len(pending), len(self.external_ids))
            now = time.time()
            if self.deadline is not None and now >= self.deadline:
                yield TriggerEvent({"status": "timeout", "missing": pending[:REPORTED_IDS],
                                    "missing_count": len(pending)})
                return
            await asyncio.sleep(next_poll_in(now, self.poll_interval, self.deadline))

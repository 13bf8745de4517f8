"""SpotzeeContactSensor: wait until asynchronously upserted contacts are visible in Spotzee."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_spotzee.exceptions import SpotzeeAPIError, SpotzeeAuthError
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook, run_sync
from airflow_provider_spotzee.triggers.contacts import REPORTED_IDS, SpotzeeContactTrigger
from airflow_provider_spotzee.visibility import missing_contacts, normalise_ids, parse_since

DEFER_GRACE_SECONDS = 60


def _is_base_timeout(exc: BaseException) -> bool:
    """Did BaseSensorOperator's own timeout check raise this (rather than a failed poke)? Decided by
    type and chaining, never by message text: the timeout is an :class:`AirflowSensorTimeout`, or with
    ``soft_fail`` an :class:`AirflowSkipException` raised on its own; every skip the base derives from a
    poke's error is chained to that error (``raise ... from e``), and this sensor's poke raises neither."""
    if isinstance(exc, AirflowSensorTimeout):
        return True
    return isinstance(exc, AirflowSkipException) and exc.__cause__ is None


class SpotzeeContactSensor(BaseSensorOperator):
    """Wait until every contact in ``external_ids`` exists in Spotzee (optionally updated since a time).

    :param external_ids: ids to wait for: a list, a template, or an XComArg (templated).
    :param updated_since: ISO time or datetime; a contact counts only once its ``updated_at`` is at or
        after it, so an update (not only a create) is seen (templated).
    :param deferrable: hand the wait to :class:`SpotzeeContactTrigger` (no worker slot held). Defaults to
        ``[operators] default_deferrable``.

    Ids already seen are not looked up again; lookups are paced by the key's read budget. 401/403 fail
    at once; 429 and 5xx during a poke are retried and never count as "missing". On timeout the task
    fails (or is skipped with ``soft_fail``) naming the ids that never appeared.
    """

    template_fields: Sequence[str] = ("external_ids", "updated_since", "spotzee_conn_id")
    ui_color = "#caffbf"

    def __init__(self, *, external_ids: Any, spotzee_conn_id: str = SpotzeeHook.default_conn_name,
                 updated_since: Any = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.external_ids = external_ids
        self.spotzee_conn_id = spotzee_conn_id
        self.updated_since = updated_since
        self.deferrable = deferrable
        self._pending: list[str] | None = None

    def _since(self) -> str | None:
        since = parse_since(self.updated_since)
        return since.isoformat() if since else None

    def poke(self, context: Any) -> bool | PokeReturnValue:
        if self._pending is None:
            self._pending = normalise_ids(self.external_ids)
        if not self._pending:
            return PokeReturnValue(is_done=True, xcom_value={"found": 0})
        config = SpotzeeHook(self.spotzee_conn_id).config
        since = parse_since(self.updated_since)
        pending = self._pending
        try:
            self._pending = run_sync(lambda: missing_contacts(config, pending, since))
        except SpotzeeAuthError:
            raise
        except SpotzeeAPIError as exc:  # retries exhausted, cannot connect, an odd answer: next poke
            self.log.warning("Spotzee lookups failed this poke (%s); trying again next poke", exc)
            return False
        if self._pending:
            self.log.info("%d contact(s) not visible yet, e.g. %s", len(self._pending), self._pending[:10])
            return False
        return PokeReturnValue(is_done=True, xcom_value={"found": len(normalise_ids(self.external_ids))})

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except (AirflowSensorTimeout, AirflowSkipException) as exc:
                if self._pending and _is_base_timeout(exc):
                    raise type(exc)(f"{exc} {self._missing_message(self._pending)}") from exc
                raise
        if self.poke(context):
            return {"found": len(normalise_ids(self.external_ids))}
        self.defer(
            trigger=SpotzeeContactTrigger(
                spotzee_conn_id=self.spotzee_conn_id,
                external_ids=self._pending or [],
                updated_since=self._since(),
                poll_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_GRACE_SECONDS),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Branch on the trigger event's ``status`` (never on its text): ``success``, ``timeout`` (with
        ``missing``/``missing_count``), or anything else an error."""
        status = event.get("status")
        if status == "success":
            self.log.info("All %s contacts are visible", event.get("found"))
            return {"found": event.get("found")}
        if status == "timeout":
            message = f"Sensor has timed out. {self._missing_message(event.get('missing') or [], event.get('missing_count'))}"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise SpotzeeAPIError(f"Waiting for Spotzee contacts failed: {event.get('message')}")

    @staticmethod
    def _missing_message(missing: list[str], count: int | None = None) -> str:
        total = count if count is not None else len(missing)
        more = f" (and {total - REPORTED_IDS} more)" if total > REPORTED_IDS else ""
        return f"{total} contact(s) never appeared: {missing[:REPORTED_IDS]}{more}"

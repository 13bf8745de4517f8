"""UpsertUsersOperator: contacts to ``POST /users/batch`` (sync, per-item results) or ``PATCH /users`` (async)."""

from __future__ import annotations

from typing import Any, Literal

from airflow_provider_spotzee.exceptions import SpotzeeConfigError
from airflow_provider_spotzee.operators.base import SpotzeeSyncOperator
from airflow_provider_spotzee.send import USERS_ASYNC, USERS_BATCH, Endpoint


class UpsertUsersOperator(SpotzeeSyncOperator):
    """Upsert contacts into Spotzee, keyed by ``external_id``.

    :param mode: ``"sync"`` (default) uses ``POST /users/batch`` and reports every rejected record;
        ``"async"`` uses ``PATCH /users``, which answers 204 and reports nothing per item (records are
        still validated locally first, so invalid ones are reported, not silently dropped). Follow an
        async upsert with :class:`~airflow_provider_spotzee.sensors.contacts.SpotzeeContactSensor` before
        anything that needs the contacts to exist: in async mode the operator pushes the external_ids it
        sent under XCom key ``sent_external_ids`` (up to ``sent_ids_in_xcom``, default 10,000), which is
        exactly what the sensor's ``external_ids`` wants.

    Every other argument is described in :class:`~airflow_provider_spotzee.operators.base.SpotzeeSyncOperator`.
    """

    def __init__(self, *, mode: Literal["sync", "async"] = "sync", **kwargs: Any) -> None:
        if mode not in ("sync", "async"):
            raise SpotzeeConfigError(f"mode must be 'sync' or 'async', got {mode!r}")
        kwargs.setdefault("sent_ids_in_xcom", 10_000 if mode == "async" else 0)
        self.mode = mode  # before the base's checks, which read self.endpoint
        super().__init__(**kwargs)

    @property
    def endpoint(self) -> Endpoint:  # type: ignore[override]
        return USERS_BATCH if self.mode == "sync" else USERS_ASYNC

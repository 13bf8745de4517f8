"""Subscription operators: bulk toggles across contacts, and one contact's subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.operators.base import SpotzeeSyncOperator, map_index
from airflow_provider_spotzee.send import SUBSCRIPTIONS_BATCH


class BulkSubscriptionOperator(SpotzeeSyncOperator):
    """Set subscription states across many contacts (``POST /subscriptions/batch``).

    Each record is ``{subscription_id, state (0 unsubscribed, 1 subscribed, 2 double opt-in),
    external_id | anonymous_id}``. Unknown contacts come back as ``rejected`` with code
    ``resource_missing`` (upsert them first; after an async upsert, wait with the contact sensor).
    Toggling to the current state is a no-op, so there is no de-duplication by contact.
    """

    endpoint = SUBSCRIPTIONS_BATCH

    def __init__(self, *, dedupe_on: str | None = None, **kwargs: Any) -> None:
        super().__init__(dedupe_on=dedupe_on, **kwargs)


class UserSubscriptionsOperator(BaseOperator):
    """Set one contact's subscription states and return the refreshed contact's identifiers.

    :param user_id: the contact's external_id (templated). Always an external_id, even when it is all
        digits: ``"1024"`` is the contact whose external_id is ``"1024"``, never contact id 1024 (such
        ids are toggled through ``POST /subscriptions/batch``; see :class:`SpotzeeHook`). An ``int``
        still means Spotzee's numeric id, with a DeprecationWarning: use ``contact_id``.
    :param contact_id: Spotzee's numeric contact id, instead of ``user_id``.
    :param toggles: up to 100 ``{subscription_id, state}`` (templated).
    """

    template_fields: Sequence[str] = ("user_id", "toggles", "spotzee_conn_id")

    def __init__(self, *, user_id: str | int | None = None, toggles: list[dict[str, Any]],
                 contact_id: int | None = None,
                 spotzee_conn_id: str = SpotzeeHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (user_id is None) == (contact_id is None):
            raise ValueError("UserSubscriptionsOperator needs exactly one of user_id (an external_id) or contact_id")
        self.user_id = user_id
        self.contact_id = contact_id
        self.toggles = toggles
        self.spotzee_conn_id = spotzee_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        hook = SpotzeeHook(self.spotzee_conn_id)
        namespace = f"{self.dag_id}/{self.task_id}/{context.get('run_id')}/{map_index(context)}"
        contact = hook.update_user_subscriptions(self.user_id, self.toggles, contact_id=self.contact_id,
                                                 idempotency_namespace=namespace)
        self.log.info("Updated %d subscription(s) of contact id=%s", len(self.toggles), contact.id)
        return {"id": contact.id, "external_id": contact.external_id, "toggles": len(self.toggles)}

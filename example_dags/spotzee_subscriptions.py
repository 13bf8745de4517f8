"""Async upsert → wait until the contacts are visible → subscribe them to the newsletter.

``PATCH /users`` answers 204 and applies later, so anything that needs the contacts to exist waits
for them with ``SpotzeeContactSensor``. Deferrable by default: the wait happens in the triggerer and
holds no worker slot. The upsert pushes the external_ids it sent (XCom ``sent_external_ids``): records
that failed validation are not waited for.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, XComArg, task

from airflow_provider_spotzee.operators.subscriptions import BulkSubscriptionOperator
from airflow_provider_spotzee.operators.users import UpsertUsersOperator
from airflow_provider_spotzee.sensors.contacts import SpotzeeContactSensor

CRM_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_CRM_CONN_ID", "crm_db")
NEWSLETTER_SUBSCRIPTION_ID = 7
# deferrable (default), poke or reschedule: the same DAG shows all three sensor modes
SENSOR_MODE = os.environ.get("SPOTZEE_EXAMPLE_SENSOR_MODE", "deferrable")

with DAG(
    dag_id="spotzee_subscriptions",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    tags=["spotzee", "example"],
    doc_md=__doc__,
):

    @task
    def newsletter_audience() -> list[dict]:
        """Customers on paid plans, as Spotzee payloads (any query or API works here)."""
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        rows = DbApiHook.get_hook(CRM_CONN_ID).get_records(
            "SELECT id, email_address, locale, timezone FROM customers WHERE plan IN ('pro', 'team') "
            "ORDER BY pk LIMIT 500")
        return [{"external_id": r[0], "email": r[1], "locale": r[2], "timezone": r[3]} for r in rows]

    audience = newsletter_audience()
    upsert = UpsertUsersOperator(task_id="upsert_async", records=audience, mode="async")

    wait = SpotzeeContactSensor(
        task_id="wait_for_contacts",
        external_ids=XComArg(upsert, key="sent_external_ids"),
        deferrable=SENSOR_MODE == "deferrable",
        mode="reschedule" if SENSOR_MODE == "reschedule" else "poke",
        poke_interval=2,
        timeout=300,
    )

    @task
    def newsletter_toggles(external_ids: list[str]) -> list[dict]:
        return [{"external_id": i, "subscription_id": NEWSLETTER_SUBSCRIPTION_ID, "state": 1} for i in external_ids]

    subscribe = BulkSubscriptionOperator(
        task_id="subscribe_newsletter",
        records=newsletter_toggles(XComArg(upsert, key="sent_external_ids")),
    )
    wait >> subscribe

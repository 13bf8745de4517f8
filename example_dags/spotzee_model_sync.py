"""A model with no ``updated_at``, mirrored into Spotzee by diff: only rows that changed are sent.

``dim_customers`` is a view (as a dbt model or a warehouse table rebuilt nightly would be): it has a
primary key but no trustworthy modification time, so an interval or cursor sync cannot tell what changed.
``incremental="diff"`` keeps, per key, the hash of what Spotzee last confirmed in the table
``spotzee_sync_snapshot`` (in the same database by default) and sends only new rows, changed rows and rows
that failed last time; rows gone from the model are reported under XCom key ``removed``.

Connections: ``spotzee_default`` and ``crm_db`` (the demo's SQLite CRM; any common.sql connection works).
Run it with ``airflow dags test spotzee_model_sync 2026-11-25``; a second run sends nothing until the CRM
changes. Trigger with ``{"full_resync": true}`` to resend every row once and rewrite the snapshot.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, XComArg, task

from airflow_provider_spotzee.operators.users import UpsertUsersOperator

CRM_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_CRM_CONN_ID", "crm_db")

# The model: one row per customer, keyed by customer_id, no updated_at. DROP + CREATE works on SQLite and
# PostgreSQL alike.
MODEL_SQL = """
DROP VIEW IF EXISTS dim_customers;
CREATE VIEW dim_customers AS
SELECT pk AS customer_id, id AS external_id, email_address AS email, phone_e164 AS phone, locale, timezone,
       first_name, last_name, plan
FROM customers;
"""

with DAG(
    dag_id="spotzee_model_sync",
    schedule=CronDataIntervalTimetable("0 6 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    params={"full_resync": Param(False, type="boolean", description="resend every row once, then rewrite the snapshot")},
    tags=["spotzee", "example"],
    doc_md=__doc__,
):
    build_model = SQLExecuteQueryOperator(task_id="build_model", conn_id=CRM_CONN_ID, sql=MODEL_SQL,
                                          split_statements=True, return_last=False)

    sync = UpsertUsersOperator(
        task_id="sync_model",
        conn_id=CRM_CONN_ID,
        table="dim_customers",
        key_column="customer_id",  # the model's primary key: unique and never NULL (checked before sending)
        incremental="diff",
        full_resync="{{ params.full_resync }}",
        mapping={
            "external_id": "external_id",
            "email": "email",
            "phone": "phone",
            "locale": "locale",
            "timezone": "timezone",
            "first_name": "data.first_name",
            "last_name": "data.last_name",
            "plan": "data.plan",
        },
        max_failure_ratio=0.05,
    )

    @task(trigger_rule="all_done")
    def report(summary: dict | None, removed: list[dict] | None) -> dict:
        """The reconciliation: every row of the model is in exactly one bucket."""
        if not summary:
            raise ValueError("the sync produced no summary (it failed before sending): see its log")
        keys = ("extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")
        print("Spotzee model sync: " + ", ".join(f"{k}={summary[k]}" for k in keys)
              + f" | new={summary['diff']['new']} changed={summary['diff']['changed']} "
              f"retried={summary['diff']['retried']} removed={summary['removed']}")
        if sum(summary[k] for k in keys[1:]) != summary["extracted"]:
            raise ValueError("summary does not balance")
        for row in (removed or [])[:10]:
            print(f"  removed from the model: customer_id={row['key']} ({row['status']})")
        return summary

    build_model >> sync
    report(sync.output, XComArg(sync, key="removed"))

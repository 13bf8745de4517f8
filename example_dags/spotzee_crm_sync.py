"""Daily incremental CRM → Spotzee contact sync.

extract (the day's changed rows of ``customers``, from any common.sql connection) → map (the sync
guide's column table) → upsert (``POST /users/batch``, per-item results) → report failures (and write
them back to the CRM) → reconciliation summary.

Connections: ``spotzee_default`` (type spotzee) and ``crm_db`` (SQLite here; PostgreSQL or any
common.sql connection in production). Run one day with
``airflow dags test spotzee_crm_sync 2026-11-24``; backfill with ``airflow backfill create``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, XComArg, task

from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING
from airflow_provider_spotzee.operators.users import UpsertUsersOperator

CRM_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_CRM_CONN_ID", "crm_db")

# The sync guide's column table (id → external_id, email_address → email, phone_e164 → phone, locale,
# timezone, first/last name → data.*), plus the plan as a custom attribute.
CRM_MAPPING = {**CRM_GUIDE_MAPPING, "plan": "data.plan"}

with DAG(
    dag_id="spotzee_crm_sync",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["spotzee", "example"],
    doc_md=__doc__,
):
    upsert = UpsertUsersOperator(
        task_id="upsert_users",
        conn_id=CRM_CONN_ID,
        table="customers",
        cursor_column="updated_at",  # rows changed in the run's data interval ...
        key_column="pk",  # ... in (updated_at, pk) order: tie-safe and resumable
        mapping=CRM_MAPPING,
        mode="sync",
        max_failure_ratio=0.05,  # fail the run when more than 5 % of the rows fail
    )

    @task
    def report_failures(failures: list[dict], summary: dict) -> dict:
        """Log failures by code and write them back to the CRM so the owners can fix the records."""
        from collections import Counter

        from airflow.providers.common.sql.hooks.sql import DbApiHook

        by_code = Counter(f"{f['stage']}:{f['code']}" for f in failures)
        for code, count in sorted(by_code.items()):
            print(f"  {count:6d}  {code}")
        if failures:
            hook = DbApiHook.get_hook(CRM_CONN_ID)
            hook.run("CREATE TABLE IF NOT EXISTS spotzee_sync_failures "
                     "(record_index INTEGER, external_id TEXT, stage TEXT, code TEXT, message TEXT)")
            hook.insert_rows("spotzee_sync_failures",
                             [(f["index"], f["external_id"], f["stage"], f["code"], f["message"]) for f in failures],
                             target_fields=["record_index", "external_id", "stage", "code", "message"])
        return {"failures": len(failures), "by_code": dict(by_code), "full_list": summary.get("failures_path")}

    @task
    def reconcile(summary: dict) -> dict:
        keys = ("extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")
        total = sum(summary[k] for k in keys[1:])
        print("Spotzee reconciliation: " + ", ".join(f"{k}={summary[k]}" for k in keys)
              + f" | requests={summary['requests']} retries={summary['retries']} "
              f"throttled={summary['throttled']} items/s={summary['items_per_second']}")
        if total != summary["extracted"]:
            raise ValueError(f"summary does not balance: {total} != {summary['extracted']}")
        return summary

    failures = XComArg(upsert, key="failures")
    report_failures(failures, upsert.output) >> reconcile(upsert.output)

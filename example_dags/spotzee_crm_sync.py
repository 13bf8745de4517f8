"""Daily incremental CRM → Spotzee contact sync, with its history and failures written back to the CRM.

extract (the day's changed rows of ``customers``, from any common.sql connection) → map (the sync
guide's column table) → upsert (``POST /users/batch``, per-item results) → write the failures back to the
CRM (a ``spotzee_error`` column on ``customers``) → reconciliation summary.

Observability (docs/observability.md): the sync keeps its history in the CRM database
(``sync_log_conn_id``: tables ``spotzee_sync_runs`` and ``spotzee_sync_failures``), and every successful
sync updates the Asset ``spotzee://<host>/users`` with its counts, which schedules the
``spotzee_campaign`` DAG.

Connections: ``spotzee_default`` (type spotzee) and ``crm_db`` (SQLite here; PostgreSQL or any
common.sql connection in production). Run one day with
``airflow dags test spotzee_crm_sync 2026-11-25`` (data interval 2026-11-24 to 2026-11-25); backfill with
``airflow backfill create``. ``SPOTZEE_EXAMPLE_SYNC_LOG_CONN_ID`` names another connection for the
history, or is empty to keep none (the write-back then reads the failures from XCom, at most 1,000).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, XComArg, get_current_context, task

from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING
from airflow_provider_spotzee.operators.users import UpsertUsersOperator

CRM_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_CRM_CONN_ID", "crm_db")
# Where the sync history goes: the CRM database itself by default; empty for no history.
SYNC_LOG_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_SYNC_LOG_CONN_ID", CRM_CONN_ID) or None

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
        sync_log_conn_id=SYNC_LOG_CONN_ID,  # one row per try and one per failed record, in the CRM database
    )

    @task(trigger_rule="all_done")  # also after a failed sync: that is when there is most to write back
    def report_failures(failures: list[dict] | None, summary: dict | None) -> dict:
        """Set ``customers.spotzee_error`` for the rows of this run that failed, and clear it for the rows
        of this run's interval that went through; log the failures by code."""
        from collections import Counter
        from contextlib import closing

        from airflow.providers.common.sql.hooks.sql import DbApiHook

        context = get_current_context()
        crm = DbApiHook.get_hook(CRM_CONN_ID)
        ph = crm.placeholder
        if "spotzee_error" not in {column["name"] for column in crm.inspector.get_columns("customers")}:
            crm.run("ALTER TABLE customers ADD COLUMN spotzee_error VARCHAR(1000)")  # the first run

        def bound(value: Any) -> Any:  # SQLite keeps timestamps as text: compare text with text
            return value.strftime("%Y-%m-%d %H:%M:%S") if crm.conn_type == "sqlite" else value

        # the rows this run read: clear what an earlier run wrote, then mark this run's failures
        crm.run(f"UPDATE customers SET spotzee_error = NULL WHERE spotzee_error IS NOT NULL "
                f"AND updated_at >= {ph} AND updated_at < {ph}",
                parameters=(bound(context["data_interval_start"]), bound(context["data_interval_end"])))
        # the history is in the CRM database (and was written: a failed history write never fails the sync, the
        # summary says so): one UPDATE from its failures table; else the failures XCom
        if SYNC_LOG_CONN_ID == CRM_CONN_ID and (summary or {}).get("history", "written") == "written":
            keys = (context["dag"].dag_id, "upsert_users", context["run_id"])
            this_run = f"f.dag_id = {ph} AND f.task_id = {ph} AND f.run_id = {ph}"
            crm.run(
                "UPDATE customers SET spotzee_error = (SELECT f.stage || ': ' || f.code || ': ' || f.message "
                f"FROM spotzee_sync_failures f WHERE {this_run} AND f.source_key = CAST(customers.pk AS VARCHAR(40))) "
                f"WHERE CAST(pk AS VARCHAR(40)) IN (SELECT f.source_key FROM spotzee_sync_failures f WHERE {this_run})",
                parameters=keys + keys)
            by_code = dict(crm.get_records(
                f"SELECT f.stage || ':' || f.code, COUNT(*) FROM spotzee_sync_failures f WHERE {this_run} "
                "GROUP BY f.stage, f.code", parameters=keys))
        else:  # the first max_failures_in_xcom (1,000) failures
            failures = failures or []
            with closing(crm.get_conn()) as conn:
                cursor = conn.cursor()
                cursor.executemany(f"UPDATE customers SET spotzee_error = {ph} WHERE CAST(pk AS VARCHAR(40)) = {ph}",
                                   [(f"{f['stage']}: {f['code']}: {f['message']}", f["source_key"]) for f in failures])
                conn.commit()
            by_code = dict(Counter(f"{f['stage']}:{f['code']}" for f in failures))
        for code, count in sorted(by_code.items()):
            print(f"  {count:6d}  {code}")
        return {"failures": sum(by_code.values()), "by_code": by_code,
                "full_list": (summary or {}).get("failures_path")}

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

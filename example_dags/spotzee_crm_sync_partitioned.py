"""The CRM sync for a large table, spread over mapped tasks with dynamic task mapping.

``partitions(4)`` gives four disjoint slices of ``customers`` (by ``pk % 4``). Each mapped task has its
own checkpoint (the task state store is per map index) and its own idempotency namespace. The four
share the key's rate budget through Spotzee's rate headers: each takes at least a quarter of it while
the others are busy and more when fewer are running, so together they stay just under the plan's
ceiling. Put them in an Airflow pool sized to the number of workers you want on the key.

Backfill how-to: this DAG has data intervals (``CronDataIntervalTimetable``), so
``airflow backfill create --dag-id spotzee_crm_sync_partitioned --from-date 2026-11-01 --to-date 2026-11-08``
syncs each day's changed rows once. Re-running a backfill over completed runs sends nothing (every
checkpoint is at the end); brand-new runs of the same days are answered from Spotzee's idempotency
memory within 24 h.

With ``catchup=False`` unpausing the DAG schedules only the latest complete day (yesterday, UTC); an
earlier day is synced only when you backfill it as above. Each run reads the rows whose ``updated_at``
falls in its own data interval, so a run of a day with no changes sends nothing. To try one day by
hand: ``airflow dags test spotzee_crm_sync_partitioned 2026-11-25`` (a manual run's data interval is the
day *before* its logical date: 2026-11-24).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, task

from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING
from airflow_provider_spotzee.operators.base import partitions
from airflow_provider_spotzee.operators.users import UpsertUsersOperator

CRM_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_CRM_CONN_ID", "crm_db")
PARTITIONS = int(os.environ.get("SPOTZEE_EXAMPLE_PARTITIONS", "4"))

with DAG(
    dag_id="spotzee_crm_sync_partitioned",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["spotzee", "example"],
    doc_md=__doc__,
):
    upserts = UpsertUsersOperator.partial(
        task_id="upsert_users",
        conn_id=CRM_CONN_ID,
        table="customers",
        key_column="pk",
        mapping={**CRM_GUIDE_MAPPING, "plan": "data.plan"},
        max_failure_ratio=0.05,
        pool="default_pool",  # a dedicated pool (e.g. "spotzee") caps how many run at once
    ).expand(partition=partitions(PARTITIONS))

    @task
    def reconcile(summaries: list[dict]) -> dict:
        keys = ("extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")
        total = {k: sum(s[k] for s in summaries) for k in keys}
        print("Spotzee reconciliation (all partitions): " + ", ".join(f"{k}={v}" for k, v in total.items()))
        if total["extracted"] != sum(total[k] for k in keys[1:]):
            raise ValueError(f"partitions do not balance: {total}")
        return total

    reconcile(upserts.output)

"""The partitioned CRM sync as the Celery deployment test and the ``celery`` benchmark run it.

The example DAG ``spotzee_crm_sync_partitioned`` with what a distributed run needs spelled out:

- **one run, triggered for an explicit logical date.** ``end_date`` is the seeded day's logical date and
  ``catchup=False``, so the scheduler never creates a run by itself (its latest interval is always past
  ``end_date``): the harness triggers ``logical_date=2026-11-25`` (data interval 2026-11-24 to 11-25, the
  day ``seed_crm`` fills), whatever today's date is;
- **the failure file on storage every worker reaches**: ``[spotzee] failures_base``
  (``AIRFLOW__SPOTZEE__FAILURES_BASE``, a directory both workers see, set by the harness), which makes the
  operator's default failure file ``<base>/<dag_id>/<run_id>/<task_id>.<map_index>.jsonl``. A retry on the
  other worker then reads what the killed try wrote;
- short retry delays, so a killed worker's partitions are retried within seconds.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING
from airflow_provider_spotzee.operators.base import partitions
from airflow_provider_spotzee.operators.users import UpsertUsersOperator

PARTITIONS = int(os.environ.get("SPOTZEE_DEPLOY_PARTITIONS", "8"))

with DAG(
    dag_id="spotzee_crm_sync_celery",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 24),
    end_date=datetime(2026, 11, 25),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["spotzee", "test"],
    doc_md=__doc__,
):
    UpsertUsersOperator.partial(
        task_id="upsert_users",
        conn_id="crm_db",
        table="customers",
        key_column="pk",
        mapping={**CRM_GUIDE_MAPPING, "plan": "data.plan"},
        max_failure_ratio=0.05,
    ).expand(partition=partitions(PARTITIONS))

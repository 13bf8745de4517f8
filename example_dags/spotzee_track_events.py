"""Hourly events sync: the hour's rows of an ``events`` table → ``POST /events``.

Each event carries the optional ``user`` block (here the buyer's email), so one call both records the
behaviour and updates the contact. Events are not upserts: a duplicate is a second event. Retries,
clears and backfills are still exactly-once: the same idempotency keys within Spotzee's 24 h, and the
checkpoint in the task state store beyond it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_spotzee.operators.events import TrackEventsOperator

CRM_CONN_ID = os.environ.get("SPOTZEE_EXAMPLE_CRM_CONN_ID", "crm_db")

with DAG(
    dag_id="spotzee_track_events",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=3)},
    tags=["spotzee", "example"],
    doc_md=__doc__,
):
    TrackEventsOperator(
        task_id="track_events",
        conn_id=CRM_CONN_ID,
        table="events",
        cursor_column="occurred_at",
        key_column="pk",
        mapping={
            "customer_id": "external_id",
            "name": "name",
            "value": "data.value",
            "currency": "data.currency",
            "occurred_at": "created_at",
            "email": "user.email",
        },
    )

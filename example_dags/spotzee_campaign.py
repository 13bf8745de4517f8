"""A campaign that starts when Spotzee's contacts were updated: scheduled on the Asset ``spotzee://<host>/users``.

Every sync operator updates the Asset of the Spotzee object it writes (``spotzee://<host>/users``, ``/events``
or ``/subscriptions``) when it succeeds, with the sync's counts in the event's ``extra``. This DAG runs after
each such update (here: after ``spotzee_crm_sync``) and reads the counts from the events that triggered it.

The Asset's URI names the Spotzee host, and a schedule is fixed when the DAG is parsed, so the host is read
from the environment: ``SPOTZEE_EXAMPLE_BASE_URL``, the base URL of the ``spotzee_default`` connection
(default: the emulator's ``http://127.0.0.1:8089/api/client``; in production
``https://apix.spotzee.com/api/client``). ``spotzee_asset_uri`` turns it into the Asset's URI.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Asset, task

from airflow_provider_spotzee.lineage import spotzee_asset_uri

SPOTZEE_BASE_URL = os.environ.get("SPOTZEE_EXAMPLE_BASE_URL", "http://127.0.0.1:8089/api/client")
SPOTZEE_USERS = Asset(spotzee_asset_uri(SPOTZEE_BASE_URL, "users_batch"))  # spotzee://127.0.0.1:8089/users

with DAG(
    dag_id="spotzee_campaign",
    schedule=[SPOTZEE_USERS],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    tags=["spotzee", "example"],
    doc_md=__doc__,
):

    @task
    def audience_update() -> dict:
        """What changed in Spotzee since the last campaign run: the counts of every sync that triggered it."""
        from airflow.sdk import get_current_context

        events = get_current_context()["triggering_asset_events"][SPOTZEE_USERS]
        totals = {"syncs": 0, "sent_ok": 0, "invalid": 0, "rejected": 0, "dead_lettered": 0}
        for event in events:
            counts = event.extra or {}
            print(f"{SPOTZEE_USERS.uri} updated by {event.source_dag_id}/{event.source_task_id} "
                  f"({event.source_run_id}): " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            totals["syncs"] += 1
            for key in ("sent_ok", "invalid", "rejected", "dead_lettered"):
                totals[key] += int(counts.get(key) or 0)
        return totals

    @task.short_circuit
    def anything_new(totals: dict) -> bool:
        """Skip the campaign when the syncs sent nothing (a day without changes)."""
        return totals["sent_ok"] > 0

    @task
    def start_campaign(totals: dict) -> str:
        # a real campaign would be started here (Spotzee's campaign API is not part of this provider)
        message = f"campaign started for an audience with {totals['sent_ok']} new or updated contacts"
        print(message)
        return message

    totals = audience_update()
    anything_new(totals) >> start_campaign(totals)

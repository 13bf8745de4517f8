"""The example DAGs through real Airflow 3 against the emulator and a real SQLite CRM.

The CRM is seeded on the fixed day ``SEED_DAY`` and every run names its logical date (``SEED_RUN_DATE``:
data interval ``[SEED_DAY, SEED_DAY + 1)``), so the tests read the same rows on any date."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from airflow_provider_spotzee.testing.crm import (
    SEED_DAY,
    SEED_RUN_DATE,
    manual_run_date,
    seed_crm,
    seed_events,
)
from tests.dags.conftest import summaries

pytestmark = pytest.mark.dags


def test_crm_sync_dag_balances_against_the_source(airflow, emulator, tmp_path):
    kinds = seed_crm(tmp_path / "crm.db", 2_000, day=SEED_DAY)
    done = airflow.cli("dags", "test", "spotzee_crm_sync", SEED_RUN_DATE)
    assert done.returncode == 0, done.stdout[-4000:]
    summary = summaries(done.stdout, "users_batch")[-1]
    bad = sum(v for k, v in kinds.items() if k != "good")
    assert summary["balanced"] and summary["extracted"] == 2_000
    assert (summary["sent_ok"], summary["invalid"], summary["rejected"], summary["dead_lettered"]) == (
        2_000 - bad,
        bad,
        0,
        0,
    )
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == summary["sent_ok"] and ledger["contacts_upserted_more_than_once"] == 0
    assert "Spotzee reconciliation: extracted=2000" in done.stdout
    # the failure list went to XCom without PII, and the full list (with payloads) to a file
    assert "@example.com" not in "".join(
        line for line in done.stdout.splitlines() if "failures" in line and "xcom" in line.lower()
    )
    lines = [json.loads(line) for line in Path(summary["failures_path"]).read_text().splitlines()]
    assert len(lines) == bad and all(line["code"] and line["stage"] == "invalid" for line in lines)


def test_worker_killed_three_times_is_resumed_and_every_event_is_applied_once(airflow, emulator, tmp_path):
    kinds = seed_events(tmp_path / "crm.db", 4_000, day=SEED_DAY)
    emulator.set_faults(latency_ms=150)
    airflow.env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = emulator.connection_json(max_in_flight=2)
    code, output, kills = airflow.run_killing_workers(
        "spotzee_track_events", SEED_RUN_DATE, lambda: emulator.ledger_summary()["events_applied"],
        (700, 1_700, 2_700), timeout=180)  # mid-sync, wherever the worker happens to be: in a batch, between
    assert code == 0 and kills >= 2, output[-4000:]  # batches, or writing a checkpoint
    summary = summaries(output, "events")[-1]
    assert summary["resumed_from_index"] is not None and summary["resumed_from_index"] > 0, output[-6000:]
    assert summary["balanced"] and summary["extracted"] == 4_000 and summary["sent_ok"] == kinds["good"]
    ledger = emulator.ledger_summary()
    assert ledger["events_applied"] == kinds["good"] and ledger["duplicate_events"] == 0
    # every bad row is in the failure file exactly once, including those of the killed tries
    lines = [json.loads(line) for line in Path(summary["failures_path"]).read_text().splitlines()]
    assert len(lines) == 4_000 - kinds["good"] == summary["invalid"] + summary["rejected"] + summary["dead_lettered"]
    assert len({line["index"] for line in lines}) == len(lines)
    print(f"KILLS survived: {kills}; requests seen by Spotzee: {emulator.stats()['requests_total']}")


def test_cleared_task_rerun_after_25_hours_sends_nothing_twice(airflow, emulator, tmp_path):
    kinds = seed_events(tmp_path / "crm.db", 1_500, day=SEED_DAY)
    first = airflow.dagrun("spotzee_track_events", SEED_RUN_DATE, fresh=True)
    assert first.returncode == 0, first.stdout[-4000:]
    assert emulator.ledger_summary()["events_applied"] == kinds["good"]
    emulator.advance_clock(25 * 3600)  # Spotzee has forgotten every idempotency key
    again = airflow.dagrun("spotzee_track_events", SEED_RUN_DATE, clear="track_events", timeout=120)
    assert again.returncode == 0, again.stdout[-4000:]
    summary = summaries(again.stdout, "events")[-1]
    assert summary["requests"] == 0 and summary["extracted"] == 1_500 and summary["balanced"]
    ledger = emulator.ledger_summary()
    assert ledger["events_applied"] == kinds["good"] and ledger["duplicate_events"] == 0


def test_backfill_over_three_intervals_sends_each_row_once(airflow, emulator, tmp_path):
    kinds = seed_events(tmp_path / "crm.db", 3_000, day=SEED_DAY, days=3)
    days = [manual_run_date(SEED_DAY + dt.timedelta(days=i)) for i in range(3)]  # the three seeded days

    def backfill(**how: bool | str) -> list[dict]:
        found = []
        for day in days:
            done = airflow.dagrun("spotzee_track_events", day, **how)
            assert done.returncode == 0, done.stdout[-4000:]
            found.append(summaries(done.stdout, "events")[-1])
        return found

    first = backfill(fresh=True)
    assert [s["extracted"] for s in first] == [1_000, 1_000, 1_000]
    assert emulator.ledger_summary()["events_applied"] == kinds["good"]
    # re-running the backfill over completed runs (clear): the checkpoints say everything is final
    rerun = backfill(clear="track_events")
    assert [s["requests"] for s in rerun] == [0, 0, 0] and all(s["balanced"] for s in rerun)
    # brand-new runs of the same intervals (no checkpoint): same keys, so Spotzee replays every batch
    fresh = backfill(fresh=True)
    assert all(s["requests"] > 0 and s["replayed"] == s["requests"] for s in fresh)
    ledger = emulator.ledger_summary()
    assert ledger["events_applied"] == kinds["good"] and ledger["duplicate_events"] == 0


@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
def test_subscriptions_dag_waits_for_async_contacts(airflow, emulator, tmp_path, mode):
    seed_crm(tmp_path / "crm.db", 600, day=SEED_DAY)
    emulator.configure(async_delay_seconds=3.0)
    airflow.env["SPOTZEE_EXAMPLE_SENSOR_MODE"] = mode
    done = airflow.cli("dags", "test", "spotzee_subscriptions", SEED_RUN_DATE)  # unscheduled; a fixed date anyway
    assert done.returncode == 0, done.stdout[-4000:]
    upsert = summaries(done.stdout, "users_async")[-1]
    toggles = summaries(done.stdout, "subscriptions_batch")[-1]
    assert upsert["balanced"] and upsert["sent_ok"] > 0
    # every contact the async upsert sent became visible before the toggles went out: none unknown
    assert toggles["extracted"] == upsert["sent_ok"] and toggles["sent_ok"] == upsert["sent_ok"]
    assert toggles["rejected"] == 0
    assert emulator.subscriptions()["total"] == upsert["sent_ok"]
    if mode == "deferrable":
        assert "SpotzeeContactTrigger" in done.stdout or "defer" in done.stdout.lower()


def test_partitioned_sync_with_dynamic_task_mapping(airflow, emulator, tmp_path):
    kinds = seed_crm(tmp_path / "crm.db", 2_000, day=SEED_DAY)
    done = airflow.cli("dags", "test", "spotzee_crm_sync_partitioned", SEED_RUN_DATE)
    assert done.returncode == 0, done.stdout[-4000:]
    parts = summaries(done.stdout, "users_batch")
    assert len(parts) == 4 and len({p["idempotency_namespace"] for p in parts}) == 4
    assert sum(p["extracted"] for p in parts) == 2_000
    bad = sum(v for k, v in kinds.items() if k != "good")
    assert f"extracted=2000, sent_ok={2_000 - bad}" in done.stdout
    assert emulator.ledger_summary()["upsert_applications"] == 2_000 - bad


def test_the_demo_command_balances(tmp_path):
    """README command 1, end to end (smaller table): seeds, starts the emulator, runs the DAG, reconciles."""
    import subprocess
    import sys

    from tests.dags.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--rows", "1500", "--workdir",
                           str(tmp_path / "demo")], capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "balances" in done.stdout and "[FAIL]" not in done.stdout and done.stdout.count("[ok]") == 6
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--rows", "1500", "--workdir",
                            str(tmp_path / "demo")], capture_output=True, text=True, timeout=600, env=env, check=False)
    assert again.returncode == 0 and "balances" in again.stdout  # can be run twice in a row

"""Diff syncs through real Airflow 3 (``airflow dags test`` / DAG.test runs) against the emulator: the
example ``spotzee_model_sync`` (a view with no updated_at) over the seeded SQLite CRM. Each run names its
logical date, so the tests read the same rows on any date."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from airflow_provider_spotzee.testing.crm import SEED_DAY, manual_run_date, seed_crm
from tests.dags.conftest import summaries

pytestmark = pytest.mark.dags

RUN = [manual_run_date(SEED_DAY + dt.timedelta(days=n)) for n in range(3)]


def test_model_sync_sends_everything_then_only_the_changes(airflow, emulator, tmp_path):
    db_path = tmp_path / "crm.db"
    kinds = seed_crm(db_path, 2_000, day=SEED_DAY)
    bad = sum(v for k, v in kinds.items() if k != "good")
    first = airflow.cli("dags", "test", "spotzee_model_sync", RUN[0])
    assert first.returncode == 0, first.stdout[-4000:]
    one = summaries(first.stdout, "users_batch")[-1]
    assert (one["extracted"], one["sent_ok"], one["invalid"], one["removed"]) == (2_000, 2_000 - bad, bad, 0)

    db = sqlite3.connect(db_path)
    good = sorted(int(key) for (key,) in db.execute("SELECT row_key FROM spotzee_sync_snapshot WHERE status = 'sent'"))
    assert len(good) == 2_000 - bad
    changed, deleted = good[:50], good[-10:]
    db.executemany("UPDATE customers SET plan = 'changed-' || pk WHERE pk = ?", [(pk,) for pk in changed])
    db.executemany("DELETE FROM customers WHERE pk = ?", [(pk,) for pk in deleted])
    db.executemany("INSERT INTO customers (pk, id, email_address, phone_e164, locale, timezone, first_name, "
                   "last_name, plan, updated_at) VALUES (?, ?, ?, '+61400100200', 'en-AU', 'Australia/Sydney', "
                   "'New', 'Row', 'free', '2026-11-30 00:00:00')",
                   [(pk, f"new-{pk}", f"new{pk}@example.com") for pk in range(50_001, 50_021)])
    db.commit()
    second = airflow.cli("dags", "test", "spotzee_model_sync", RUN[1])
    assert second.returncode == 0, second.stdout[-4000:]
    two = summaries(second.stdout, "users_batch")[-1]
    assert (two["sent_ok"], two["removed"], two["invalid"]) == (70, 10, bad), two
    assert (two["diff"]["new"], two["diff"]["changed"], two["unchanged"]) == (20, 50, 2_010 - 70 - bad)
    assert "removed from the model: customer_id=" in second.stdout

    third = airflow.cli("dags", "test", "spotzee_model_sync", RUN[2])
    assert third.returncode == 0, third.stdout[-4000:]
    assert summaries(third.stdout, "users_batch")[-1]["sent_ok"] == 0
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == 2_000 - bad + 20
    assert ledger["contacts_upserted_more_than_once"] == 50  # exactly the changed rows, once each again
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM spotzee_sync_snapshot GROUP BY status").fetchall())
    assert statuses == {"sent": 2_000 - bad - 10 + 20, "invalid": bad}


def test_full_resync_param_resends_every_row_once(airflow, emulator, tmp_path):
    kinds = seed_crm(tmp_path / "crm.db", 600, day=SEED_DAY)
    bad = sum(v for k, v in kinds.items() if k != "good")
    assert airflow.cli("dags", "test", "spotzee_model_sync", RUN[0]).returncode == 0
    forced = airflow.cli("dags", "test", "spotzee_model_sync", RUN[1], "--conf", '{"full_resync": true}')
    assert forced.returncode == 0, forced.stdout[-4000:]
    summary = summaries(forced.stdout, "users_batch")[-1]
    assert (summary["sent_ok"], summary["diff"]["new"]) == (600 - bad, 600), summary
    quiet = airflow.cli("dags", "test", "spotzee_model_sync", RUN[2])
    assert summaries(quiet.stdout, "users_batch")[-1]["sent_ok"] == 0


def test_worker_killed_mid_diff_sync_resumes_and_applies_every_row_once(airflow, emulator, tmp_path):
    kinds = seed_crm(tmp_path / "crm.db", 4_000, day=SEED_DAY)
    emulator.set_faults(latency_ms=150)
    airflow.env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = emulator.connection_json(max_in_flight=2)
    code, output, kills = airflow.run_killing_workers(
        "spotzee_model_sync", RUN[0], lambda: emulator.ledger_summary()["contacts"], (900, 2_100))
    assert code == 0 and kills == 2, output[-4000:]
    summary = summaries(output, "users_batch")[-1]
    assert summary["resumed_from_index"] and summary["balanced"] and summary["extracted"] == 4_000
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == kinds["good"] and ledger["contacts_upserted_more_than_once"] == 0
    assert emulator.stats()["replays"] > 0  # the batches in flight at each kill went again and were replayed
    db = sqlite3.connect(tmp_path / "crm.db")
    assert db.execute("SELECT COUNT(*) FROM spotzee_sync_snapshot WHERE status = 'sent'").fetchone()[0] == kinds["good"]
    emulator.set_faults(latency_ms=0)
    again = airflow.cli("dags", "test", "spotzee_model_sync", RUN[1])
    assert summaries(again.stdout, "users_batch")[-1]["sent_ok"] == 0

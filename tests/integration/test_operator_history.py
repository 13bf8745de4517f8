"""The operator writes its sync history (``sync_log_conn_id``) and never fails a sync for it; in-process,
real hook over loopback to the emulator, real SQLite. Through real Airflow: tests/dags/test_observability.py."""

from __future__ import annotations

import json
import sqlite3

import pytest

from airflow_provider_spotzee.exceptions import SpotzeeSyncFailed
from airflow_provider_spotzee.operators.users import UpsertUsersOperator
from tests.integration.test_operators import context

RECORDS = [{"external_id": f"h-{i}", "email": f"h{i}@example.com" if i % 10 else "broken"} for i in range(100)]


@pytest.fixture
def log_db(tmp_path, monkeypatch):
    path = tmp_path / "log.db"
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_LOG", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def test_each_try_is_one_row_and_every_failure_one_row(hook, emulator, log_db, tmp_path):
    ctx = context()
    ctx["ti"].try_number = 1
    summary = UpsertUsersOperator(task_id="logged", records=RECORDS, sync_log_conn_id="sync_log",
                                  failures_path=str(tmp_path / "f.jsonl")).execute(ctx)
    assert summary["history"] == "written" and (summary["sent_ok"], summary["invalid"]) == (90, 10)
    db = sqlite3.connect(log_db)
    runs = db.execute("SELECT try_number, state, extracted, sent_ok, invalid, endpoint FROM spotzee_sync_runs").fetchall()
    assert runs == [(1, "success", 100, 90, 10, "users_batch")]
    failures = db.execute("SELECT idx, external_id, stage, code FROM spotzee_sync_failures ORDER BY idx").fetchall()
    assert [f[0] for f in failures] == list(range(0, 100, 10)) and failures[0][1:] == (
        "h-0", "invalid", "parameter_invalid_format")
    assert "broken" not in json.dumps(db.execute("SELECT * FROM spotzee_sync_failures").fetchall())  # no PII
    ctx["ti"].try_number = 2  # the same run again (a clear): one more run row, the failures replaced, not doubled
    UpsertUsersOperator(task_id="logged", records=RECORDS, sync_log_conn_id="sync_log",
                        failures_path=str(tmp_path / "f.jsonl")).execute(ctx)
    assert db.execute("SELECT COUNT(*) FROM spotzee_sync_runs").fetchone() == (2,)
    assert db.execute("SELECT COUNT(*) FROM spotzee_sync_failures").fetchone() == (10,)


def test_a_failed_sync_is_recorded_with_its_exception(hook, emulator, log_db, tmp_path):
    emulator.set_faults(error_rate=1.0)
    with pytest.raises(SpotzeeSyncFailed):
        UpsertUsersOperator(task_id="down", records=RECORDS[:20], sync_log_conn_id="sync_log",
                            failures_path=str(tmp_path / "f.jsonl")).execute(context())
    db = sqlite3.connect(log_db)
    assert db.execute("SELECT state, dead_lettered FROM spotzee_sync_runs").fetchone() == ("SpotzeeSyncFailed", 18)


def test_a_history_database_that_fails_never_fails_the_sync(hook, emulator, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_LOG", json.dumps(
        {"conn_type": "sqlite", "host": str(tmp_path / "no" / "such" / "dir" / "log.db")}))
    summary = UpsertUsersOperator(task_id="unlogged", records=RECORDS, sync_log_conn_id="sync_log",
                                  failures_path=str(tmp_path / "f.jsonl")).execute(context())
    assert summary["sent_ok"] == 90 and summary["history"].startswith("not written: ")
    assert capsys.readouterr().out.count("The sync history was not written to 'sync_log'") == 1  # one warning
    assert emulator.ledger_summary()["contacts"] == 90

"""The API key never appears in task logs, XCom, rendered fields, the task state store, exception text or
the failure file; the failure list in XCom carries no email or phone."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_spotzee.testing import ApiKey, EmulatorConfig
from airflow_provider_spotzee.testing.crm import seed_crm
from tests.dags.conftest import summaries

pytestmark = pytest.mark.dags

SECRET = "sk_live_Zx9SuperSecretKey"


def _everything_airflow_kept(home) -> str:
    text = []
    for path in (home / "logs").rglob("*"):
        if path.is_file():
            text.append(path.read_text(errors="ignore"))
    db = sqlite3.connect(home / "airflow.db")
    for table in ("xcom", "rendered_task_instance_fields", "task_state_store", "task_instance", "dag_run"):
        text.append(repr(db.execute(f"SELECT * FROM {table}").fetchall()))
    return "\n".join(text)


def test_the_key_never_leaks_and_xcom_failures_carry_no_pii(airflow, emulator, tmp_path):
    emulator.reset(EmulatorConfig(api_keys=(ApiKey(SECRET),)))
    conn = emulator.connection_dict()
    conn["password"] = SECRET
    airflow.env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = json.dumps(conn)
    seed_crm(tmp_path / "crm.db", 400, bad_ratio=0.04)
    done = airflow.cli("dags", "test", "spotzee_crm_sync", "2026-11-25")
    assert done.returncode == 0, done.stdout[-3000:]
    summary = summaries(done.stdout, "users_batch")[-1]
    assert summary["invalid"] > 0
    kept = _everything_airflow_kept(airflow.home)
    assert SECRET not in done.stdout + done.stderr and SECRET not in kept
    assert SECRET not in Path(summary["failures_path"]).read_text()
    db = sqlite3.connect(airflow.home / "airflow.db")
    rows = db.execute("SELECT value FROM xcom WHERE key = 'failures'").fetchall()
    text = repr(rows)
    assert rows and "parameter_" in text, "the failure list is in XCom"
    assert "@" not in text and "+61" not in text


def test_a_rejected_key_fails_the_task_without_showing_it(airflow, emulator, tmp_path):
    conn = emulator.connection_dict()
    conn["password"] = SECRET  # the emulator does not know this key: 401
    airflow.env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = json.dumps(conn)
    seed_crm(tmp_path / "crm.db", 50)
    done = airflow.cli("dags", "test", "spotzee_crm_sync", "2026-11-25")
    assert done.returncode != 0 or "failed" in done.stdout
    assert "SpotzeeAuthError" in done.stdout and "check the connection's password" in done.stdout
    assert SECRET not in done.stdout + done.stderr and SECRET not in _everything_airflow_kept(airflow.home)

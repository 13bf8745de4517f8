"""The mistakes of a new user's first hour, through real Airflow (``airflow dags test``) against the emulator:
data that looks like a template, a key that does not identify a row, a misspelled mapping target, and a
failure a retry cannot change. The DAGs are written to a private dags folder by each test."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.dags.conftest import summaries

pytestmark = pytest.mark.dags

HEADER = '''
from datetime import datetime, timedelta

from airflow.sdk import DAG, XComArg, task

from airflow_provider_spotzee.operators.users import UpsertUsersOperator

ARGS = {"retries": 3, "retry_delay": timedelta(seconds=1)}
'''


def dag_folder(airflow, tmp_path: Path, source: str) -> None:
    folder = tmp_path / "dags"
    folder.mkdir(exist_ok=True)
    (folder / "first_hour.py").write_text(HEADER + textwrap.dedent(source))
    airflow.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)


def test_record_values_are_data_never_templates(airflow, emulator, tmp_path):
    """Literal records and records from XCom are sent exactly as given: ``{{ }}``, ``{% %}`` and names
    ending in .sql are data. The API key, which a template could reach, never leaves as contact data."""
    dag_folder(airflow, tmp_path, '''
    TRICKY = {"note": "{{ conn.spotzee_default.password }}", "tag": "{% if true %}yes{% endif %}",
              "file": "report.sql", "sum": "lit-{{ 7*7 }}"}

    with DAG("first_hour_literal", schedule=None, start_date=datetime(2026, 11, 1), default_args=ARGS):
        literal = UpsertUsersOperator(task_id="literal", records=[
            {"external_id": "lit-{{ 7*7 }}", "data": TRICKY},
            {"external_id": "export.sql", "data": {"file": "export.sql"}},
        ])

        @task
        def from_upstream() -> list[dict]:
            return [{"external_id": "xcom-{{ ds }}", "data": TRICKY}]

        UpsertUsersOperator(task_id="from_xcom", records=from_upstream()) << literal
    ''')
    done = airflow.cli("dags", "test", "first_hour_literal", "2026-11-25")
    assert done.returncode == 0, done.stdout[-4000:]
    tricky = {"note": "{{ conn.spotzee_default.password }}", "tag": "{% if true %}yes{% endif %}",
              "file": "report.sql", "sum": "lit-{{ 7*7 }}"}
    assert emulator.contact("lit-{{ 7*7 }}")["data"] == tricky
    assert emulator.contact("xcom-{{ ds }}")["data"] == tricky
    assert emulator.contact("export.sql")["data"] == {"file": "export.sql"}
    assert emulator.contact("lit-49") is None
    everything = json.dumps(emulator.contacts())
    assert emulator.api_key not in everything and "lit-49" not in everything


def test_a_key_that_does_not_identify_a_row_fails_before_sending(airflow, emulator, tmp_path):
    """An orders table keyed by the customer (acct = 1,1,2,2,3, one ts): a keyset pager would skip rows
    sharing (ts, acct) at a page boundary. The task fails at once, naming the pair, and sends nothing."""
    db = sqlite3.connect(tmp_path / "crm.db")
    db.execute("CREATE TABLE orders (acct INTEGER, email TEXT, ts TEXT)")
    db.executemany("INSERT INTO orders VALUES (?, ?, '2026-11-24 10:00:00')",
                   [(a, f"o{i}@example.com") for i, a in enumerate([1, 1, 2, 2, 3])])
    db.commit()
    dag_folder(airflow, tmp_path, '''
    with DAG("first_hour_orders", schedule=None, start_date=datetime(2026, 11, 1), default_args=ARGS):
        UpsertUsersOperator(task_id="orders", conn_id="crm_db", table="orders", cursor_column="ts",
                            key_column="acct", incremental="full", page_rows=1,
                            mapping={"acct": "external_id", "email": "email"})
    ''')
    done = airflow.cli("dags", "test", "first_hour_orders", "2026-11-25")
    assert done.returncode != 0
    assert "not unique by (cursor_column, key_column) = ('ts', 'acct')" in done.stdout
    assert "2 pairs occur more than once (4 rows)" in done.stdout and "primary key" in done.stdout
    assert done.stdout.count("SpotzeeConfigError") >= 1 and "UP_FOR_RETRY" not in done.stdout.upper().replace(" ", "_")
    assert emulator.stats()["requests_total"] == 0


def test_a_misspelled_mapping_target_fails_when_the_dag_is_parsed(airflow, emulator, tmp_path):
    dag_folder(airflow, tmp_path, '''
    with DAG("first_hour_typo", schedule=None, start_date=datetime(2026, 11, 1), default_args=ARGS):
        UpsertUsersOperator(task_id="typo", records=[{"member_code": "m1", "mail": "a@example.com"}],
                            mapping={"member_code": "external_id", "mail": "e_mail"})
    ''')
    done = airflow.cli("dags", "test", "first_hour_typo", "2026-11-25")
    assert done.returncode != 0
    assert "mapping target 'e_mail' (column 'mail') is not a field of UserUpsert; did you mean 'email'?" in (
        done.stdout + done.stderr)
    assert emulator.stats()["requests_total"] == 0


def test_failures_a_retry_cannot_change_are_not_retried_and_write_back_runs(airflow, emulator, tmp_path):
    """A callable mapping with a typo (every record fails for one cause) and a sync over max_failure_ratio:
    each fails once, without its three retries, and the all_done write-back still runs."""
    dag_folder(airflow, tmp_path, '''
    RECORDS = [{"external_id": f"c-{i}", "email": f"c{i}@example.com" if i % 10 else "broken"} for i in range(200)]

    with DAG("first_hour_no_retry", schedule=None, start_date=datetime(2026, 11, 1), default_args=ARGS):
        typo = UpsertUsersOperator(task_id="typo", records=RECORDS,
                                   mapping=lambda row: {"external_id": row["external_id"], "e_mail": row["email"]})
        ratio = UpsertUsersOperator(task_id="ratio", records=RECORDS, max_failure_ratio=0.05)

        @task(trigger_rule="all_done")
        def write_back(failures: list[dict] | None) -> int:
            print(f"WRITE-BACK {len(failures or [])} failures")
            return len(failures or [])

        write_back(XComArg(ratio, key="failures")) << typo
    ''')
    done = airflow.cli("dags", "test", "first_hour_no_retry", "2026-11-25")  # the run's leaf is write_back
    runs = summaries(done.stdout, "users_batch")
    assert len(runs) == 2, [r["invalid"] for r in runs]  # one try each: no retry of either
    assert "200 of the records failed for one cause (invalid, parameter_invalid_format: e_mail: unknown field" \
        in done.stdout
    assert "20 of 200 records failed (10.0% > max_failure_ratio 5.0%)" in done.stdout
    assert "WRITE-BACK 20 failures" in done.stdout

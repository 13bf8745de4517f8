"""The CRM sync DAG with a real PostgreSQL source (a private server started by the test).

On CI, .ci/run installs Debian's postgresql package when it is missing; without it this test is skipped
with the reason.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from airflow_provider_spotzee.testing.crm import seed_crm
from airflow_provider_spotzee.testing.postgres import postgres_server, server_binaries
from tests.dags.conftest import summaries

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def postgres():
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package 'postgresql')")
    with postgres_server() as server:
        yield {"host": server.host, "port": server.port, "user": server.user, "dbname": server.dbname}


def _load_crm_into_postgres(pg: dict, sqlite_path) -> None:
    import psycopg2

    rows = sqlite3.connect(sqlite_path).execute(
        "SELECT pk, id, email_address, phone_e164, locale, timezone, first_name, last_name, plan, updated_at "
        "FROM customers").fetchall()
    with psycopg2.connect(**pg) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS customers")
        cur.execute("""CREATE TABLE customers (pk BIGINT PRIMARY KEY, id TEXT, email_address TEXT, phone_e164 TEXT,
                       locale TEXT, timezone TEXT, first_name TEXT, last_name TEXT, plan TEXT,
                       updated_at TIMESTAMPTZ NOT NULL)""")
        cur.executemany("INSERT INTO customers VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        [(*r[:9], r[9] + "+00") for r in rows])


def test_crm_sync_from_postgresql(airflow, emulator, tmp_path, postgres):
    kinds = seed_crm(tmp_path / "seed.db", 1_500)
    _load_crm_into_postgres(postgres, tmp_path / "seed.db")
    airflow.env["AIRFLOW_CONN_CRM_DB"] = json.dumps({
        "conn_type": "postgres", "host": postgres["host"], "port": postgres["port"], "login": postgres["user"],
        "schema": postgres["dbname"]})
    done = airflow.cli("dags", "test", "spotzee_crm_sync", "2026-11-25")
    assert done.returncode == 0, done.stdout[-4000:]
    summary = summaries(done.stdout, "users_batch")[-1]
    bad = sum(v for k, v in kinds.items() if k != "good")
    assert summary["balanced"] and summary["extracted"] == 1_500
    assert (summary["sent_ok"], summary["invalid"]) == (1_500 - bad, bad)
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == summary["sent_ok"] and ledger["contacts_upserted_more_than_once"] == 0

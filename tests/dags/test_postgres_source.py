"""The CRM sync DAG with a real PostgreSQL source (a private server started by the test).

On CI, .ci/run installs Debian's postgresql package when it is missing; without it this test is skipped
with the reason.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile

import pytest

from airflow_provider_spotzee.testing.crm import seed_crm
from tests.dags.conftest import summaries

pytestmark = pytest.mark.dags


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not installed (Debian package 'postgresql')")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="spotzee-pg-")
    os.chmod(root, 0o755)
    data = os.path.join(root, "data")
    os.mkdir(data)
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "spotzee", "--no-sync")
    run(f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "spotzee", "dbname": "postgres"}
    finally:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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

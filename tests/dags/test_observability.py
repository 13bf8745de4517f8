"""Sync history, Assets and OpenLineage through real Airflow (docs/observability.md).

``test_asset_schedules_the_campaign_with_the_counts`` runs a real deployment: PostgreSQL as the metadata
database, ``airflow api-server``, ``dag-processor`` and ``scheduler`` (LocalExecutor), each its own process,
and the OpenLineage provider with a file transport. The scheduler's own run of ``spotzee_crm_sync`` syncs the seeded
day (yesterday: the DAG has catchup=False); the scheduler then runs ``spotzee_campaign``, which is scheduled on the Asset
``spotzee://<emulator host>/users``, because the sync's event updated it. The test checks the history rows
in the CRM, the ``spotzee_error`` write-back, the asset event and its counts, what the campaign read from
it, and the OpenLineage COMPLETE event of the sync.

``test_a_failed_sync_is_in_the_history_and_in_lineage`` runs ``airflow dags test`` with a wrong API key:
the history has the failed try, and OpenLineage has a FAIL event with the error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_spotzee.lineage import spotzee_asset_uri
from airflow_provider_spotzee.testing import SpotzeeEmulator
from airflow_provider_spotzee.testing.crm import SEED_RUN_DATE, seed_crm
from airflow_provider_spotzee.testing.postgres import PostgresServer, postgres_server, server_binaries
from tests.dags.conftest import ROOT

pytestmark = pytest.mark.dags

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
COUNTS = ("extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(pg: PostgresServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg2  # type: ignore[import-untyped]

    with contextlib.closing(psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.dbname)) as db, \
            db.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _lineage_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _env(home: Path, crm: Path, emulator: SpotzeeEmulator, lineage: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPENLINEAGE"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_SPOTZEE_DEFAULT": emulator.connection_json(),
        "AIRFLOW_CONN_CRM_DB": json.dumps({"conn_type": "sqlite", "host": str(crm)}),
        "SPOTZEE_EXAMPLE_BASE_URL": emulator.base_url,  # the campaign DAG's Asset names the emulator's host
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(lineage),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "spotzee-tests",
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


@contextlib.contextmanager
def _deployment(tmp_path: Path, env: dict[str, str], pg: PostgresServer) -> Iterator[list[subprocess.Popen[bytes]]]:
    api_port = _free_port()
    env.update({
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    })
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for command in (["api-server", "--port", str(api_port), "--workers", "1"], ["dag-processor"], ["scheduler"]):
            with (tmp_path / f"{command[0]}.log").open("wb") as log:
                procs.append(subprocess.Popen([AIRFLOW, *command], env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + 180
        while True:
            assert all(p.poll() is None for p in procs), "an Airflow component exited; see its log in " + str(tmp_path)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2,
                             trust_env=False).status_code < 500:
                    break
            assert time.monotonic() < deadline, "the api-server did not start"
            time.sleep(1)
        while len(_query(pg, "SELECT dag_id FROM dag WHERE dag_id IN ('spotzee_crm_sync', 'spotzee_campaign')")) < 2:
            assert time.monotonic() < deadline, "the dag-processor did not register the DAGs"
            time.sleep(1)
        yield procs
    finally:
        for proc in procs:  # the whole process group: the executor's workers and their task processes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    if server_binaries() is None:
        pytest.skip("a real scheduler needs PostgreSQL server binaries (Debian package 'postgresql') for Airflow's "
                    "metadata database")
    with postgres_server(max_connections=200) as server:
        yield server


def _wait(pg: PostgresServer, sql: str, *args: Any, timeout: float, procs: list[subprocess.Popen[bytes]],
          what: str) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        assert all(p.poll() is None for p in procs), f"an Airflow component exited while waiting for {what}"
        rows = _query(pg, sql, *args)
        if rows:
            return rows
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_asset_schedules_the_campaign_with_the_counts(pg: PostgresServer, emulator: SpotzeeEmulator,
                                                       tmp_path: Path) -> None:
    started = time.monotonic()
    crm, lineage = tmp_path / "crm.db", tmp_path / "lineage.jsonl"
    # The scheduler's own run: catchup=False schedules the latest complete day, yesterday (UTC). One sync run
    # only, so exactly one asset event (a second sync's event arriving while the campaign run is being
    # created would be folded into Airflow's queue entry of the first and trigger nothing of its own).
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    kinds = seed_crm(crm, 300, day=day)
    bad = sum(count for kind, count in kinds.items() if kind != "good")
    env = _env(tmp_path / "airflow", crm, emulator, lineage)
    users = spotzee_asset_uri(emulator.base_url, "users_batch")
    with _deployment(tmp_path, env, pg) as procs:
        subprocess.run([AIRFLOW, "dags", "unpause", "spotzee_campaign"], env=env, check=True, capture_output=True,
                       timeout=120)
        subprocess.run([AIRFLOW, "dags", "unpause", "spotzee_crm_sync"], env=env, check=True, capture_output=True,
                       timeout=120)
        ((run_id, interval_start),) = _wait(
            pg, "SELECT run_id, data_interval_start FROM dag_run WHERE dag_id = 'spotzee_crm_sync'", timeout=60,
            procs=procs, what="the scheduled CRM sync run")
        assert interval_start.date() == day, "the test ran across midnight UTC: run it again"
        ((state,),) = _wait(pg, "SELECT state FROM dag_run WHERE dag_id = 'spotzee_crm_sync' AND run_id = %s "
                                "AND state IN ('success', 'failed')", run_id, timeout=150, procs=procs,
                            what="the CRM sync run")
        assert state == "success", (tmp_path / "scheduler.log").read_text()[-4000:]
        ((summary,),) = _query(pg, "SELECT value FROM xcom WHERE dag_id = 'spotzee_crm_sync' AND run_id = %s AND "
                                   "task_id = 'upsert_users' AND key = 'return_value'", run_id)
        summary = _json(summary)
        assert summary["balanced"] and summary["extracted"] == 300 and summary["invalid"] == bad

        # the asset event of this sync: on spotzee://<host>/users, with the counts
        events = _query(pg, "SELECT e.id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                            "WHERE a.uri = %s AND e.source_dag_id = 'spotzee_crm_sync' AND e.source_run_id = %s",
                        users, run_id)
        assert len(events) == 1, events
        extra = _json(events[0][1])
        assert {k: extra[k] for k in COUNTS} == {k: summary[k] for k in COUNTS}

        # the campaign DAG ran because of it (not on a timetable: it has none) and read the counts
        ((campaign_run,),) = _wait(
            pg, "SELECT r.run_id FROM dag_run r JOIN dagrun_asset_event d ON d.dag_run_id = r.id "
                "WHERE r.dag_id = 'spotzee_campaign' AND d.event_id = %s AND r.state IN ('success', 'failed')",
            events[0][0], timeout=90, procs=procs, what="the asset-triggered campaign run")
        ((campaign_state, run_type),) = _query(pg, "SELECT state, run_type FROM dag_run WHERE dag_id = "
                                                   "'spotzee_campaign' AND run_id = %s", campaign_run)
        assert (campaign_state, run_type) == ("success", "asset_triggered")
        ((totals,),) = _query(pg, "SELECT value FROM xcom WHERE dag_id = 'spotzee_campaign' AND run_id = %s AND "
                                  "task_id = 'audience_update' AND key = 'return_value'", campaign_run)
        totals = _json(totals)
        assert totals["sent_ok"] == summary["sent_ok"] and totals["invalid"] == summary["invalid"]
        assert _query(pg, "SELECT state FROM task_instance WHERE dag_id = 'spotzee_campaign' AND run_id = %s AND "
                          "task_id = 'start_campaign'", campaign_run) == [("success",)]
        # the OpenLineage COMPLETE event is emitted by the task process after it finished: wait for it
        deadline = time.monotonic() + 30
        while not any(e["eventType"] == "COMPLETE" and e["job"]["name"] == "spotzee_crm_sync.upsert_users"
                      for e in _lineage_events(lineage)):
            assert time.monotonic() < deadline, f"no OpenLineage COMPLETE event in {lineage}"
            time.sleep(1)

    # the history, in the CRM database: one row for the try, one per failed record, no payload
    with contextlib.closing(sqlite3.connect(crm)) as db:
        runs = db.execute("SELECT try_number, state, extracted, sent_ok, invalid, rejected, dead_lettered, "
                          "data_interval_start, failures_path FROM spotzee_sync_runs WHERE dag_id = "
                          "'spotzee_crm_sync' AND run_id = ?", (run_id,)).fetchall()
        failed = db.execute("SELECT source_key, external_id, stage, code FROM spotzee_sync_failures "
                            "WHERE run_id = ?", (run_id,)).fetchall()
        marked = db.execute("SELECT CAST(pk AS TEXT), spotzee_error FROM customers "
                            "WHERE spotzee_error IS NOT NULL").fetchall()
        everything = json.dumps(db.execute("SELECT * FROM spotzee_sync_failures").fetchall())
    assert runs == [(1, "success", 300, summary["sent_ok"], bad, 0, 0, runs[0][7], summary["failures_path"])]
    assert runs[0][7].startswith(day.isoformat())  # the data interval of the seeded day
    assert len(failed) == bad and all(stage == "invalid" and code for _, _, stage, code in failed)
    assert "@" not in everything  # identifiers and codes, never the values
    # the write-back: exactly the failed rows carry their error
    assert sorted(pk for pk, _ in marked) == sorted(key for key, _, _, _ in failed)
    assert all(error.startswith("invalid: ") for _, error in marked)

    # OpenLineage: the SQLite table in, the Spotzee object out, rows sent and the mapping's column lineage
    (complete,) = [e for e in _lineage_events(lineage)
                   if e["eventType"] == "COMPLETE" and e["job"]["name"] == "spotzee_crm_sync.upsert_users"]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [(f"sqlite://{crm}", "customers")]
    (output,) = complete["outputs"]
    assert f"{output['namespace']}/{output['name']}" == users
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == summary["sent_ok"]
    fields = output["facets"]["columnLineage"]["fields"]
    assert fields["email"]["inputFields"][0]["field"] == "email_address"
    assert fields["data.plan"]["inputFields"][0] == {
        "namespace": f"sqlite://{crm}", "name": "customers", "field": "plan",
        "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}]}
    assert "@example" not in lineage.read_text()
    assert time.monotonic() - started < 240, "the deployment test is meant to stay under ~3 minutes"


def test_a_failed_sync_is_in_the_history_and_in_lineage(airflow: Any, emulator: SpotzeeEmulator,
                                                        tmp_path: Path) -> None:
    crm, lineage = tmp_path / "crm.db", tmp_path / "lineage.jsonl"
    seed_crm(crm, 50)
    wrong = json.loads(emulator.connection_json())
    wrong["password"] = "sk_test_" + "x" * 24  # a key the emulator does not know: 401, not retried
    airflow.env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = json.dumps(wrong)
    airflow.env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(lineage),
                                                                 "append": True})
    done = airflow.cli("dags", "test", "spotzee_crm_sync", SEED_RUN_DATE)
    output = done.stdout + done.stderr
    assert done.returncode != 0 or "state=failed" in output, output[-4000:]
    with contextlib.closing(sqlite3.connect(crm)) as db:
        states = db.execute("SELECT state FROM spotzee_sync_runs WHERE dag_id = 'spotzee_crm_sync'").fetchall()
    assert states and all(state == "SpotzeeAuthError" for (state,) in states), states
    fail = [e for e in _lineage_events(lineage)
            if e["eventType"] == "FAIL" and e["job"]["name"] == "spotzee_crm_sync.upsert_users"]
    assert fail, output[-4000:]
    event = fail[-1]
    # the error facet (Airflow's listener fills it from the same exception as the operator's facet)
    assert "Spotzee refused the API key" in event["run"]["facets"]["errorMessage"]["message"]
    # the operator's on_failure lineage: the source in, the Spotzee object out, no statistics (nothing sent)
    assert [d["name"] for d in event["inputs"]] == ["customers"]
    (output,) = event["outputs"]
    assert output["namespace"].startswith("spotzee://") and output["name"] == "users"
    assert "columnLineage" in output["facets"] and not output.get("outputFacets")
    assert wrong["password"] not in lineage.read_text() and wrong["password"] not in output

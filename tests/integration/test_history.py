"""SyncHistory against real databases: a SQLite file and a private PostgreSQL server.

What the operator relies on: the tables are created when missing (also by two tasks at once), a write
replaces the try's run row and the run's failure rows in one transaction, so a retried or repeated write
leaves neither duplicates nor gaps, no payload is ever written, and database errors are raised (the
operator turns them into one warning). PostgreSQL is skipped, with the reason, where its server binaries
are missing (.ci/run installs them).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_spotzee.sync.history import CHUNK_ROWS, DDL, RUN_COLUMNS, SyncHistory, ddl_statements
from airflow_provider_spotzee.testing.postgres import postgres_server, server_binaries


@pytest.fixture(scope="module")
def pg_server() -> Iterator[dict[str, Any]]:
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package 'postgresql')")
    with postgres_server() as server:
        yield {"host": server.host, "port": server.port, "user": server.user, "dbname": server.dbname}


class Db:
    """A way to open connections to one database, and its DB-API placeholder."""

    def __init__(self, connect: Callable[[], Any], placeholder: str, kind: str) -> None:
        self.connect, self.placeholder, self.kind = connect, placeholder, kind

    def history(self, prefix: str = "spotzee_") -> SyncHistory:
        history = SyncHistory(self.connect(), self.placeholder, prefix)
        history.ensure()
        return history

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "history.db"
        yield Db(lambda: sqlite3.connect(path), "?", "sqlite")
        return
    import psycopg2  # type: ignore[import-untyped]

    pg = request.getfixturevalue("pg_server")
    with psycopg2.connect(**pg) as conn, conn.cursor() as cur:  # a fresh schema per test
        cur.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    yield Db(lambda: psycopg2.connect(**pg), "%s", "postgres")


def run(try_number: int = 1, map_index: int = -1, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dag_id": "spotzee_crm_sync", "task_id": "upsert_users", "run_id": "scheduled__2026-11-24T00:00:00+00:00",
        "map_index": map_index, "try_number": try_number, "endpoint": "users_batch",
        "data_interval_start": "2026-11-24T00:00:00+00:00", "data_interval_end": "2026-11-25T00:00:00+00:00",
        "started_at": "2026-11-25T00:00:01+00:00", "ended_at": "2026-11-25T00:00:09+00:00",
        "extracted": 100, "sent_ok": 95, "unchanged": 2, "invalid": 3, "rejected": 0, "dead_lettered": 0,
        "removed": None, "requests": 2, "retries": 0, "throttled": 0, "items_per_second": 12.5,
        "state": "success", "failures_path": "/tmp/f.jsonl",
    }
    row.update(changes)
    return row


def failure(index: int, stage: str = "invalid", code: str = "invalid_email") -> dict[str, Any]:
    return {"index": index, "source_key": str(1000 + index), "external_id": f"c-{index}", "anonymous_id": None,
            "subscription_id": None, "stage": stage, "code": code, "message": f"{code} in field email",
            "payload": {"external_id": f"c-{index}", "email": f"person{index}@example.com"}}


def test_ensure_creates_both_tables_and_is_idempotent(db: Db) -> None:
    history = db.history()
    history.ensure()  # a second time: nothing happens
    assert db.rows("SELECT COUNT(*) FROM spotzee_sync_runs") == [(0,)]
    assert db.rows("SELECT COUNT(*) FROM spotzee_sync_failures") == [(0,)]
    assert len(ddl_statements()) == 3 and "{prefix}sync_runs" in DDL and SyncHistory.DDL == DDL


def test_record_writes_one_run_row_and_the_failures_without_payload(db: Db) -> None:
    history = db.history()
    history.record(run(removed=4), [failure(3), failure(7, "rejected", "contact_conflict")])
    (row,) = db.rows(f"SELECT {', '.join(RUN_COLUMNS)} FROM spotzee_sync_runs")
    written = dict(zip(RUN_COLUMNS, row, strict=True))
    assert written == {**run(), "removed": 4}
    failures = db.rows("SELECT idx, try_number, source_key, external_id, anonymous_id, subscription_id, stage, code, "
                       "message FROM spotzee_sync_failures ORDER BY idx")
    assert failures == [
        (3, 1, "1003", "c-3", None, None, "invalid", "invalid_email", "invalid_email in field email"),
        (7, 1, "1007", "c-7", None, None, "rejected", "contact_conflict", "contact_conflict in field email"),
    ]
    everything = repr(db.rows("SELECT * FROM spotzee_sync_failures")) + repr(db.rows("SELECT * FROM spotzee_sync_runs"))
    assert "@example.com" not in everything  # the payload never reaches the database


def test_a_retried_try_leaves_no_duplicates_and_no_gaps(db: Db) -> None:
    history = db.history()
    history.record(run(1, state="SpotzeeSyncFailed", dead_lettered=5, sent_ok=90),
                   [failure(1), failure(2), *(failure(i, "dead_lettered", "server_error") for i in range(50, 55))])
    # the retry resent the dead letters (4 of them now went through, one was rejected) and found one more
    # bad record; the failure file holds every failed record of the run once, and so does the table
    retry = [failure(1), failure(2), failure(54, "rejected", "invalid_phone"), failure(80)]
    history.record(run(2, state="success", sent_ok=94, invalid=3, rejected=1), retry)
    history.record(run(2, state="success", sent_ok=94, invalid=3, rejected=1), retry)  # repeated write
    assert db.rows("SELECT try_number, state FROM spotzee_sync_runs ORDER BY try_number") == [
        (1, "SpotzeeSyncFailed"), (2, "success")]
    assert db.rows("SELECT idx, stage, try_number FROM spotzee_sync_failures ORDER BY idx") == [
        (1, "invalid", 2), (2, "invalid", 2), (54, "rejected", 2), (80, "invalid", 2)]


def test_map_indexes_and_runs_are_kept_apart(db: Db) -> None:
    history = db.history()
    history.record(run(map_index=0), [failure(1)])
    history.record(run(map_index=1), [failure(1), failure(2)])
    history.record(run(run_id="manual__x"), [])
    history.record(run(map_index=0), [])  # partition 0 fixed: its failures go, partition 1's stay
    assert db.rows("SELECT map_index, COUNT(*) FROM spotzee_sync_failures GROUP BY map_index") == [(1, 2)]
    assert db.rows("SELECT COUNT(*) FROM spotzee_sync_runs") == [(3,)]


def test_many_failures_are_written_in_chunks(db: Db) -> None:
    history = db.history()
    count = 2 * CHUNK_ROWS + 37
    history.record(run(invalid=count), (failure(i) for i in range(count)))  # any iterable: a generator too
    assert db.rows("SELECT COUNT(*), MIN(idx), MAX(idx) FROM spotzee_sync_failures") == [(count, 0, count - 1)]


def test_a_failed_write_changes_nothing(db: Db) -> None:
    history = db.history()
    history.record(run(), [failure(1), failure(2)])
    broken = [failure(3), {"index": 4}]  # no stage: raises after the DELETEs, inside the transaction
    with pytest.raises(KeyError):
        history.record(run(sent_ok=1), broken)
    assert db.rows("SELECT idx FROM spotzee_sync_failures ORDER BY idx") == [(1,), (2,)]
    assert db.rows("SELECT sent_ok FROM spotzee_sync_runs") == [(95,)]
    history.record(run(sent_ok=2), [failure(5)])  # the same connection is still usable
    assert db.rows("SELECT idx FROM spotzee_sync_failures") == [(5,)]


def test_a_table_prefix(db: Db) -> None:
    history = db.history("crm_")
    history.record(run(), [failure(1)])
    assert db.rows("SELECT COUNT(*) FROM crm_sync_failures") == [(1,)]
    with pytest.raises(ValueError, match="prefix"):
        SyncHistory(db.connect(), db.placeholder, "x; DROP TABLE customers; --")


def test_long_texts_are_cut_not_refused(db: Db) -> None:
    history = db.history()
    history.record(run(), [dict(failure(1), message="m" * 5000, external_id="e" * 2000)])
    ((message, external_id),) = db.rows("SELECT message, external_id FROM spotzee_sync_failures")
    assert len(message) == 1000 and len(external_id) == 1000


def test_two_tasks_create_the_tables_at_once(db: Db) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        try:
            history = SyncHistory(db.connect(), db.placeholder, "race_")
            barrier.wait()
            history.ensure()
            history.conn.close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert db.rows("SELECT COUNT(*) FROM race_sync_runs") == [(0,)]


def test_database_errors_are_raised(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    SyncHistory(sqlite3.connect(path), "?").ensure()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        SyncHistory(readonly, "?").record(run(), [failure(1)])
    with pytest.raises(sqlite3.OperationalError):
        SyncHistory(sqlite3.connect(f"file:{tmp_path / 'none.db'}?mode=ro", uri=True), "?").ensure()


def test_postgres_input_is_named_as_common_sql_names_it(pg_server: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenLineage input of a PostgreSQL source: namespace postgres://host:port, name db.schema.table."""
    import json

    pytest.importorskip("airflow.providers.openlineage")
    from airflow_provider_spotzee.lineage import openlineage_facets

    monkeypatch.setenv("AIRFLOW_CONN_PG_CRM", json.dumps({
        "conn_type": "postgres", "host": pg_server["host"], "port": pg_server["port"], "login": pg_server["user"],
        "schema": pg_server["dbname"]}))
    lineage = openlineage_facets(source_conn_id="pg_crm", table="customers", sql=None, mapping={"id": "external_id"},
                                 endpoint_name="users_batch", base_url="http://127.0.0.1:8089/api/client",
                                 summary={"sent_ok": 3})
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"postgres://{pg_server['host']}:{pg_server['port']}", f"{pg_server['dbname']}.public.customers")]
    joined = openlineage_facets(source_conn_id="pg_crm", table=None,
                                sql="SELECT c.id, o.total FROM crm.customers c JOIN orders o ON o.customer = c.id",
                                mapping=None, endpoint_name="events", base_url=None, summary=None)
    assert sorted(d.name for d in joined.inputs) == [f"{pg_server['dbname']}.crm.customers",
                                                     f"{pg_server['dbname']}.public.orders"]
    assert "sql" in joined.job_facets and joined.outputs == []

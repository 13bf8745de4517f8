"""Diff syncs (incremental="diff") in-process: the operator's execute with a real hook over loopback to the
emulator, real SQLite (and PostgreSQL) sources and snapshots. Through real Airflow: tests/dags/test_diff_dags.py.

Each ``run(n)`` is a new DAG run (a new data interval, so a new idempotency namespace), as a daily schedule
gives; a retry of the same run reuses the context of that run."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from airflow_provider_spotzee.exceptions import SpotzeeConfigError, SpotzeeSyncFailed
from airflow_provider_spotzee.operators.base import partitions
from airflow_provider_spotzee.operators.subscriptions import BulkSubscriptionOperator
from airflow_provider_spotzee.operators.users import UpsertUsersOperator
from airflow_provider_spotzee.testing.postgres import postgres_server, server_binaries
from tests.integration.test_operators import MemoryStore, context

DAY = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
MAPPING = {"external_id": "external_id", "email": "email", "plan": "data.plan"}


def ctx(run: int, store: MemoryStore | None = None, map_index: int = -1) -> dict:
    """The context of DAG run ``run``: its own day, so its own idempotency namespace."""
    start = DAY + dt.timedelta(days=run)
    built = context(store, run_id=f"run-{run}", data_interval_start=start, data_interval_end=start + dt.timedelta(days=1))
    built["ti"].map_index = map_index
    return built


@pytest.fixture
def model(tmp_path, monkeypatch):
    """A model with no updated_at: ``dim_customers`` (customer_id INTEGER PRIMARY KEY)."""
    path = tmp_path / "warehouse.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE dim_customers (customer_id INTEGER PRIMARY KEY, external_id TEXT, email TEXT, "
               "plan TEXT, note TEXT)")
    db.commit()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return db


def fill(db, keys, plan="free", table="dim_customers"):
    db.executemany(f"INSERT INTO {table} (customer_id, external_id, email, plan) VALUES (?,?,?,?)",
                   [(k, f"m-{k}", f"m{k}@example.com", plan) for k in keys])
    db.commit()


def op(**kwargs):
    kwargs.setdefault("task_id", "sync_model")
    kwargs.setdefault("conn_id", "warehouse")
    kwargs.setdefault("table", "dim_customers")
    kwargs.setdefault("key_column", "customer_id")
    kwargs.setdefault("mapping", MAPPING)
    kwargs.setdefault("incremental", "diff")
    kwargs.setdefault("checkpoint_every_seconds", 0)
    return UpsertUsersOperator(**kwargs)


def snapshot(db, table="spotzee_sync_snapshot"):
    return {row[0]: row[1:] for row in db.execute(f"SELECT row_key, status, error_code, payload_hash FROM {table}")}


def test_sends_new_changed_and_reports_removed_then_nothing(hook, emulator, model):
    fill(model, range(1, 301))
    first = op().execute(ctx(1))
    assert (first["extracted"], first["sent_ok"], first["unchanged"], first["removed"]) == (300, 300, 0, 0)
    assert first["diff"]["new"] == 300 and first["balanced"]
    assert len(snapshot(model)) == 300 and {v[0] for v in snapshot(model).values()} == {"sent"}

    model.execute("UPDATE dim_customers SET plan = 'pro' WHERE customer_id <= 50")  # 50 changed
    fill(model, range(1001, 1021))  # 20 new
    model.execute("DELETE FROM dim_customers WHERE customer_id > 290 AND customer_id <= 300")  # 10 removed
    model.commit()
    context = ctx(2)
    second = op().execute(context)
    assert (second["extracted"], second["sent_ok"], second["unchanged"], second["removed"]) == (310, 70, 240, 10)
    assert (second["diff"]["new"], second["diff"]["changed"]) == (20, 50) and second["balanced"]
    assert sorted(r["key"] for r in context["ti"]["removed"]) == list(range(291, 301))
    assert second["requests"] == 1  # 70 items: one batch
    snap = snapshot(model)
    assert len(snap) == 310 and "291" not in snap and "1001" in snap

    third = op().execute(ctx(3))
    assert (third["sent_ok"], third["unchanged"], third["removed"]) == (0, 310, 0)
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == 320  # 300 + 20; the 10 removed stay in Spotzee (no removed_payload)
    assert emulator.contact("m-1")["data"]["plan"] == "pro"


def test_a_changed_row_with_the_same_payload_is_not_sent(hook, emulator, model):
    fill(model, range(1, 101))
    op().execute(ctx(1))
    model.execute("UPDATE dim_customers SET note = 'not mapped' WHERE customer_id <= 30")
    model.commit()
    again = op().execute(ctx(2))
    assert (again["sent_ok"], again["unchanged"]) == (0, 100)


def test_an_invalid_row_fixed_in_the_source_is_sent_next_run(hook, emulator, model):
    fill(model, range(1, 51))
    model.execute("UPDATE dim_customers SET email = 'not-an-email' WHERE customer_id IN (7, 8)")
    model.commit()
    first = op().execute(ctx(1))
    assert (first["sent_ok"], first["invalid"]) == (48, 2)
    assert snapshot(model)["7"][:2] == ("invalid", "parameter_invalid_format") and snapshot(model)["7"][2] is None
    second = op().execute(ctx(2))  # still invalid: tried again, reported again, nothing else sent
    assert (second["sent_ok"], second["invalid"], second["unchanged"]) == (0, 2, 48)
    model.execute("UPDATE dim_customers SET email = 'fixed' || customer_id || '@example.com' WHERE customer_id IN (7, 8)")
    model.commit()
    third = op().execute(ctx(3))
    assert (third["sent_ok"], third["invalid"], third["diff"]["retried"]) == (2, 0, 2)
    assert snapshot(model)["7"][0] == "sent"


def test_a_dead_lettered_batch_is_sent_next_run_and_nothing_twice(hook, emulator, model, tmp_path):
    fill(model, range(1, 1001))
    emulator.set_faults(item_error_rate=0.5, seed=3)  # transient per-item errors: some fail twice
    with pytest.raises(SpotzeeSyncFailed, match="dead-lettered"):
        op(failures_path=str(tmp_path / "f.jsonl")).execute(ctx(1))
    emulator.set_faults(item_error_rate=0.0)
    dead = {k for k, v in snapshot(model).items() if v[0] == "dead_lettered"}
    assert dead and all(v[0] == "sent" for k, v in snapshot(model).items() if k not in dead)
    second = op().execute(ctx(2))
    assert second["sent_ok"] == len(dead) and second["diff"]["retried"] == len(dead)
    assert second["unchanged"] == 1000 - len(dead)
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == 1000 and ledger["contacts_upserted_more_than_once"] == 0


def test_a_retry_of_the_same_run_resends_only_what_the_snapshot_does_not_confirm(hook, emulator, model, monkeypatch):
    """A source error mid-stream: the batches in flight finish and are confirmed in the snapshot before the
    checkpoint; the retry resumes there. (A SIGKILLed worker, whose in-flight batches go again and are
    replayed: tests/dags/test_diff_dags.py.)"""
    fill(model, range(1, 2001))
    store = MemoryStore()
    from airflow_provider_spotzee import sources

    real_rows = sources.SqlSource.rows

    def failing_rows(self, **window):
        for n, item in enumerate(real_rows(self, **window)):
            if n == 1234 and window.get("after") is None:
                raise RuntimeError("connection to the warehouse lost")
            yield item

    monkeypatch.setattr(sources.SqlSource, "rows", failing_rows)
    with pytest.raises(RuntimeError, match="warehouse lost"):
        op(page_rows=100).execute(ctx(1, store))
    confirmed = sum(1 for v in snapshot(model).values() if v[0] == "sent")
    assert 0 < confirmed < 2000
    retry = op(page_rows=100).execute(ctx(1, store))
    assert retry["extracted"] == 2000 and retry["sent_ok"] + retry["unchanged"] == 2000 and retry["balanced"]
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == 2000 and ledger["contacts_upserted_more_than_once"] == 0
    assert retry["resumed_from_index"] == confirmed  # the batches in flight finished and were checkpointed
    monkeypatch.setattr(sources.SqlSource, "rows", real_rows)
    assert op().execute(ctx(2))["sent_ok"] == 0


def test_partitions_each_own_their_keys(hook, emulator, model):
    fill(model, range(1, 401))
    parts = partitions(4)
    totals = [op(partition=p).execute(ctx(1, map_index=i)) for i, p in enumerate(parts)]
    assert sum(t["sent_ok"] for t in totals) == 400 and all(t["sent_ok"] == 100 for t in totals)
    sync_ids = {row[0] for row in model.execute("SELECT DISTINCT sync_id FROM spotzee_sync_snapshot")}
    assert len(sync_ids) == 4
    model.execute("DELETE FROM dim_customers WHERE customer_id IN (4, 8)")  # both in partition 0
    model.commit()
    again = [op(partition=p).execute(ctx(2, map_index=i)) for i, p in enumerate(parts)]
    assert [t["removed"] for t in again] == [2, 0, 0, 0] and sum(t["sent_ok"] for t in again) == 0


def test_full_resync_ignores_the_snapshot_once_then_rewrites_it(hook, emulator, model):
    fill(model, range(1, 101))
    op().execute(ctx(1))
    model.execute("DELETE FROM spotzee_sync_snapshot WHERE row_key = '5'")  # someone edited the snapshot
    model.execute("UPDATE spotzee_sync_snapshot SET payload_hash = 'x' WHERE row_key = '6'")
    model.execute("DELETE FROM dim_customers WHERE customer_id = 100")
    model.commit()
    forced = op(full_resync="{{ params.full_resync }}".replace("{{ params.full_resync }}", "True")).execute(ctx(2))
    assert (forced["sent_ok"], forced["unchanged"], forced["removed"]) == (99, 0, 1)
    assert forced["diff"]["new"] == 99
    assert len(snapshot(model)) == 99 and snapshot(model)["6"][2] != "x"
    assert op().execute(ctx(3))["sent_ok"] == 0


def test_dry_run_reports_and_writes_nothing(hook, emulator, model):
    fill(model, range(1, 51))
    first_look = op(dry_run=True).execute(ctx(0))  # before any sync: no snapshot table, and none made
    assert (first_look["sent_ok"], first_look["diff"]["new"], first_look["removed"]) == (50, 50, 0)
    assert not model.execute("SELECT name FROM sqlite_master WHERE name = 'spotzee_sync_snapshot'").fetchall()
    op().execute(ctx(1))
    model.execute("UPDATE dim_customers SET plan = 'team' WHERE customer_id <= 5")
    model.execute("DELETE FROM dim_customers WHERE customer_id = 50")
    model.commit()
    before = snapshot(model)
    requests = emulator.stats()["requests_total"]
    preview = op(dry_run=True).execute(ctx(2))
    assert preview["dry_run"] and (preview["sent_ok"], preview["diff"]["changed"], preview["removed"]) == (5, 5, 1)
    assert snapshot(model) == before and emulator.stats()["requests_total"] == requests


def test_removed_payload_unsubscribes_and_drops_the_snapshot_row_once_confirmed(hook, emulator, model):
    fill(model, range(1, 21))
    op(task_id="contacts").execute(ctx(1))
    newsletter = {"customer_id": "external_id", "subscribed": "state"}
    model.execute("ALTER TABLE dim_customers ADD COLUMN subscribed INTEGER DEFAULT 1")
    model.commit()

    def subs(**kwargs):
        return BulkSubscriptionOperator(
            task_id="newsletter", conn_id="warehouse", key_column="customer_id", incremental="diff",
            sql="SELECT customer_id, 'm-' || customer_id AS external_id, 7 AS subscription_id, subscribed AS state "
                "FROM dim_customers",
            mapping={"external_id": "external_id", "subscription_id": "subscription_id", "state": "state"},
            removed_payload=lambda key: {"external_id": f"m-{key}", "subscription_id": 7, "state": 0},
            checkpoint_every_seconds=0, **kwargs)

    assert newsletter and subs().execute(ctx(1))["sent_ok"] == 20
    model.execute("DELETE FROM dim_customers WHERE customer_id IN (3, 4)")
    model.commit()
    context = ctx(2)
    result = subs().execute(context)
    assert (result["removed"], result["diff"]["removed_sent"], result["sent_ok"]) == (2, 2, 0)
    assert sorted((r["key"], r["status"]) for r in context["ti"]["removed"]) == [(3, "sent"), (4, "sent")]
    states = {(s["contact_id"], s["subscription_id"]): s["state"] for s in emulator.subscriptions()["states"]}
    gone = {emulator.contact(f"m-{k}")["id"] for k in (3, 4)}
    assert all(states[(cid, 7)] == 0 for cid in gone)
    assert sum(1 for (cid, _), state in states.items() if state == 1 and cid not in gone) == 18
    keys = {row[0] for row in model.execute("SELECT row_key FROM spotzee_sync_snapshot WHERE sync_id LIKE '%newsletter'")}
    assert len(keys) == 18 and "3" not in keys
    assert subs().execute(ctx(3))["removed"] == 0


def test_duplicate_or_null_keys_are_refused_before_anything_is_sent(hook, emulator, model):
    model.execute("CREATE TABLE orders (acct INTEGER, external_id TEXT, email TEXT, plan TEXT)")
    model.executemany("INSERT INTO orders VALUES (?,?,?,?)",
                      [(1, "a", "a@example.com", "x"), (1, "a", "a@example.com", "y"), (2, "b", "b@example.com", "x"),
                       (2, "b", "b@example.com", "z"), (3, "c", "c@example.com", "x")])
    model.commit()
    with pytest.raises(SpotzeeConfigError, match=r"not unique.*2 keys occur more than once \(4 rows\).*acct=1"):
        op(table="orders", key_column="acct").execute(ctx(1))
    model.execute("INSERT INTO orders VALUES (NULL, 'd', 'd@example.com', 'x')")
    model.commit()
    with pytest.raises(SpotzeeConfigError, match="1 rows .* have a NULL acct"):
        op(table="orders", key_column="acct").execute(ctx(1))
    assert emulator.stats()["requests_total"] == 0


@pytest.mark.parametrize("keys", [
    [1, 2, 9, 10, 11, 100, 1000, -5],  # integers: text order ("10" < "9") differs from numeric order
    ["a", "B", "b", "Z", "é", "e", "ß", "ss", "10", "9", "ﬁ", "fi"],  # case, accents, ligatures, digits
], ids=["integer-keys", "text-keys"])
def test_collation_and_key_type_never_change_the_result(hook, emulator, tmp_path, monkeypatch, keys):
    """Keys meet only in equality lookups, never in an ordered merge: a text snapshot of integer keys, and
    text keys whose order differs between databases, give exactly the right diff."""
    path = tmp_path / "w.db"
    db = sqlite3.connect(path)
    kind = "INTEGER" if isinstance(keys[0], int) else "TEXT COLLATE NOCASE"
    db.execute(f"CREATE TABLE m (k {kind} PRIMARY KEY, external_id TEXT, email TEXT)")
    if isinstance(keys[0], str):  # NOCASE would make "B"/"b" one key: keep them apart, order them differently
        db.execute("DROP TABLE m")
        db.execute("CREATE TABLE m (k TEXT PRIMARY KEY, external_id TEXT, email TEXT)")
    db.executemany("INSERT INTO m VALUES (?,?,?)", [(k, f"x-{i}", f"x{i}@example.com") for i, k in enumerate(keys)])
    db.commit()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    mapping = {"external_id": "external_id", "email": "email"}
    assert op(table="m", key_column="k", mapping=mapping).execute(ctx(1))["sent_ok"] == len(keys)
    db.execute("UPDATE m SET email = 'changed@example.com' WHERE k = ?", (keys[2],))
    db.execute("DELETE FROM m WHERE k = ?", (keys[3],))
    db.commit()
    second = op(table="m", key_column="k", mapping=mapping).execute(ctx(2))
    assert (second["sent_ok"], second["unchanged"], second["removed"]) == (1, len(keys) - 2, 1)
    assert op(table="m", key_column="k", mapping=mapping).execute(ctx(3))["sent_ok"] == 0


@pytest.fixture(scope="module")
def postgres():
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package 'postgresql')")
    with postgres_server() as server:
        yield server


def test_postgresql_source_with_a_sqlite_snapshot_and_back(hook, emulator, model, postgres, monkeypatch):
    """Source and snapshot in different databases (PostgreSQL and SQLite, both ways), text keys whose
    order differs between the two (PostgreSQL's collation vs SQLite's bytes)."""
    import psycopg2

    keys = ["a", "B", "b", "Z", "é", "10", "9", "_x", "-y"]
    with psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname=postgres.dbname) as pg, \
            pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS model; DROP TABLE IF EXISTS spotzee_sync_snapshot")
        cur.execute("CREATE TABLE model (k TEXT PRIMARY KEY, external_id TEXT, email TEXT)")
        cur.executemany("INSERT INTO model VALUES (%s, %s, %s)",
                        [(k, f"p-{i}", f"p{i}@example.com") for i, k in enumerate(keys)])
    monkeypatch.setenv("AIRFLOW_CONN_PG", json.dumps({
        "conn_type": "postgres", "host": postgres.host, "port": postgres.port, "login": postgres.user,
        "schema": postgres.dbname}))
    mapping = {"external_id": "external_id", "email": "email"}
    pg_to_sqlite = {"conn_id": "pg", "table": "model", "key_column": "k", "mapping": mapping,
                    "snapshot_conn_id": "warehouse"}
    assert op(**pg_to_sqlite).execute(ctx(1))["sent_ok"] == len(keys)
    with psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname=postgres.dbname) as pg, \
            pg.cursor() as cur:
        cur.execute("UPDATE model SET email = 'n@example.com' WHERE k IN ('b', '9')")
        cur.execute("DELETE FROM model WHERE k = 'Z'")
    second = op(**pg_to_sqlite).execute(ctx(2))
    assert (second["sent_ok"], second["unchanged"], second["removed"]) == (2, len(keys) - 3, 1)
    assert len(snapshot(model)) == len(keys) - 1

    # the other way round: a SQLite source with its snapshot in PostgreSQL
    fill(model, range(1, 51))
    sqlite_to_pg = {"snapshot_conn_id": "pg", "task_id": "sync_sqlite"}
    assert op(**sqlite_to_pg).execute(ctx(1))["sent_ok"] == 50
    model.execute("UPDATE dim_customers SET plan = 'pro' WHERE customer_id IN (10, 20, 30)")
    model.commit()
    again = op(**sqlite_to_pg).execute(ctx(2))
    assert (again["sent_ok"], again["unchanged"]) == (3, 47)
    with psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname=postgres.dbname) as pg, \
            pg.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'sent') FROM spotzee_sync_snapshot "
                    "WHERE sync_id LIKE %s", ("%sync_sqlite",))
        assert cur.fetchone() == (50, 50)

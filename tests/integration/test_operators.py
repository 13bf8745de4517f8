"""Operators' execute() against the emulator and a real SQLite database.

The full Airflow path (scheduler loop, XCom, task state store) is covered by tests/dags; here the
operator runs in-process with a minimal context (an in-memory stand-in for the task/asset state
stores) so the many bad-input cases stay fast. The hook, transport and HTTP are all real.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest
from airflow.providers.common.compat.sdk import Asset

from airflow_provider_spotzee.exceptions import SpotzeeConfigError, SpotzeeSyncFailed
from airflow_provider_spotzee.operators.base import CHECKPOINT_KEY, partitions
from airflow_provider_spotzee.operators.events import TrackEventsOperator
from airflow_provider_spotzee.operators.users import UpsertUsersOperator

DAY = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


class MemoryStore(dict):
    def get(self, key, default=None):
        return super().get(key, default)

    def set(self, key, value, *, retention=None):
        self[key] = json.loads(json.dumps(value))


class XComs(dict):
    map_index = -1

    def xcom_push(self, key, value):
        self[key] = value


def context(store=None, **extra):
    return {"task_state_store": store if store is not None else MemoryStore(), "ti": XComs(),
            "data_interval_start": DAY, "data_interval_end": DAY + dt.timedelta(days=1), "run_id": "r1", **extra}


@pytest.fixture
def crm(tmp_path, monkeypatch):
    path = tmp_path / "crm.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (pk INTEGER PRIMARY KEY, id TEXT, email TEXT, score NUMERIC, "
               "joined TEXT, blob BLOB, updated_at TEXT NOT NULL)")
    db.commit()
    monkeypatch.setenv("AIRFLOW_CONN_CRM_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return db


def add(db, rows):
    db.executemany("INSERT INTO customers (pk, id, email, score, joined, blob, updated_at) VALUES (?,?,?,?,?,?,?)", rows)
    db.commit()


def rows(n, start=1, when="2026-11-24 10:00:00"):
    return [(pk, f"c-{pk}", f"c{pk}@example.com", 1.5, "2026-01-02", None, when) for pk in range(start, start + n)]


MAPPING = {"id": "external_id", "email": "email", "score": "data.score", "joined": "data.joined"}


def op(**kwargs):
    kwargs.setdefault("task_id", "upsert")
    kwargs.setdefault("conn_id", "crm_db")
    kwargs.setdefault("table", "customers")
    kwargs.setdefault("key_column", "pk")
    kwargs.setdefault("mapping", MAPPING)
    kwargs.setdefault("checkpoint_every_seconds", 0)
    return UpsertUsersOperator(**kwargs)


def test_window_is_the_data_interval_and_the_summary_balances(hook, emulator, crm):
    add(crm, rows(250) + rows(5, start=900, when="2026-11-25 00:00:00"))  # the last 5 belong to the next day
    ctx = context()
    summary = op().execute(ctx)
    assert (summary["extracted"], summary["sent_ok"], summary["requests"], summary["balanced"]) == (250, 250, 3, True)
    assert ctx["task_state_store"][CHECKPOINT_KEY]["index"] == 249
    assert ctx["ti"]["failures"] == []
    assert emulator.ledger_summary()["contacts"] == 250


def test_duplicates_in_one_run_send_only_the_latest_state(hook, emulator, crm):
    add(crm, [(1, "same", "old@example.com", 1, None, None, "2026-11-24 01:00:00"),
              (2, "other", "o@example.com", 1, None, None, "2026-11-24 01:30:00"),
              (3, "same", "mid@example.com", 1, None, None, "2026-11-24 02:00:00"),
              (4, "same", "new@example.com", 1, None, None, "2026-11-24 03:00:00")])
    summary = op().execute(context())
    assert (summary["sent_ok"], summary["unchanged"], summary["balanced"]) == (2, 2, True)
    assert emulator.ledger_summary()["upsert_applications"] == 2
    assert {c["external_id"]: c["email"] for c in emulator.contacts()}["same"] == "new@example.com"


def test_database_types_null_ids_and_nan(hook, emulator, crm):
    add(crm, [(1, "dec", "d@example.com", "12.50", "2026-01-02", None, "2026-11-24 01:00:00"),
              (2, None, "nul@example.com", 1, None, None, "2026-11-24 01:00:01"),
              (3, "blob", "b@example.com", 1, None, b"\x00\x01", "2026-11-24 01:00:02")])
    mapping = {**MAPPING, "blob": "data.blob"}
    crm.execute("UPDATE customers SET score = 'NaN' WHERE pk = 3")
    crm.commit()
    summary = op(mapping=mapping).execute(ctx := context())
    assert (summary["sent_ok"], summary["invalid"], summary["balanced"]) == (1, 2, True)
    codes = {f["index"]: f["code"] for f in ctx["ti"]["failures"]}
    assert codes == {1: "parameter_missing", 2: "parameter_invalid_format"}
    assert emulator.contacts()[0]["data"] == {"score": 12.5, "joined": "2026-01-02"}


def test_wrong_column_names_fail_before_anything_is_sent(hook, emulator, crm):
    add(crm, rows(3))
    with pytest.raises(SpotzeeConfigError, match="emial"):
        op(mapping={"id": "external_id", "emial": "email"}).execute(context())
    assert emulator.stats()["requests_total"] == 0


def test_empty_source_is_a_clean_zero(hook, emulator, crm, capsys):
    summary = op().execute(context())
    assert {k: summary[k] for k in ("extracted", "sent_ok", "invalid", "requests")} == dict.fromkeys(
        ("extracted", "sent_ok", "invalid", "requests"), 0)
    assert "Read 0 rows: table customers of connection 'crm_db' is empty" in capsys.readouterr().out


def test_a_window_that_reads_nothing_says_where_the_rows_are(hook, emulator, crm, capsys):
    """Never green by accident: the run names the window and the table, and says the table holds rows
    outside it (the usual cause: the wrong logical date)."""
    add(crm, rows(40, when="2026-11-20 08:00:00"))
    summary = op().execute(context())
    assert summary["extracted"] == 0
    out = capsys.readouterr().out
    assert "Read 0 rows from table customers of connection 'crm_db' in the window" in out
    assert "2026-11-24 00:00:00+00:00" in out and "but it holds 40 rows outside it" in out


def test_misspelled_table_or_key_column_names_the_source(hook, emulator, crm):
    with pytest.raises(SpotzeeConfigError, match=r"cannot read table custmers of connection 'crm_db'.*no such table"):
        op(table="custmers").execute(context())
    with pytest.raises(SpotzeeConfigError, match=r"has no column\(s\) \['pkk'\] \(source columns: \["):
        op(key_column="pkk").execute(context())
    assert emulator.stats()["requests_total"] == 0


def test_unreachable_source_fails_clearly_and_sends_nothing(hook, emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CRM_DB", json.dumps({"conn_type": "sqlite", "host": "/nonexistent/dir/crm.db"}))
    with pytest.raises(Exception, match="crm_db|unable to open"):
        op().execute(context())
    assert emulator.stats()["requests_total"] == 0


def test_a_failing_try_on_a_multi_host_executor_warns_once_about_a_local_failure_file(
        hook, emulator, crm, capsys, monkeypatch):
    """Without [spotzee] failures_base on an executor whose retries may land on another host, the local
    failure file is worth one warning per try, also when the try fails (it used to be worked out twice)."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("AIRFLOW__SPOTZEE__FAILURES_BASE", raising=False)
    with pytest.raises(SpotzeeConfigError, match="has no column"):
        op(key_column="no_such_column").execute(context())
    assert capsys.readouterr().out.count("may run a retry on another worker") == 1


def test_sql_error_mid_stream_keeps_committed_batches_and_the_retry_resumes(hook, emulator, crm):
    add(crm, rows(400))
    broken = ("SELECT *, CASE WHEN pk > 250 THEN abs(-9223372036854775807 - 1) ELSE 0 END AS boom FROM customers")
    store = MemoryStore()
    with pytest.raises(Exception, match="overflow"):
        op(table=None, sql=broken, page_rows=100, mapping=MAPPING).execute(context(store))
    assert store[CHECKPOINT_KEY]["index"] == 199 and emulator.ledger_summary()["contacts"] == 200
    summary = op(page_rows=100).execute(context(store))  # the retry, after the data was fixed
    assert summary["resumed_from_index"] == 200 and summary["extracted"] == 400 and summary["sent_ok"] == 400
    assert emulator.ledger_summary()["upsert_applications"] == 400  # nothing applied twice


def test_max_failure_ratio_fails_after_sending_and_keeps_the_list(hook, emulator, crm):
    add(crm, rows(8) + [(100 + i, f"bad-{i}", "not-an-email", 1, None, None, "2026-11-24 11:00:00") for i in range(2)])
    ctx = context()
    with pytest.raises(SpotzeeSyncFailed, match="20.0%"):
        op(max_failure_ratio=0.1).execute(ctx)
    assert len(ctx["ti"]["failures"]) == 2 and emulator.ledger_summary()["contacts"] == 8


def test_dry_run_sends_nothing(hook, emulator, crm):
    add(crm, rows(120) + [(999, None, "x@example.com", 1, None, None, "2026-11-24 12:00:00")])
    summary = op(dry_run=True).execute(context())
    assert summary["dry_run"] and (summary["extracted"], summary["invalid"]) == (121, 1)
    assert emulator.stats()["requests_total"] == 0


def test_records_input_with_duplicates_and_failures_file(hook, emulator, tmp_path):
    records = [{"external_id": "a", "email": "a1@example.com"}, {"external_id": "b", "email": "bad"},
               {"external_id": "a", "email": "a2@example.com"}]
    path = tmp_path / "failures.jsonl"
    ctx = context()
    summary = UpsertUsersOperator(task_id="t", records=records, failures_path=str(path)).execute(ctx)
    assert (summary["sent_ok"], summary["unchanged"], summary["invalid"]) == (1, 1, 1)
    line = json.loads(path.read_text())
    assert line["external_id"] == "b" and line["payload"]["email"] == "bad"  # payloads only in the file
    assert "bad" not in json.dumps(ctx["ti"]["failures"]).replace('"external_id": "b"', "")


def test_cursor_mode_keeps_a_high_water_mark_across_runs(hook, emulator, crm):
    asset = Asset(name="spotzee/users", uri="spotzee://project/users")
    assets = {asset: MemoryStore()}
    add(crm, rows(30))
    first = op(incremental="cursor", outlets=[asset]).execute(context(asset_state_store=assets))
    assert first["sent_ok"] == 30 and assets[asset]["cursor"] == ["2026-11-24 10:00:00", 30]
    add(crm, rows(5, start=31, when="2026-11-30 08:00:00"))
    second = op(incremental="cursor", outlets=[asset]).execute(context(asset_state_store=assets))
    assert second["extracted"] == 5 and emulator.ledger_summary()["upsert_applications"] == 35


def test_partitions_split_a_source_disjointly(hook, emulator, crm):
    add(crm, rows(300))
    totals = [op(partition=p).execute(context(run_id=f"p{p['index']}"))["sent_ok"] for p in partitions(3)]
    assert totals == [100, 100, 100] and emulator.ledger_summary()["upsert_applications"] == 300


def test_events_keep_every_occurrence(hook, emulator):
    events = [{"name": "view", "external_id": "a", "created_at": "2026-11-24T10:00:00Z"},
              {"name": "view", "external_id": "a", "created_at": "2026-11-24T10:05:00Z"}]
    summary = TrackEventsOperator(task_id="e", records=events).execute(context())
    assert summary["sent_ok"] == 2 and len(emulator.events()) == 2


def test_replay_resends_dead_lettered_payloads_once(monkeypatch, emulator, tmp_path):
    from tests.integration.helpers import connection_env

    connection_env(monkeypatch, emulator, max_retries=0, max_wait=0.1)
    records = [{"external_id": f"r-{i}", "email": f"r{i}@example.com"} for i in range(150)]
    path = tmp_path / "failures.jsonl"
    emulator.set_faults(error_rate=1.0)
    with pytest.raises(SpotzeeSyncFailed, match="dead-lettered"):
        UpsertUsersOperator(task_id="t", records=records, failures_path=str(path)).execute(context())
    emulator.set_faults(error_rate=0.0)
    replay = UpsertUsersOperator(task_id="t", replay_from=str(path), failures_path=str(tmp_path / "again.jsonl"))
    summary = replay.execute(context())
    assert (summary["extracted"], summary["sent_ok"]) == (150, 150) and summary["idempotency_namespace"].endswith("/replay")
    again = UpsertUsersOperator(task_id="t", replay_from=str(path)).execute(context(MemoryStore()))
    assert again["replayed"] == again["requests"] == 2  # a second replay is answered from Spotzee's key memory
    assert emulator.ledger_summary()["upsert_applications"] == 150


def test_blank_ids_are_invalid_not_superseded(hook, emulator, crm):
    add(crm, [(i, "" if i % 2 else None, f"x{i}@example.com", 1, None, None, "2026-11-24 01:00:00") for i in range(1, 5)]
        + rows(2, start=10))
    summary = op().execute(context())
    assert (summary["invalid"], summary["unchanged"], summary["sent_ok"]) == (4, 0, 2)
    records = [{"external_id": ""}, {"external_id": ""}, {"external_id": "k"}]
    summary = UpsertUsersOperator(task_id="r", records=records).execute(context())
    assert (summary["invalid"], summary["unchanged"], summary["sent_ok"]) == (2, 0, 1)


def test_a_generator_of_records_is_sent_not_swallowed(hook, emulator):
    records = ({"external_id": f"g-{i}", "email": f"g{i}@example.com"} for i in range(120))
    summary = UpsertUsersOperator(task_id="g", records=records).execute(context())
    assert (summary["extracted"], summary["sent_ok"]) == (120, 120)
    assert emulator.ledger_summary()["contacts"] == 120

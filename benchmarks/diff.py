"""Diff syncs at scale (``python -m benchmarks --only diff``): a model of N rows (1,000,000 in a full run),
no ``updated_at``, in SQLite; the emulator on Professional in its own process.

Measured, each in a fresh child process (so one run's allocator high-water mark cannot hide another's):

1. **full**: a plain full send of the model through the operator (no snapshot);
2. **first**: the first diff run: every row is new, so it sends every row and writes N snapshot rows;
3. **baseline**: read, map, validate+serialise and hash every row, sending nothing;
4. **changed**: 1 % of the rows changed, then a diff run: it must send exactly N/100 items.

Targets (issue 15): (4) sends exactly N/100; its execute ≤ 1.5 × (3); its peak RSS growth ≤ 150 MB;
(2) ≤ 1.3 × (1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Log, Row, ScenarioResult, emulator, expect_items
from benchmarks.sizes import Sizes

MAPPING = {"external_id": "external_id", "email": "email", "phone": "phone", "timezone": "timezone",
           "locale": "locale", "first_name": "data.first_name", "plan": "data.plan"}
PLACES = (("Australia/Sydney", "en-AU"), ("Europe/Berlin", "de-DE"), ("America/New_York", "en-US"),
          ("Asia/Tokyo", "ja-JP"))


def build_model(path: Path, rows: int) -> None:
    """``dim_customers``: unique emails and phones, as a real model has."""
    if path.exists():
        path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE dim_customers (customer_id INTEGER PRIMARY KEY, external_id TEXT, email TEXT, "
               "phone TEXT, timezone TEXT, locale TEXT, first_name TEXT, plan TEXT)")
    batch = []
    for k in range(1, rows + 1):
        tz, locale = PLACES[k % len(PLACES)]
        batch.append((k, f"model-{k:08d}", f"person.{k}@example.com", f"+61400{k % 1_000_000:06d}", tz, locale,
                      ("Jane", "Omar", "Mei", "Lars")[k % 4], ("free", "pro", "team")[k % 3]))
        if len(batch) == 50_000:
            db.executemany("INSERT INTO dim_customers VALUES (?,?,?,?,?,?,?,?)", batch)
            batch = []
    db.executemany("INSERT INTO dim_customers VALUES (?,?,?,?,?,?,?,?)", batch)
    db.commit()
    db.close()


def change_one_percent(path: Path, rows: int) -> int:
    db = sqlite3.connect(path)
    step = 100
    db.execute("UPDATE dim_customers SET plan = 'changed' WHERE customer_id % ? = 0", (step,))
    db.commit()
    changed = db.execute("SELECT COUNT(*) FROM dim_customers WHERE plan = 'changed'").fetchone()[0]
    db.close()
    return int(changed)


# ----------------------------------------------------------------------------------------- child


def _child(mode: str, run: int) -> dict[str, Any]:
    """One measured step in this (fresh) process; prints one JSON line."""
    from airflow_provider_spotzee.mapping import build_mapper
    from airflow_provider_spotzee.operators.users import UpsertUsersOperator
    from airflow_provider_spotzee.send import USERS_BATCH, Prepared, prepare
    from airflow_provider_spotzee.sources import SqlSource
    from airflow_provider_spotzee.sync.diff import payload_hash
    from benchmarks.common import quiet_logs
    from benchmarks.rss import PeakRss

    quiet_logs()
    meter = PeakRss()
    meter.start()
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    if mode == "baseline":
        mapper = build_mapper(MAPPING)
        hashed = 0
        source = SqlSource("model", table="dim_customers", cursor_column=None, key_column="customer_id")
        for index, (_cursor, row) in enumerate(source.rows()):
            item = prepare(USERS_BATCH, index, mapper(row))
            if isinstance(item, Prepared):
                payload_hash(item.body)
                hashed += 1
        summary = {"extracted": hashed, "sent_ok": 0}
    else:
        class Store(dict):  # the task state store, in memory
            def set(self, key: str, value: Any, *, retention: Any = None) -> None:
                self[key] = value

        class TI:
            map_index = -1

            def xcom_push(self, key: str, value: Any) -> None:
                pass

        day = dt.datetime(2026, 11, 24, tzinfo=dt.UTC) + dt.timedelta(days=run)
        context = {"task_state_store": Store(), "ti": TI(), "run_id": f"bench-{mode}-{run}",
                   "data_interval_start": day, "data_interval_end": day + dt.timedelta(days=1)}
        kwargs: dict[str, Any] = {"incremental": "diff"} if mode != "full" else {
            "incremental": "full", "cursor_column": "customer_id", "dedupe_on": None}
        operator = UpsertUsersOperator(task_id=f"bench_{mode}" if mode == "full" else "bench_diff",
                                       conn_id="model", table="dim_customers", key_column="customer_id",
                                       mapping=MAPPING, checkpoint_every_seconds=5.0,
                                       failures_path=os.path.join(tempfile.gettempdir(), f"diff-bench-{mode}.jsonl"),
                                       **kwargs)
        summary = operator.execute(context)
    elapsed = time.perf_counter() - started
    memory = meter.stop()
    return {"mode": mode, "elapsed_s": round(elapsed, 2), "peak_growth_mb": memory["peak_growth_mb"],
            "extracted": summary.get("extracted"), "sent_ok": summary.get("sent_ok"),
            "unchanged": summary.get("unchanged"), "requests": summary.get("requests"),
            "throttled": summary.get("throttled"), "diff": summary.get("diff")}


def _run_child(mode: str, run: int, env: dict[str, str], timeout: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.diff", "child", mode, str(run)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"diff benchmark step {mode!r} failed: {done.stderr[-3000:]}")
    return json.loads(lines[-1])


# -------------------------------------------------------------------------------------- scenario


def diff(sizes: Sizes, log: Log) -> ScenarioResult:
    rows = sizes.diff_rows
    out = ScenarioResult()
    with tempfile.TemporaryDirectory(prefix="spotzee-diff-bench-") as tmp:
        model = Path(tmp) / "model.db"
        log(f"building a {rows:,}-row model (SQLite)")
        build_model(model, rows)
        with emulator("professional", latency_ms=20.0) as emu:
            env = dict(os.environ)
            env["AIRFLOW_CONN_MODEL"] = json.dumps({"conn_type": "sqlite", "host": str(model)})
            env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = emu.connection_json()
            timeout = sizes.diff_timeout_s
            log("1. a plain full send of every row (no snapshot)")
            full = _run_child("full", 0, env, timeout)
            expect_items("diff: the plain full send", full["sent_ok"], rows)
            emu.reset()
            log("2. the first diff run: every row new, the snapshot written")
            first = _run_child("first", 1, env, timeout)
            expect_items("diff: the first run", first["sent_ok"], rows)
            log("3. read, map and hash every row, sending nothing")
            base = _run_child("baseline", 0, env, timeout)
            expect_items("diff: rows hashed", base["extracted"], rows)
            changed = change_one_percent(model, rows)
            log(f"4. {changed:,} rows changed (1 %), then a diff run")
            second = _run_child("changed", 2, env, timeout)
            expect_items("diff: rows read by the second run", second["extracted"], rows)
            contacts = emu.ledger_summary()
    out.details = {"rows": rows, "changed": changed, "full": full, "first": first, "baseline": base,
                   "changed_run": second, "ledger": contacts}
    out.rows += [
        Row("15", f"diff run, {changed:,} of {rows:,} rows changed: items sent", second["sent_ok"], "items",
            target=f"exactly {changed:,}", met=second["sent_ok"] == changed,
            note=f"{second['unchanged']:,} unchanged, {second['requests']} requests"),
        Row("15", "diff run: execute time vs read + map + hash alone", second["elapsed_s"], "s",
            base["elapsed_s"], "read, map, validate, serialise and hash every row, no send",
            target="≤ 1.5 ×", met=second["elapsed_s"] <= 1.5 * base["elapsed_s"]),
        Row("15", "diff run: peak RSS growth", second["peak_growth_mb"], "MB", target="≤ 150 MB",
            met=second["peak_growth_mb"] <= 150),
        Row("15", "first diff run (sends all, writes the snapshot) vs a plain full send", first["elapsed_s"], "s",
            full["elapsed_s"], "the same rows, incremental='full'", target="≤ 1.3 ×",
            met=first["elapsed_s"] <= 1.3 * full["elapsed_s"],
            note=f"first run peak RSS growth {first['peak_growth_mb']} MB"),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["child"])
    parser.add_argument("mode", choices=["full", "first", "baseline", "changed"])
    parser.add_argument("run", type=int)
    args = parser.parse_args()
    print(json.dumps(_child(args.mode, args.run)))


if __name__ == "__main__":
    main()

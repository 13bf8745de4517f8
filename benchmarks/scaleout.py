"""Scenario 5 (and scenario 6 on a real worker): the example DAGs on a real scheduler.

Not ``airflow dags test`` (one task at a time) but the way users scale out: a PostgreSQL metadata
database, ``airflow api-server`` (the execution API the tasks talk to), ``airflow dag-processor`` and
``airflow scheduler`` with the LocalExecutor (parallelism 16), each its own process, all on 127.0.0.1.
The example DAG ``spotzee_crm_sync_partitioned`` with ``partitions(8)`` (all in ``default_pool``)
syncs a seeded SQLite CRM to the emulator (Starter budget, 50 ms latency, own process). The run is the one a
user makes for a past day: ``airflow backfill create --from-date D --to-date D`` for the seeded day ``D``
(:data:`~airflow_provider_spotzee.testing.crm.SEED_DAY`), so its data interval is that day whatever today's
date is. The scheduler makes no runs of its own (``[scheduler] use_job_schedule = False``): with
``catchup=False`` it would add a run for the latest interval, which holds no seeded rows, beside the
measured one. The scenario fails unless the partitions extracted every seeded row and the emulator holds
one contact per good row.

``scheduler_overhead`` runs the single-task ``spotzee_crm_sync`` the same way, on 100,000 rows, and
compares the task's duration with the hook alone on the same rows (scenario 6 without ``dags test``).

Scenario 5's figures: the emulator's accepted items/s (sustained between 10 % and 90 % of the items, and over the
whole span from the first accepted item to the last) against the Starter ceiling, the share of requests
answered 429, and from the metadata database when each mapped task started and ended.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_spotzee.api_facts import PLANS
from airflow_provider_spotzee.testing.crm import SEED_DAY, seed_crm
from airflow_provider_spotzee.testing.postgres import PostgresServer, postgres_server, server_binaries
from benchmarks.common import (
    ITEMS_PER_REQUEST,
    Log,
    Row,
    ScenarioResult,
    StatsSampler,
    emulator,
    expect_items,
    results_path,
)
from benchmarks.sizes import Sizes

DAG_ID = "spotzee_crm_sync_partitioned"
PARTITIONS = 8
LATENCY_MS = 50.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path, crm: Path, pg: PostgresServer, emu: Any, api_port: int) -> dict[str, str]:
    """The DAG benchmarks' environment (``dagbench.airflow_env``), on PostgreSQL with the LocalExecutor."""
    from benchmarks.dagbench import airflow_env

    env = airflow_env(home, crm, emu)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # only the backfill run of the seeded day: no scheduled run of the latest (empty) interval beside it
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "SPOTZEE_EXAMPLE_PARTITIONS": str(PARTITIONS),
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


@contextlib.contextmanager
def _processes(env: dict[str, str], logs: Path, *commands: list[str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for command in commands:
            log = (logs / f"{command[0]}.log").open("wb")
            procs.append(subprocess.Popen([_airflow(), *command], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        yield procs
    finally:
        for proc in procs:  # the whole process group: the LocalExecutor's workers and their task processes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _query(pg: PostgresServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg2

    connect = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.dbname)
    with contextlib.closing(connect) as db, db.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def _wait_http(url: str, deadline: float, procs: list[subprocess.Popen[bytes]]) -> None:
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an Airflow component exited during start-up; see its log")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0, trust_env=False).status_code < 500:
                return
        time.sleep(1.0)
    raise TimeoutError(f"{url} did not answer")


def _wait_run(pg: PostgresServer, dag_id: str, run_id: str, deadline: float,
              procs: list[subprocess.Popen[bytes]], log: Log) -> str:
    state, last = "none", ""
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an Airflow component exited during the run; see its log")
        (state,), = _query(pg, "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        tis = _query(pg, "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s "
                         "GROUP BY state ORDER BY state", dag_id, run_id)
        now = ", ".join(f"{s}={n}" for s, n in tis)
        if now != last:
            log(f"run {run_id}: {state}; tasks {now}")
            last = now
        if state in ("success", "failed"):
            return state
        time.sleep(1.0)
    raise TimeoutError(f"the DAG run did not finish in time (last state {state})")


@contextlib.contextmanager
def _deployment(work: Path, crm: Path, emu: Any, dag_id: str, log: Log) -> Iterator[tuple[PostgresServer, dict[str, str],
                                                                                     list[subprocess.Popen[bytes]]]]:
    """PostgreSQL, ``db migrate``, then api-server, dag-processor and scheduler, until ``dag_id`` is parsed."""
    if server_binaries() is None:
        raise RuntimeError("a real scheduler needs PostgreSQL server binaries (Debian package 'postgresql') "
                           "for Airflow's metadata database")
    with postgres_server(max_connections=200) as pg:
        api_port = _free_port()
        env = _env(work / "airflow", crm, pg, emu, api_port)
        log("airflow db migrate (PostgreSQL metadata database)")
        subprocess.run([_airflow(), "db", "migrate"], env=env, check=True, capture_output=True, timeout=900)
        log("starting api-server, dag-processor and scheduler (LocalExecutor, parallelism 16)")
        try:
            with _processes(env, work, ["api-server", "--port", str(api_port), "--workers", "1"],
                            ["dag-processor"], ["scheduler"]) as procs:
                _wait_http(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", time.monotonic() + 180, procs)
                deadline = time.monotonic() + 180
                while not _query(pg, "SELECT 1 FROM dag WHERE dag_id = %s", dag_id):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the dag-processor did not register the DAG")
                    time.sleep(1.0)
                yield pg, env, procs
        finally:
            keep = work / "scheduler.log"
            if keep.exists():
                shutil.copyfile(keep, results_path(f"{dag_id}-scheduler.log"))


def _backfill(env: dict[str, str], pg: PostgresServer, dag_id: str, day: dt.date, log: Log) -> str:
    """``airflow backfill create`` for ``day`` (the DAG still paused: nothing runs yet); the run's id, after
    checking that its data interval is exactly ``[day, day + 1)``."""
    done = subprocess.run([_airflow(), "backfill", "create", "--dag-id", dag_id, "--from-date", day.isoformat(),
                           "--to-date", day.isoformat()], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"airflow backfill create failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    runs = _query(pg, "SELECT run_id, data_interval_start, data_interval_end FROM dag_run WHERE dag_id = %s",
                  dag_id)
    want = (dt.datetime.combine(day, dt.time(), dt.UTC),
            dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC))
    if len(runs) != 1 or tuple(runs[0][1:]) != want:
        raise RuntimeError(f"expected one run of {dag_id} with data interval {want[0]} to {want[1]} (the seeded "
                           f"day), found {runs}")
    log(f"backfill of {day}: run {runs[0][0]}, data interval {want[0]:%Y-%m-%d %H:%M} to {want[1]:%Y-%m-%d %H:%M}")
    return runs[0][0]


def _unpause_and_wait(env: dict[str, str], pg: PostgresServer, dag_id: str, run_id: str, timeout: float,
                      procs: list[subprocess.Popen[bytes]], log: Log) -> str:
    subprocess.run([_airflow(), "dags", "unpause", dag_id], env=env, check=True, capture_output=True, timeout=300)
    log("unpaused; the scheduler starts the backfill run")
    return _wait_run(pg, dag_id, run_id, time.monotonic() + timeout, procs, log)


def _xcom_values(pg: PostgresServer, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """The ``return_value`` XComs of ``task_id`` in the run (one per map index), as dicts."""
    rows = _query(pg, "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s AND "
                      "key = 'return_value' ORDER BY map_index", dag_id, run_id, task_id)
    return [value if isinstance(value, dict) else json.loads(value) for (value,) in rows]


def _check_moved(what: str, state: str, summaries: list[dict[str, Any]], seeded: dict[str, int],
                 ledger: dict[str, Any], log_name: str) -> None:
    """The run read every seeded row and the emulator holds one contact per good row, or the scenario fails."""
    if state != "success":
        raise RuntimeError(f"{what}: the run ended {state}; see benchmarks/results/{log_name}")
    rows = sum(seeded.values())
    expect_items(f"{what}: rows extracted", sum(s["extracted"] for s in summaries), rows)
    expect_items(f"{what}: rows sent", sum(s["sent_ok"] for s in summaries), seeded["good"])
    expect_items(f"{what}: contacts in the emulator", ledger["contacts"], seeded["good"])


def scaleout(sizes: Sizes, log: Log) -> ScenarioResult:
    out = ScenarioResult()
    rows = sizes.scaleout_rows
    work = Path(tempfile.mkdtemp(prefix="spotzee-scaleout-"))
    try:
        crm = work / "crm.db"
        log(f"seeding a {rows:,}-row SQLite CRM")
        seeded = seed_crm(crm, rows, day=SEED_DAY)
        with emulator("starter", latency_ms=LATENCY_MS) as emu, \
                _deployment(work, crm, emu, DAG_ID, log) as (pg, env, procs):
            run_id = _backfill(env, pg, DAG_ID, SEED_DAY, log)
            with StatsSampler(emu, interval=0.5) as sampler:
                unpaused = time.perf_counter() - sampler.t0
                state = _unpause_and_wait(env, pg, DAG_ID, run_id, sizes.scaleout_timeout_s, procs, log)
            tasks = _query(pg, "SELECT map_index, state, start_date, end_date, try_number FROM task_instance "
                               "WHERE dag_id = %s AND run_id = %s AND task_id = 'upsert_users' ORDER BY map_index",
                           DAG_ID, run_id)
            summaries = _xcom_values(pg, DAG_ID, run_id, "upsert_users")
            ledger = emu.ledger_summary()
        _check_moved(f"{PARTITIONS} partitions", state, summaries, seeded, ledger, f"{DAG_ID}-scheduler.log")
        if len(summaries) != PARTITIONS:
            raise RuntimeError(f"expected {PARTITIONS} partition summaries, found {len(summaries)}")
        out.details.update(_figures(sampler, tasks, seeded, unpaused, state, ledger))
        out.details["partition_extracted"] = [s["extracted"] for s in summaries]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    d = out.details
    ceiling = PLANS["starter"].write_rps * ITEMS_PER_REQUEST
    out.rows += [
        Row("5", f"{PARTITIONS} mapped partitions, real scheduler + LocalExecutor: sustained items/s",
            d["items_per_s_sustained"], "items/s", ceiling, "Starter ceiling (one key)", target="≥ 0.90 × ceiling",
            met=d["run_state"] == "success" and d["items_per_s_sustained"] >= 0.90 * ceiling,
            note=f"{d['items']:,} items; over the whole span (first to last accepted item) "
                 f"{d['items_per_s_span']:,.0f}/s = {d['items_per_s_span'] / ceiling:.2f} ×; mapped tasks started "
                 f"over {d['task_start_spread_s']:.1f} s and ended over {d['task_end_spread_s']:.1f} s; "
                 f"run {d['run_state']}"),
        Row("5", f"{PARTITIONS} mapped partitions: share of requests 429'd", d["throttled"], "requests",
            d["requests"], "requests seen by the emulator", ratio=d["throttled"] / max(d["requests"], 1),
            target="≤ 2 %", met=d["throttled"] <= 0.02 * d["requests"]),
    ]
    return out


def scheduler_overhead(sizes: Sizes, log: Log) -> ScenarioResult:
    """Scenario 6 on a real worker: the ``upsert_users`` task of ``spotzee_crm_sync`` run by the scheduler
    (LocalExecutor) vs ``SpotzeeHook.upsert_users`` on the same rows, same emulator configuration as
    ``dagoverhead`` (which runs the DAG through ``airflow dags test``). Hook before and after the DAG;
    the better hook run is the baseline."""
    from benchmarks.dagbench import DAG_LATENCY_MS, DAG_PLAN, DagBench

    out = ScenarioResult()
    n = sizes.dag_overhead_rows
    single = "spotzee_crm_sync"
    hooks: list[dict[str, Any]] = []
    with DagBench() as bench:
        log(f"seeding a {n:,}-row CRM")
        crm, seeded = bench.seed(n)
        log(f"SpotzeeHook.upsert_users on the same rows ({DAG_PLAN}, {DAG_LATENCY_MS:.0f} ms)")
        with emulator(DAG_PLAN, latency_ms=DAG_LATENCY_MS) as emu:
            hooks.append(bench.hook_alone(emu, crm, "bench-sched-hook-0", sizes.dag_timeout_s))
        work = Path(tempfile.mkdtemp(prefix="spotzee-sched-"))
        try:
            with emulator(DAG_PLAN, latency_ms=DAG_LATENCY_MS) as emu, \
                    _deployment(work, crm, emu, single, log) as (pg, env, procs):
                run_id = _backfill(env, pg, single, SEED_DAY, log)
                state = _unpause_and_wait(env, pg, single, run_id, sizes.dag_timeout_s, procs, log)
                (start, end), = _query(pg, "SELECT start_date, end_date FROM task_instance WHERE dag_id = %s "
                                           "AND run_id = %s AND task_id = 'upsert_users'", single, run_id)
                summaries = _xcom_values(pg, single, run_id, "upsert_users")
                ledger = emu.ledger_summary()
            _check_moved(single, state, summaries, seeded, ledger, f"{single}-scheduler.log")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"SpotzeeHook.upsert_users again ({DAG_PLAN}, {DAG_LATENCY_MS:.0f} ms)")
        with emulator(DAG_PLAN, latency_ms=DAG_LATENCY_MS) as emu:
            hooks.append(bench.hook_alone(emu, crm, "bench-sched-hook-1", sizes.dag_timeout_s))
    summary, = summaries
    task_s = round((end - start).total_seconds(), 3)
    exec_s = float(summary["elapsed_seconds"])
    hook_s = min(h["wall_s"] for h in hooks)
    out.details = {"plan": DAG_PLAN, "latency_ms": DAG_LATENCY_MS, "rows": n, "run_state": state,
                   "task_duration_s": task_s, "execute_s": exec_s, "hook_wall_s": [h["wall_s"] for h in hooks],
                   "summary": summary}
    out.rows += [
        Row("6", "example DAG on a real scheduler (LocalExecutor): upsert_users task duration vs hook alone",
            task_s, "s", hook_s, "SpotzeeHook.upsert_users, same rows (read + map + send)", target="≤ 1.3 ×",
            met=state == "success" and task_s <= 1.3 * hook_s,
            note=f"{n:,} rows; execute {exec_s:.2f} s of the task's {task_s:.2f} s; hook runs "
                 f"{', '.join(str(h['wall_s']) for h in hooks)} s (before and after); run {state}"),
    ]
    return out


def _figures(sampler: StatsSampler, tasks: list[tuple[Any, ...]], seeded: Any, unpaused: float, state: str,
             ledger: dict[str, Any]) -> dict[str, Any]:
    totals = sampler.totals()
    items = totals["items"]
    first = sampler.time_at(1)
    last = sampler.time_at(items)
    starts = [t[2] for t in tasks if t[2] is not None]
    ends = [t[3] for t in tasks if t[3] is not None]
    return {
        "run_state": state,
        "crm": seeded,
        "items": items,
        "requests": totals["requests"],
        "throttled": totals["throttled"],
        "items_per_s_sustained": round(sampler.sustained(), 1),
        "items_per_s_span": round(items / (last - first), 1) if last > first else 0.0,
        "first_item_after_unpause_s": round(first - unpaused, 1),
        "task_start_spread_s": round((max(starts) - min(starts)).total_seconds(), 1) if starts else 0.0,
        "task_end_spread_s": round((max(ends) - min(ends)).total_seconds(), 1) if ends else 0.0,
        "tasks": [{"map_index": t[0], "state": t[1], "try_number": t[4],
                   "seconds": round((t[3] - t[2]).total_seconds(), 1) if t[2] and t[3] else None} for t in tasks],
        "series": sampler.series(),
        "ledger": ledger,
    }

"""The ``celery`` scenario, and the deployment behind it and behind ``tests/deploy/test_celery.py``.

A real distributed deployment, every process on 127.0.0.1:

- a throw-away PostgreSQL metadata database (:mod:`airflow_provider_spotzee.testing.postgres`) and a
  throw-away Redis broker (:mod:`airflow_provider_spotzee.testing.redis`);
- ``airflow api-server`` (the execution API), ``airflow dag-processor`` and ``airflow scheduler`` with the
  CeleryExecutor;
- two ``airflow celery worker`` processes (concurrency 4 each, so eight partitions land four and four).
  Each worker has its own directory as its local disk: its cwd, ``TMPDIR`` and ``AIRFLOW_HOME`` (task logs
  included). What the workers share is what a real deployment shares: the DAG folder, the metadata
  database, the broker, the CRM (a SQLite file read by both, standing in for a CRM database), and
  ``[spotzee] failures_base``, one directory both reach for the failure files.

The DAG is ``tests/deploy/dags/spotzee_crm_sync_celery.py`` (8 mapped partitions on one key), triggered
for the logical date 2026-11-25, whose data interval is the day :func:`seed_crm` fills, so the run reads
the seeded rows on any calendar day. Which worker ran which try is read from the task logs on each
worker's own disk.

The scenario reports the key's sustained items/s against the Starter ceiling (target ≥ 0.90 ×), the share
of requests answered 429 (target ≤ 2 %), and plots each worker's items/s over time (from the emulator's
ledger: when each contact was applied, and which worker ran its partition) with their sum against the
ceiling: ``benchmarks/results/celery.png``, and ``docs/performance-celery.png`` with ``--publish``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from airflow_provider_spotzee.testing.postgres import PostgresServer, postgres_server, server_binaries
from airflow_provider_spotzee.testing.redis import RedisServer, redis_server, server_binary

ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = ROOT / "tests" / "deploy" / "dags"
DAG_ID = "spotzee_crm_sync_celery"
TASK_ID = "upsert_users"
PARTITIONS = 8
WORKERS = ("worker-a", "worker-b")
CONCURRENCY = 4
#: The run's logical date; its data interval (2026-11-24 to 11-25) is the day ``seed_crm`` fills.
LOGICAL_DATE = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
RUN_ID = "manual__celery_2026-11-25"
LATENCY_MS = 50.0

Log = Callable[[str], None]


def missing() -> str | None:
    """Why this deployment cannot start here, or ``None`` when it can."""
    if server_binaries() is None:
        return "PostgreSQL server binaries are not installed (Debian package 'postgresql')"
    if server_binary() is None:
        return "redis-server is not installed (Debian package 'redis-server')"
    for module in ("celery", "redis", "airflow.providers.celery"):
        try:
            found = importlib.util.find_spec(module)
        except ImportError:
            found = None
        if found is None:
            return f"the Celery executor's packages are not installed (no {module}): apache-airflow-providers-celery"
    return None


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else f"(no {path})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant, as a machine dying would: the task processes run in
    process groups of their own (the task supervisor's ``setpgid``), so a ``killpg`` would miss them."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    killed = []
    for _ in range(3):  # a child forked while we were listing: catch it on the next pass
        procs = [root, *root.children(recursive=True)] if root.is_running() else []
        procs = [p for p in procs if p.pid not in killed]
        if not procs:
            break
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
                killed.append(proc.pid)
    psutil.wait_procs([p for p in [root] if p.is_running()], timeout=10)
    return killed


@dataclass
class Worker:
    """One ``airflow celery worker`` and its own local disk."""

    name: str
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    killed_at: float | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def log(self) -> Path:
        return self.root / "worker.log"

    def tries(self, run_id: str = RUN_ID) -> dict[int, list[int]]:
        """``{map_index: [try numbers]}`` of the task logs on this worker's disk: the tries it ran."""
        found: dict[int, list[int]] = defaultdict(list)
        base = self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={TASK_ID}"
        for path in base.glob("map_index=*/attempt=*.log"):
            found[int(path.parent.name.split("=", 1)[1])].append(int(path.stem.split("=", 1)[1]))
        return {k: sorted(v) for k, v in sorted(found.items())}

    def kill(self) -> list[int]:
        assert self.proc is not None
        self.killed_at = time.monotonic()
        killed = kill_tree(self.proc.pid)
        self.proc.wait(timeout=10)
        return killed


@dataclass
class Deployment:
    work: Path
    pg: PostgresServer
    broker: RedisServer
    env: dict[str, str]
    shared: Path  # [spotzee] failures_base: the one directory both workers reach
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        import psycopg2  # type: ignore[import-untyped]

        connect = psycopg2.connect(host=self.pg.host, port=self.pg.port, user=self.pg.user, dbname=self.pg.dbname)
        with contextlib.closing(connect) as db, db.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def check_alive(self) -> None:
        for proc in self.services:
            if proc.poll() is not None:
                name = str(proc.args[1])  # type: ignore[index]
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}):\n{_tail(self.work / f'{name}.log')}")
        for worker in self.workers:
            if worker.killed_at is None and worker.proc is not None and worker.proc.poll() is not None:
                raise RuntimeError(f"{worker.name} exited ({worker.proc.returncode}):\n{_tail(worker.log)}")

    def trigger(self) -> None:
        """One manual run for :data:`LOGICAL_DATE`, data interval inferred from it (not from today)."""
        code = (
            "import datetime as dt\n"
            "from airflow.api.common.trigger_dag import trigger_dag\n"
            "from airflow.utils.types import DagRunTriggeredByType\n"
            f"when = dt.datetime.fromisoformat({LOGICAL_DATE.isoformat()!r})\n"
            f"run = trigger_dag({DAG_ID!r}, run_id={RUN_ID!r}, logical_date=when, run_after=when,\n"
            "                  triggered_by=DagRunTriggeredByType.CLI)\n"
            "print(run.run_id, run.data_interval_start, run.data_interval_end)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)
        if done.returncode:
            raise RuntimeError(f"triggering the run failed: {done.stderr[-3000:]}")

    def task_instances(self) -> list[tuple[Any, ...]]:
        """(map_index, state, try_number, start_date, end_date, hostname, pid) of the mapped tasks."""
        return self.query("SELECT map_index, state, try_number, start_date, end_date, hostname, pid "
                          "FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY map_index",
                          DAG_ID, RUN_ID, TASK_ID)

    def states(self) -> dict[str, int]:
        rows = self.query("SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s "
                          "GROUP BY state", DAG_ID, RUN_ID)
        return {str(s): n for s, n in rows}

    def run_state(self) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, RUN_ID)
        return str(rows[0][0]) if rows else None

    def wait_run(self, timeout: float, log: Log) -> str:
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            self.check_alive()
            state, tasks = self.run_state(), self.states()
            now = f"{state}; tasks " + ", ".join(f"{k}={v}" for k, v in sorted(tasks.items()))
            if now != last:
                log(f"run {RUN_ID}: {now}")
                last = now
            if state in ("success", "failed"):
                return state
            time.sleep(1.0)
        raise TimeoutError(f"the DAG run did not finish in {timeout:.0f} s (last: {last})")

    def summaries(self) -> dict[int, dict[str, Any]]:
        """Each partition's summary (its final try's return value)."""
        rows = self.query("SELECT map_index, value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s "
                          "AND key = 'return_value'", DAG_ID, RUN_ID, TASK_ID)
        return {int(i): v if isinstance(v, dict) else json.loads(v) for i, v in rows}

    def failure_files(self) -> list[Path]:
        return sorted((self.shared / DAG_ID).glob(f"*/{TASK_ID}.*.jsonl"))


def _env(work: Path, crm: Path, pg: PostgresServer, broker: RedisServer, emu: Any, api_port: int,
         shared: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(work / "control"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(),
        "AIRFLOW__CELERY__BROKER_URL": broker.url(),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg.url("postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CONCURRENCY),
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # a dead worker's tasks are failed into up_for_retry 15 s after their last heartbeat (default 300 s)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SPOTZEE__FAILURES_BASE": str(shared),
        "AIRFLOW_CONN_SPOTZEE_DEFAULT": emu.connection_json(),
        "AIRFLOW_CONN_CRM_DB": json.dumps({"conn_type": "sqlite", "host": str(crm)}),
        "SPOTZEE_DEPLOY_PARTITIONS": str(PARTITIONS),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


def _spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([_airflow(), *command], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait(timeout=10)


def _wait_http(url: str, deadline: float, deployment: Deployment) -> None:
    while time.monotonic() < deadline:
        deployment.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0, trust_env=False).status_code < 500:
                return
        time.sleep(1.0)
    raise TimeoutError(f"{url} did not answer")


def _wait_workers(deployment: Deployment, deadline: float) -> None:
    """Until both workers say ``ready`` in their logs (connected to the broker, pool started)."""
    while time.monotonic() < deadline:
        deployment.check_alive()
        if all(w.log.exists() and re.search(rb"\bready\b", w.log.read_bytes()) for w in deployment.workers):
            return
        time.sleep(0.5)
    raise TimeoutError("the Celery workers did not become ready")


@contextlib.contextmanager
def celery_deployment(crm: Path, emu: Any, log: Log, *, keep_logs: Path | None = None) -> Iterator[Deployment]:
    """Everything above, started and ready (DAG parsed, unpaused, both workers listening); stopped (and every
    process left killed) on exit. ``keep_logs``: copy every component's log there before the work
    directory goes."""
    reason = missing()
    if reason:
        raise RuntimeError(f"a Celery deployment cannot start here: {reason}")
    work = Path(tempfile.mkdtemp(prefix="spotzee-celery-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with postgres_server(max_connections=200) as pg, redis_server() as broker:
            shared = work / "shared-failures"
            shared.mkdir()
            (work / "control").mkdir()
            api_port = _free_port()
            env = _env(work, crm, pg, broker, emu, api_port, shared)
            deployment = Deployment(work, pg, broker, env, shared)
            log("airflow db migrate (PostgreSQL metadata database)")
            done = subprocess.run([_airflow(), "db", "migrate"], env=env, capture_output=True, timeout=900,
                                  check=False)
            if done.returncode:
                raise RuntimeError(f"airflow db migrate failed: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}")
            log("starting api-server, dag-processor, scheduler (CeleryExecutor) and two Celery workers")
            for command in (["api-server", "--port", str(api_port), "--workers", "1"], ["dag-processor"],
                            ["scheduler"]):
                procs.append(_spawn(command, env, work / f"{command[0]}.log", work / "control"))
                deployment.services.append(procs[-1])
            for name in WORKERS:
                worker = Worker(name, work / name)
                for sub in ("home", "tmp"):
                    (worker.root / sub).mkdir(parents=True)
                worker_env = dict(env, AIRFLOW_HOME=str(worker.home), TMPDIR=str(worker.root / "tmp"))
                worker.proc = _spawn(["celery", "worker", "--concurrency", str(CONCURRENCY), "--celery-hostname",
                                      f"{name}@%h", "--skip-serve-logs"], worker_env, worker.log, worker.root)
                procs.append(worker.proc)
                deployment.workers.append(worker)
            _wait_http(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", time.monotonic() + 180, deployment)
            deadline = time.monotonic() + 180
            while not deployment.query("SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID):
                deployment.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dag-processor did not register {DAG_ID}")
                time.sleep(1.0)
            subprocess.run([_airflow(), "dags", "unpause", DAG_ID], env=env, check=True, capture_output=True,
                           timeout=300)
            _wait_workers(deployment, time.monotonic() + 180)
            log("deployment ready")
            try:
                yield deployment
            finally:
                _stop(procs)
                if keep_logs is not None:
                    keep_logs.mkdir(parents=True, exist_ok=True)
                    for path in [*work.glob("*.log"), *(w.log for w in deployment.workers)]:
                        if path.exists():
                            shutil.copyfile(path, keep_logs / (f"{path.parent.name}-{path.name}"
                                                               if path.parent != work else path.name))
                    for worker in deployment.workers:  # the task logs on each worker's own disk
                        if (worker.home / "logs").is_dir():
                            shutil.copytree(worker.home / "logs", keep_logs / f"{worker.name}-task-logs",
                                            dirs_exist_ok=True)
    finally:
        _stop(procs)
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------- the scenario


class TreeCpu:
    """CPU seconds used by each worker's whole process tree (the Celery worker, its pool processes, the task
    supervisors and task processes), sampled every ``interval`` s from a thread. Each process counts with
    its last sample, so a process that ends between two samples loses at most ``interval`` of CPU."""

    def __init__(self, workers: list[Worker], interval: float = 1.0) -> None:
        import threading

        self.workers, self.interval = workers, interval
        self.seen: dict[str, dict[int, float]] = {w.name: {} for w in workers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-cpu", daemon=True)

    def _sample(self) -> None:
        for worker in self.workers:
            if worker.proc is None or worker.proc.poll() is not None:
                continue
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(worker.proc.pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        self.seen[worker.name][proc.pid] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreeCpu:  # noqa: PYI034
        self._sample()
        self._start = {name: dict(pids) for name, pids in self.seen.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join(timeout=30)

    def used(self) -> dict[str, float]:
        """CPU seconds per worker since ``__enter__``."""
        return {name: round(sum(cpu - self._start[name].get(pid, 0.0) for pid, cpu in pids.items()), 2)
                for name, pids in self.seen.items()}


def worker_of_partition(deployment: Deployment) -> dict[int, str]:
    """Which worker ran each partition's first try (from the task logs on each worker's own disk)."""
    owner: dict[int, str] = {}
    for worker in deployment.workers:
        for index, tries in worker.tries().items():
            if 1 in tries:
                owner[index] = worker.name
    return owner


def per_worker_series(emu: Any, owner: dict[int, str], wall0: float, *, bucket: float = 0.5,
                      window: float = 2.0) -> dict[str, list[tuple[float, float]]]:
    """Each worker's accepted items/s over time (``window`` seconds, one point per ``bucket``), from when
    the emulator applied each contact (ledger ``created_at``) and the partition it belongs to
    (``pk % PARTITIONS`` of ``cust-<pk>``), whose worker ``owner`` gives."""
    counts: dict[str, dict[int, int]] = {name: defaultdict(int) for name in sorted(set(owner.values()))}
    offset, page = 0, 10_000
    with httpx.Client(timeout=120.0, trust_env=False) as client:
        while True:
            body = client.get(emu.admin_url + "/ledger/contacts", params={"offset": offset, "limit": page}).json()
            for contact in body["contacts"]:
                ext = contact.get("external_id") or ""
                if not ext.startswith("cust-"):
                    continue
                name = owner.get(int(ext[5:]) % PARTITIONS)
                if name is None:
                    continue
                at = dt.datetime.fromisoformat(contact["created_at"]).timestamp()
                counts[name][int((at - wall0) // bucket)] += 1
            offset += len(body["contacts"])
            if len(body["contacts"]) < page or offset >= body["total"]:
                break
    series: dict[str, list[tuple[float, float]]] = {}
    steps = round(window / bucket)
    for name, per in counts.items():
        if not per:
            series[name] = []
            continue
        first, last = min(per), max(per)
        series[name] = [(round((b + 1) * bucket, 3), round(sum(per.get(b - k, 0) for k in range(steps)) / window, 1))
                        for b in range(first, last + steps)]
    return series


def celery(sizes: Any, log: Log) -> Any:
    """The scenario: 8 partitions on one Starter key through the Celery deployment above."""
    from airflow_provider_spotzee.api_facts import PLANS
    from airflow_provider_spotzee.testing.crm import seed_crm
    from benchmarks.common import ITEMS_PER_REQUEST, RESULTS_DIR, Row, ScenarioResult, StatsSampler, emulator

    out = ScenarioResult()
    rows = sizes.scaleout_rows
    scratch = Path(tempfile.mkdtemp(prefix="spotzee-celery-crm-"))
    try:
        crm = scratch / "crm.db"
        log(f"seeding a {rows:,}-row SQLite CRM")
        seeded = seed_crm(crm, rows)
        with emulator("starter", latency_ms=LATENCY_MS) as emu, \
                celery_deployment(crm, emu, log, keep_logs=RESULTS_DIR / "celery-logs") as deployment:
            with StatsSampler(emu, interval=0.5) as sampler, TreeCpu(deployment.workers) as cpu:
                wall0 = time.time()
                deployment.trigger()
                log(f"triggered {RUN_ID} (logical date {LOGICAL_DATE:%Y-%m-%d})")
                state = deployment.wait_run(sizes.scaleout_timeout_s, log)
            tasks = deployment.task_instances()
            summaries = deployment.summaries()
            owner = worker_of_partition(deployment)
            ledger = emu.ledger_summary()
            log("reading the ledger for each worker's items over time")
            workers = per_worker_series(emu, owner, wall0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    totals = sampler.totals()
    ceiling = PLANS["starter"].write_rps * ITEMS_PER_REQUEST
    first, last = sampler.time_at(1), sampler.time_at(totals["items"])
    d = out.details
    d.update({
        "run_state": state, "crm": seeded, "rows": rows, "partitions": PARTITIONS, "workers": list(WORKERS),
        "concurrency_per_worker": CONCURRENCY, "items": totals["items"], "requests": totals["requests"],
        "throttled": totals["throttled"], "items_per_s_sustained": round(sampler.sustained(), 1),
        "items_per_s_span": round(totals["items"] / (last - first), 1) if last > first else 0.0,
        "partition_worker": {str(k): v for k, v in owner.items()},
        "tasks": [{"map_index": t[0], "state": t[1], "try_number": t[2], "worker": owner.get(t[0]),
                   "seconds": round((t[4] - t[3]).total_seconds(), 1) if t[3] and t[4] else None} for t in tasks],
        "ledger": ledger, "series": sampler.series(), "worker_series": workers, "ceiling": ceiling,
    })
    load = [round(x, 2) for x in os.getloadavg()]
    worker_cpu = cpu.used()
    worker_items = {name: sum(s.get("extracted", 0) for i, s in summaries.items() if owner.get(i) == name)
                    for name in WORKERS}
    d.update({"worker_cpu_s": worker_cpu, "worker_items": worker_items, "load_avg_at_end": load,
              "worker_cpu_us_per_item": {name: round(worker_cpu[name] / max(1, worker_items[name]) * 1e6, 1)
                                         for name in WORKERS},
              "worker_cores_used": {name: round(worker_cpu[name] / (last - first), 2) if last > first else None
                                    for name in WORKERS}})
    good = seeded["good"]
    d["ledger_ok"] = ledger["contacts"] == good and ledger["contacts_upserted_more_than_once"] == 0
    per_worker = {name: sum(1 for v in owner.values() if v == name) for name in WORKERS}
    out.rows += [
        Row("5c", f"{PARTITIONS} partitions on 2 Celery workers (CeleryExecutor, Redis): sustained items/s",
            d["items_per_s_sustained"], "items/s", ceiling, "Starter ceiling (one key)", target="≥ 0.90 × ceiling",
            met=state == "success" and d["ledger_ok"] and d["items_per_s_sustained"] >= 0.90 * ceiling,
            note=f"{d['items']:,} items; whole span {d['items_per_s_span']:,.0f}/s; partitions per worker "
                 f"{per_worker}; worker CPU per item (whole task, Airflow included) "
                 f"{d['worker_cpu_us_per_item']} µs, cores used {d['worker_cores_used']}; load average "
                 f"at the end {load}; ledger {'exact' if d['ledger_ok'] else 'WRONG'}; run {state}"),
        Row("5c", f"{PARTITIONS} partitions on 2 Celery workers: share of requests 429'd", d["throttled"], "requests",
            d["requests"], "requests seen by the emulator", ratio=d["throttled"] / max(d["requests"], 1),
            target="≤ 2 %", met=d["throttled"] <= 0.02 * d["requests"]),
    ]
    return out


def celery_plot(details: dict[str, Any], machine: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plot import ceiling_lines, save_plot

    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    colors = ("tab:green", "tab:purple", "tab:orange", "tab:brown")
    series = details.get("worker_series") or {}
    totals: dict[float, float] = defaultdict(float)
    for (name, points), color in zip(sorted(series.items()), colors):
        parts = sorted(int(k) for k, v in (details.get("partition_worker") or {}).items() if v == name)
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "-", color=color, linewidth=1.3, label=f"{name}: partitions {parts}")
            for x, y in points:
                totals[x] += y
    if totals:
        moments = sorted(totals)
        ax.plot(moments, [totals[x] for x in moments], "-", color="tab:blue", linewidth=1.8,
                label="both workers (sum)")
    ceiling = details.get("ceiling", 10_000)
    ceiling_lines(ax, ceiling, details.get("items_per_s_sustained"))
    ax.set_xlabel("seconds since the run was triggered")
    ax.set_ylabel("items/s applied by the emulator (2 s window)")
    ax.set_ylim(0, max([ceiling * 1.2] + list(totals.values())) * 1.1)
    ax.grid(alpha=0.3)
    ax.set_title(f"spotzee_crm_sync_celery: {details.get('partitions')} partitions on one key, CeleryExecutor, "
                 f"2 workers × concurrency {details.get('concurrency_per_worker')}, Redis broker, PostgreSQL\n"
                 f"{machine.get('nproc')} CPUs ({machine.get('cpu_model')}), {details.get('items', 0):,} items, "
                 f"{details.get('throttled', 0)} × 429 of {details.get('requests', 0):,} requests", fontsize=9)
    return save_plot(fig, ax, path)

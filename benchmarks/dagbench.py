"""The example DAG ``spotzee_crm_sync`` through real Airflow, for scenarios 4 and 6.

As ``scripts/demo.py`` does: a SQLite CRM seeded by :func:`seed_crm` (same shape, same ~2 % of
deliberately bad rows), a private AIRFLOW_HOME per DAG run, the emulator in its own process. What differs
from the demo: the emulator configuration (see ``DAG_PLAN``), no injected faults, and fresh homes come
from one ``airflow db migrate`` per :class:`DagBench` (its ``airflow.db`` is copied into each new home,
with ``sql_alchemy_conn`` pointing at the copy, so every run starts from a just-migrated database).

Every run is checked against what was seeded: every row extracted (or, for the hook, submitted), one
send per good row, one contact per good row in the emulator; otherwise the scenario fails (no figure).

Every child process runs in its own session and is killed (by its process group id) on a timeout or an
error; temporary directories go when the :class:`DagBench` closes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from airflow_provider_spotzee.testing import SpotzeeEmulator
from airflow_provider_spotzee.testing.crm import SEED_DAY, SEED_RUN_DATE, seed_crm
from benchmarks.common import ROOT, expect_items

DAG_ID = "spotzee_crm_sync"
TASK_ID = "upsert_users"
LOGICAL_DATE = SEED_RUN_DATE  # a manual run of this date has the data interval [SEED_DAY, SEED_DAY + 1)
INTERVAL = (f"{SEED_DAY} 00:00:00", f"{SEED_DAY + dt.timedelta(days=1)} 00:00:00")  # as the CRM stores times
#: Memory and Airflow overhead are measured here, not the rate ceiling: Professional (500 write req/s,
#: i.e. 50,000 items/s, far above what one client process reaches on this machine, so it never paces)
#: and 10 ms of latency, no faults. 1M rows then take ~1.5 to 3 minutes depending on the machine's load.
DAG_PLAN = "professional"
DAG_LATENCY_MS = 10.0
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))


def airflow_env(home: Path, crm: Path, emu: SpotzeeEmulator) -> dict[str, str]:
    """The demo's environment (``scripts/demo.py``), plus the metadata DB pinned to this home's copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_SPOTZEE_DEFAULT": emu.connection_json(),
        "AIRFLOW_CONN_CRM_DB": json.dumps({"conn_type": "sqlite", "host": str(crm)}),
        "PYTHONPATH": str(ROOT),
    })
    return env


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: pgid == its pid


def run_measured(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` in its own session, output to ``log_path``; wall time, exit code, and the child's
    CPU time and peak RSS from ``wait4``. Killed (whole process group) on timeout or interruption."""
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    timer = threading.Timer(timeout, _kill_group, args=(proc,))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        timer.cancel()
        _kill_group(proc)  # anything it left behind in its group
    wall = time.perf_counter() - started
    timed_out = wall >= timeout
    return {"returncode": proc.returncode, "wall_s": round(wall, 3), "timed_out": timed_out,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "max_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def summary_from_log(text: str, endpoint: str = "users_batch") -> dict[str, Any] | None:
    """The operator's last ``Spotzee <endpoint> summary: {...}`` line."""
    marker = f"Spotzee {endpoint} summary: "
    found = None
    for line in text.splitlines():
        if marker in line:
            found, _ = json.JSONDecoder().raw_decode(line.split(marker, 1)[1])
    return found


def task_instances(airflow_db: Path) -> dict[str, dict[str, Any]]:
    """start/end/duration/state of every task instance in a finished run's metadata DB."""
    db = sqlite3.connect(airflow_db)
    try:
        rows = db.execute("SELECT task_id, state, try_number, start_date, end_date, duration FROM task_instance")
        return {r[0]: {"state": r[1], "try_number": r[2], "start_date": r[3], "end_date": r[4],
                       "duration_s": round(r[5], 3) if r[5] is not None else None} for r in rows}
    finally:
        db.close()


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T")).replace(tzinfo=None)


class DagBench:
    """A work directory with a migrated Airflow metadata DB to copy, seeded CRMs and fresh homes."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="spotzee-dagbench-"))
        self._template: Path | None = None
        self._homes = 0
        self.seeded: dict[Path, dict[str, int]] = {}

    def __enter__(self) -> DagBench:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    # ---------------------------------------------------------------------------------------- setup

    def seed(self, rows: int, bad_ratio: float = 0.02) -> tuple[Path, dict[str, int]]:
        """``seed_crm`` with its defaults (``bad_ratio`` 0.02, as the demo) unless told otherwise."""
        path = self.work / f"crm-{rows}-{bad_ratio}.db"
        kinds = self.seeded[path] = seed_crm(path, rows, day=SEED_DAY, bad_ratio=bad_ratio)
        return path, kinds

    def check(self, what: str, crm: Path, emu: SpotzeeEmulator, read: int, sent: int) -> None:
        """Fail unless ``read`` is every row seeded in ``crm``, ``sent`` every good one, and the emulator
        holds one contact per good row (its ledger is per emulator reset)."""
        kinds = self.seeded[crm]
        expect_items(f"{what}: rows read", read, sum(kinds.values()))
        expect_items(f"{what}: rows sent", sent, kinds["good"])
        expect_items(f"{what}: contacts in the emulator", emu.ledger_summary()["contacts"], kinds["good"])

    def _migrated(self) -> Path:
        if self._template is None:
            home = self.work / "template-home"
            home.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
            env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags")})
            done = run_measured([AIRFLOW_BIN, "db", "migrate"], env, self.work / "db_migrate.log", timeout=600)
            if done["returncode"]:
                raise RuntimeError(f"airflow db migrate failed; see {self.work / 'db_migrate.log'}: "
                                   + (self.work / "db_migrate.log").read_text()[-2000:])
            self._template = home / "airflow.db"
        return self._template

    def fresh_home(self) -> Path:
        """A new AIRFLOW_HOME whose metadata DB is a copy of the just-migrated one."""
        template = self._migrated()
        self._homes += 1
        home = self.work / f"home-{self._homes}"
        home.mkdir()
        shutil.copyfile(template, home / "airflow.db")
        return home

    # ------------------------------------------------------------------------------------------ runs

    def dag_in_process(self, emu: SpotzeeEmulator, crm: Path, timeout: float) -> dict[str, Any]:
        """``benchmarks.dag_child dag``: dag.test in one process, RSS measured around upsert_users."""
        home = self.fresh_home()
        out = home / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.dag_child", "dag", "--out", str(out),
               "--dag-id", DAG_ID, "--task-id", TASK_ID, "--logical-date", LOGICAL_DATE]
        proc = run_measured(cmd, airflow_env(home, crm, emu), home / "dag_child.log", timeout)
        if not out.exists():
            raise RuntimeError(f"dag child wrote no result ({proc}); log tail:\n"
                               + (home / "dag_child.log").read_text()[-3000:])
        result = json.loads(out.read_text())
        result["process"] = proc
        if proc["returncode"] != 0 or not result.get("summary"):
            raise RuntimeError(f"the DAG run failed ({proc}, run state {result.get('run_state')}); log tail:\n"
                               + (home / "dag_child.log").read_text()[-3000:])
        self.check("dag.test", crm, emu, result["summary"]["extracted"], result["summary"]["sent_ok"])
        return result

    def hook_alone(self, emu: SpotzeeEmulator, crm: Path, namespace: str, timeout: float) -> dict[str, Any]:
        """``benchmarks.dag_child hook``: the same rows, the DAG's mapping, ``SpotzeeHook.upsert_users``."""
        home = self.fresh_home()  # only for a clean environment; the hook does not touch the metadata DB
        out = home / "hook.json"
        cmd = [sys.executable, "-m", "benchmarks.dag_child", "hook", "--out", str(out), "--crm", str(crm),
               "--start", INTERVAL[0], "--end", INTERVAL[1], "--namespace", namespace,
               "--dag-id", DAG_ID, "--task-id", TASK_ID]
        proc = run_measured(cmd, airflow_env(home, crm, emu), home / "hook_child.log", timeout)
        if proc["returncode"] != 0 or not out.exists():
            raise RuntimeError(f"hook child failed ({proc}); log tail:\n" + (home / "hook_child.log").read_text()[-3000:])
        result = json.loads(out.read_text())
        result["process"] = proc
        self.check("hook alone", crm, emu, result["submitted"], result["succeeded"])
        return result

    def dags_test_cli(self, emu: SpotzeeEmulator, crm: Path, timeout: float) -> dict[str, Any]:
        """``airflow dags test spotzee_crm_sync LOGICAL_DATE`` in a fresh home, as the demo runs it."""
        home = self.fresh_home()
        log_path = home / "dags_test.log"
        proc = run_measured([AIRFLOW_BIN, "dags", "test", DAG_ID, LOGICAL_DATE], airflow_env(home, crm, emu),
                            log_path, timeout)
        text = log_path.read_text()
        summary = summary_from_log(text)
        if proc["returncode"] != 0 or summary is None:
            raise RuntimeError(f"airflow dags test failed ({proc}); log tail:\n{text[-3000:]}")
        self.check("airflow dags test", crm, emu, summary["extracted"], summary["sent_ok"])
        tis = task_instances(home / "airflow.db")
        task = tis.get(TASK_ID, {})
        out: dict[str, Any] = {"process": proc, "wall_s": proc["wall_s"], "summary": summary,
                               "task_instances": tis, "task_duration_s": task.get("duration_s"),
                               "execute_s": summary["elapsed_seconds"]}
        # Where the task's time went: start-up (TI start → execute entered), execute, wind-down.
        marker = next((line for line in reversed(text.splitlines()) if "Spotzee users_batch summary: " in line), None)
        if marker and task.get("start_date") and task.get("end_date"):
            with contextlib.suppress(ValueError):
                logged = _moment(marker.split()[0])
                execute_start = logged - dt.timedelta(seconds=summary["elapsed_seconds"])
                out["task_startup_s"] = round((execute_start - _moment(task["start_date"])).total_seconds(), 3)
                out["task_winddown_s"] = round((_moment(task["end_date"]) - logged).total_seconds(), 3)
        return out

"""Real Airflow 3 for the DAG tests: a private AIRFLOW_HOME with a migrated metadata DB, the example DAGs,
connections as AIRFLOW_CONN_* variables pointing at the emulator and at a SQLite CRM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_spotzee.testing import SpotzeeEmulator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAGRUN = Path(__file__).with_name("dagrun.py")


@dataclass
class Airflow:
    home: Path
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def dagrun(self, dag_id: str, logical_date: str, run_after: str | None = None, *, reap: bool = False,
               clear: str | None = None, fresh: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """One run with a fixed run id (``run_after``), so a later call continues the same run.
        ``reap``: first fail a killed worker's tasks into up_for_retry, as the scheduler does;
        ``clear``: first clear that task in the run, as the UI's Clear button does;
        ``fresh``: replace an existing run of that date by a new one (its task state store goes too)."""
        command = [sys.executable, str(DAGRUN), dag_id, logical_date, "--run-after", run_after or logical_date]
        command += ["--reap"] if reap else []
        command += ["--clear", clear] if clear else []
        command += ["--fresh"] if fresh else []
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def run_killing_workers(self, dag_id: str, logical_date: str, progress: Callable[[], int],
                            thresholds: Sequence[int], *, timeout: float = 240) -> tuple[int, str, int]:
        """One run whose worker is SIGKILLed (its whole process group) each time ``progress()`` (e.g. the
        emulator's applied count) reaches the next threshold, mid-sync wherever the worker happens to be;
        after each kill Airflow's reaping marks the task up_for_retry and the run goes on in a new worker,
        as the scheduler would. Returns (exit code, output of the last worker, kills)."""
        proc = self.popen_dagrun(dag_id, logical_date, fresh=True)
        kills = 0
        for threshold in thresholds:
            deadline = time.monotonic() + 120
            while progress() < threshold and proc.poll() is None:
                assert time.monotonic() < deadline, f"no progress to {threshold} within 120 s"
                time.sleep(0.02)
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = self.popen_dagrun(dag_id, logical_date, reap=True)
        output = proc.communicate(timeout=timeout)[0]
        return proc.returncode, output, kills

    def popen_dagrun(self, dag_id: str, logical_date: str, *, fresh: bool = False,
                     reap: bool = False) -> subprocess.Popen[str]:
        """A run in the background, in its own session so the test can SIGKILL the whole worker."""
        command = [sys.executable, str(DAGRUN), dag_id, logical_date, "--run-after", logical_date]
        command += (["--fresh"] if fresh else []) + (["--reap"] if reap else [])
        return subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


def summaries(output: str, endpoint: str) -> list[dict]:
    marker = f"Spotzee {endpoint} summary: "
    found = []
    for line in output.splitlines():
        if marker in line:
            text = line.split(marker, 1)[1]
            found.append(json.loads(text[: text.rindex("}") + 1]))
    return found


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow_home")
    env = _base_env(home)
    done = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )
    return env


@pytest.fixture
def airflow(airflow_home: Path, emulator: SpotzeeEmulator, tmp_path: Path) -> Airflow:
    """Airflow CLI/DAG runner wired to the (reset) emulator and to ``tmp_path / 'crm.db'``."""
    env = _base_env(airflow_home)
    env["AIRFLOW_CONN_SPOTZEE_DEFAULT"] = emulator.connection_json()
    env["AIRFLOW_CONN_CRM_DB"] = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "crm.db")})
    return Airflow(airflow_home, env)

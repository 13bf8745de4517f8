"""Every ```python block of README.md and docs/*.md runs as pasted, and the README's DAG runs end to end.

A block that defines a DAG (``DAG(`` or ``@dag``) is written to its own DAG folder and parsed by Airflow's
DagBag, which must find at least one DAG and no import error. Any other block runs as a plain Python
script. Each runs in a subprocess with a fresh AIRFLOW_HOME, ``AIRFLOW__CORE__LOAD_EXAMPLES=False``, the
``spotzee_default`` connection pointing at the emulator and ``crm_db`` at a seeded SQLite CRM, so a block
that calls the hook really talks to Spotzee's stand-in. A block preceded by ``<!-- snippet: fragment -->``
is deliberately partial and is skipped.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_spotzee.testing import SpotzeeEmulator
from airflow_provider_spotzee.testing.crm import SEED_RUN_DATE, seed_crm
from tests.dags.conftest import ROOT, Airflow, summaries

pytestmark = pytest.mark.dags

FRAGMENT = "<!-- snippet: fragment -->"
IS_DAG = re.compile(r"\bDAG\(|@dag\b")

#: Blocks in pages this test's author does not own that do not run as pasted, by page and first code
#: line. Each is a strict xfail: once its page is fixed the test fails until the entry is removed.
KNOWN_BROKEN: dict[tuple[str, str], str] = {}

RUNNER = """
import runpy
import sys

path, kind = sys.argv[1], sys.argv[2]
if kind == "dag":
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path, safe_mode=False)
    for file, error in bag.import_errors.items():
        print(f"IMPORT ERROR in {file}:\\n{error}")
    print("DAGS", sorted(bag.dag_ids))
    sys.exit(1 if bag.import_errors or not bag.dag_ids else 0)
runpy.run_path(path, run_name="__main__")
"""


@dataclass(frozen=True)
class Snippet:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    code: str
    fragment: bool

    @property
    def is_dag(self) -> bool:
        return bool(IS_DAG.search(self.code))

    @property
    def first_line(self) -> str:
        return next(line for line in self.code.splitlines() if line.strip())


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def snippets(page: Path) -> list[Snippet]:
    found: list[Snippet] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{page.name}:{start + 1}: unclosed ```python block"
            found.append(Snippet(str(page.relative_to(ROOT)), start + 1, "\n".join(body) + "\n", before == FRAGMENT))
        i += 1
    return found


ALL = [s for page in pages() for s in snippets(page)]


def _params() -> list:
    params = []
    for s in ALL:
        marks = []
        if s.fragment:
            marks.append(pytest.mark.skip(reason="marked <!-- snippet: fragment -->"))
        reason = KNOWN_BROKEN.get((s.page, s.first_line))
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(s, id=f"{s.page}:{s.line}", marks=marks))
    return params


def test_the_pages_have_snippets_and_the_readme_leads_with_its_dag() -> None:
    assert len(ALL) >= 15
    readme = [s for s in ALL if s.page == "README.md"]
    assert readme and readme[0].is_dag and "crm_to_spotzee" in readme[0].code


def test_readme_links_work_outside_the_repository() -> None:
    """The README is shown on its own (PyPI, a wheel's metadata): its links are absolute URLs into the
    project's repository, the one pyproject.toml names."""
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    repository = urls["Source"]
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert links
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert not relative
    for link in links:
        if "/blob/main/" in link:
            assert link.startswith(repository + "/blob/main/")
            assert (ROOT / link.split("/blob/main/", 1)[1].split("#")[0]).exists(), link


@pytest.mark.parametrize("snippet", _params())
def test_snippet_runs_as_pasted(snippet: Snippet, emulator: SpotzeeEmulator, tmp_path: Path) -> None:
    folder = tmp_path / "snippet"
    folder.mkdir()
    path = folder / "snippet.py"
    path.write_text(snippet.code, encoding="utf-8")
    seed_crm(tmp_path / "crm.db", 50)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW_CONN_SPOTZEE_DEFAULT": emulator.connection_json(),
        "AIRFLOW_CONN_CRM_DB": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "crm.db")}),
    })
    kind = "dag" if snippet.is_dag else "plain"
    done = subprocess.run([sys.executable, "-c", RUNNER, str(path), kind], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (f"{snippet.page}:{snippet.line} ({kind}) failed:\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if kind == "dag":
        assert "DAGS ['" in done.stdout


@pytest.mark.parametrize(("bad_ratio", "sync_passes"), [(0.01, True), (0.05, False)],
                         ids=["under-max_failure_ratio", "over-max_failure_ratio"])
def test_the_readme_dag_syncs_and_writes_the_failures_back(airflow: Airflow, emulator: SpotzeeEmulator, tmp_path: Path,
                                                           bad_ratio: float, sync_passes: bool) -> None:
    """The README's DAG, pasted into a DAG folder, through ``airflow dags test`` for the seeded CRM's last
    hour (~1,000 rows). The sync balances against Spotzee's ledger and ``write_back`` stores every failure,
    also when more than 2 % of the rows are bad: then the sync fails at once (no retry), ``write_back``
    still runs, and ``sync_failed`` keeps the run failed."""
    readme = next(s for s in ALL if s.page == "README.md")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "crm_to_spotzee.py").write_text(readme.code, encoding="utf-8")
    seed_crm(tmp_path / "crm.db", 24_000, bad_ratio=bad_ratio)
    airflow.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    done = airflow.cli("dags", "test", "crm_to_spotzee", SEED_RUN_DATE)
    output = done.stdout + done.stderr
    assert done.returncode == 0 or not sync_passes, output[-6000:]
    finished = re.findall(r"DagRun Finished: dag_id=crm_to_spotzee.*?state=(\w+)", output)
    assert finished == ["success" if sync_passes else "failed"], output[-6000:]
    summary = summaries(done.stdout, "users_batch")[-1]
    failed = summary["invalid"] + summary["rejected"] + summary["dead_lettered"]
    assert summary["balanced"] and 900 < summary["extracted"] < 1_100 and summary["dead_lettered"] == 0
    assert (failed / summary["extracted"] <= 0.02) == sync_passes and failed > 0
    assert ("SpotzeeSyncRejected" in output) != sync_passes
    assert "up_for_retry" not in output  # a ratio failure is not retried
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == summary["sent_ok"] and ledger["contacts_upserted_more_than_once"] == 0
    with sqlite3.connect(tmp_path / "crm.db") as db:
        written = db.execute("SELECT run_id, stage, code, message FROM crm_spotzee_failures").fetchall()
    assert len(written) == failed
    assert all(run_id and stage == "invalid" and code and message for run_id, stage, code, message in written)
    assert "@example.com" not in json.dumps(written)  # ids and codes, never the values

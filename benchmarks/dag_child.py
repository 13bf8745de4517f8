"""Child process for scenarios 4 and 6: the example DAG through real Airflow, and the hook alone.

    python -m benchmarks.dag_child dag  --out FILE [--dag-id spotzee_crm_sync] [--logical-date SEED_RUN_DATE]
    python -m benchmarks.dag_child hook --out FILE --crm CRM.db --start ISO --end ISO --namespace NS

Both run with the environment :func:`benchmarks.dagbench.airflow_env` builds (a private AIRFLOW_HOME, the
example DAG folder, ``spotzee_default`` pointing at the emulator, ``crm_db`` at the SQLite CRM) and write
one JSON object to ``--out``.

``dag`` does in this process what ``airflow dags test DAG_ID DATE`` does: parse the DAG folder, then
``dag.test(logical_date=DATE)``, which runs every task in this same process. Nothing about the DAG or the
operator changes; two thin wrappers only take measurements:

- around Airflow's ``_run_task`` for the task ``upsert_users`` (its first try): a full collection, then
  the baseline RSS and a reset of the kernel's peak counter, before the task starts; the peak when the
  task has finished (state written, XCom pushed);
- around ``SpotzeeSyncOperator.execute``: the same split at the moment ``execute`` is entered and left,
  so the task window is three segments (start-up, execute, wind-down) with a peak each.

``hook`` is the baseline of scenario 6: the same rows read from the same SQLite file with plain
``sqlite3`` (streamed, in the DAG's cursor order), mapped with the mapping of the DAG's own
``upsert_users`` task, sent with ``SpotzeeHook.upsert_users``. Reading, mapping and sending are timed
together, as the operator's ``execute`` does them together.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_spotzee.testing.crm import SEED_RUN_DATE
from benchmarks.rss import PeakRss, mb, rss

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "spotzee_crm_sync"
TASK_ID = "upsert_users"


def _write(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str))


# ------------------------------------------------------------------------------------------------ dag


def _task_instances(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                          TaskInstance.run_id == run_id))
        return [{"task_id": ti.task_id, "state": str(ti.state), "try_number": ti.try_number,
                 "start_date": ti.start_date.isoformat() if ti.start_date else None,
                 "end_date": ti.end_date.isoformat() if ti.end_date else None,
                 "duration_s": round(ti.duration, 3) if ti.duration is not None else None} for ti in rows]


def _cache_sizes() -> dict[str, list[int]]:
    """``{function: [entries, maxsize]}`` of the bounded caches in ``validation`` (what stays in memory
    however many rows follow)."""
    from airflow_provider_spotzee import validation

    return {name: [fn.cache_info().currsize, fn.cache_info().maxsize]
            for name, fn in sorted(vars(validation).items()) if hasattr(fn, "cache_info")}


def run_dag(args: argparse.Namespace) -> dict[str, Any]:
    wall0 = time.perf_counter()
    marks = {"process_start_mb": mb(rss())}
    import airflow  # noqa: F401 - configures settings and the ORM, as the CLI does
    from airflow.dag_processing.dagbag import DagBag

    marks["airflow_imported_mb"] = mb(rss())
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag(args.dag_id)
    if dag is None:
        raise SystemExit(f"no DAG {args.dag_id}: {bag.import_errors}")
    marks["dag_parsed_mb"] = mb(rss())

    from airflow.sdk.definitions import dag as dag_module

    from airflow_provider_spotzee.operators.base import SpotzeeSyncOperator

    meter = PeakRss()
    state: dict[str, Any] = {"measured": False, "tries": 0}
    original_run_task = dag_module._run_task
    original_execute = SpotzeeSyncOperator.execute

    def run_task(*, ti: Any, task: Any, **kwargs: Any) -> Any:
        if ti.task_id != args.task_id:
            return original_run_task(ti=ti, task=task, **kwargs)
        state["tries"] += 1
        if state["measured"]:  # a retry: run it, measure only the first try
            return original_run_task(ti=ti, task=task, **kwargs)
        state["measured"] = True
        state["task_baseline_rss_mb"] = mb(meter.start("task start-up"))
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            return original_run_task(ti=ti, task=task, **kwargs)
        finally:
            state["task_wall_s"] = round(time.perf_counter() - w0, 3)
            state["task_cpu_s"] = round(time.process_time() - c0, 3)
            state["memory"] = meter.stop()

    def execute(self: Any, context: Any, **kwargs: Any) -> Any:
        if self.task_id != args.task_id or "memory" in state or not state["measured"]:
            return original_execute(self, context, **kwargs)
        state["execute_baseline_rss_mb"] = mb(meter.segment("execute", collect=True))
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            summary = original_execute(self, context, **kwargs)
            state["summary"] = summary
            return summary
        finally:
            state["execute_wall_s"] = round(time.perf_counter() - w0, 3)
            state["execute_cpu_s"] = round(time.process_time() - c0, 3)
            meter.segment("wind-down")
            state["validation_caches"] = _cache_sizes()

    dag_module._run_task = run_task
    SpotzeeSyncOperator.execute = execute  # type: ignore[method-assign]
    logical = dt.datetime.fromisoformat(args.logical_date).replace(tzinfo=dt.UTC)
    marks["before_dag_test_mb"] = mb(rss())
    started = time.perf_counter()
    run = dag.test(logical_date=logical)
    dag_test_s = time.perf_counter() - started
    mem = state.get("memory")
    out: dict[str, Any] = {
        "dag_id": args.dag_id, "task_id": args.task_id, "run_state": str(getattr(run, "state", None)),
        "task_tries": state["tries"], "dag_test_s": round(dag_test_s, 3),
        "process_wall_s": round(time.perf_counter() - wall0, 3), "rss_marks": marks,
        **{k: v for k, v in state.items() if k not in ("memory", "measured", "tries")},
        "task_instances": _task_instances(args.dag_id, run.run_id) if run is not None else [],
    }
    if mem is not None:
        execute_peak = next((s["peak_mb"] for s in mem["segments"] if s["segment"] == "execute"), None)
        out["memory"] = mem
        out["task_peak_growth_mb"] = mem["peak_growth_mb"]
        if execute_peak is not None and "execute_baseline_rss_mb" in state:
            out["execute_peak_growth_mb"] = round(execute_peak - state["execute_baseline_rss_mb"], 1)
    summary = state.get("summary")
    if summary:
        out["items_per_s"] = summary.get("items_per_second")
    return out


# ----------------------------------------------------------------------------------------------- hook


def _load_dag_module(dag_id: str) -> Any:
    import importlib.util

    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{dag_id}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run_hook(args: argparse.Namespace) -> dict[str, Any]:
    import sqlite3

    from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
    from airflow_provider_spotzee.mapping import build_mapper

    module = _load_dag_module(args.dag_id)
    task = next(v for v in vars(module).values() if getattr(v, "task_id", None) == args.task_id
                and hasattr(v, "mapping"))
    mapper = build_mapper(task.mapping)
    table, c, k = task.table, task.cursor_column, task.key_column
    hook = SpotzeeHook(task.spotzee_conn_id)
    _ = hook.config  # the connection is resolved before the clock starts

    def records(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
        cursor = db.execute(f"SELECT * FROM {table} WHERE {c} >= ? AND {c} < ? ORDER BY {c}, {k}",
                            (args.start, args.end))
        names = [d[0] for d in cursor.description]
        for values in cursor:
            yield mapper(dict(zip(names, values)))

    meter = PeakRss()
    baseline = meter.start("hook")
    w0, c0 = time.perf_counter(), time.process_time()
    db = sqlite3.connect(args.crm)
    try:
        result = hook.upsert_users(records(db), idempotency_namespace=args.namespace)
    finally:
        db.close()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    mem = meter.stop()
    return {
        "mapping": task.mapping, "rows_query": f"{table} where {args.start} <= {c} < {args.end} order by {c}, {k}",
        "submitted": result.submitted, "succeeded": result.succeeded, "invalid": result.invalid,
        "rejected": result.rejected, "dead_lettered": result.dead_lettered, "requests": result.requests,
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "send_elapsed_s": round(result.elapsed_seconds, 3),
        "items_per_s": round(result.submitted / wall, 1) if wall else 0.0,
        "client_cpu_us_per_item": round(cpu / max(result.submitted, 1) * 1e6, 1),
        "baseline_rss_mb": mb(baseline), "peak_growth_mb": mem["peak_growth_mb"], "memory": mem,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dag_child")
    parser.add_argument("mode", choices=("dag", "hook"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--dag-id", default=DAG_ID)
    parser.add_argument("--task-id", default=TASK_ID)
    parser.add_argument("--logical-date", default=SEED_RUN_DATE,
                        help="a manual run's logical date; the default's data interval is the day seed_crm fills")
    parser.add_argument("--crm")
    parser.add_argument("--start", help="data interval start, as the CRM stores it")
    parser.add_argument("--end")
    parser.add_argument("--namespace", default="bench-dag-hook")
    args = parser.parse_args()
    result = run_dag(args) if args.mode == "dag" else run_hook(args)
    _write(args.out, result)
    sys.exit(0 if args.mode == "hook" or str(result.get("run_state", "")).endswith("success") else 1)


if __name__ == "__main__":
    main()

"""Run one DAG run through real Airflow (``DAG.test``) with a fixed run id, so a later call can resume,
retry or re-run a cleared task *in the same run* (the task state store is scoped to the run).

``DAG.test`` deletes an existing run of the same logical date before it starts (and the task state
store with it, by foreign-key cascade). A scheduler never does that: a retry or a cleared task runs in
the run it belongs to. So this harness makes ``DAG.test`` reuse the existing run, which is exactly what
the scheduler would do, and nothing else changes.

    python dagrun.py DAG_ID LOGICAL_DATE [--run-after ISO] [--use-executor] [--reap] [--clear TASK_ID] [--fresh]

Exit code 0 when the run succeeded, 1 otherwise; the last line printed is ``STATE <state>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag_id")
    parser.add_argument("logical_date")
    parser.add_argument("--run-after", default=None)
    parser.add_argument("--use-executor", action="store_true")
    parser.add_argument("--clear", metavar="TASK_ID", default=None,
                        help="first clear this task in the run, as the UI's Clear button does")
    parser.add_argument("--fresh", action="store_true",
                        help="delete an existing run of that date first (DAG.test's own behaviour): no checkpoint")
    parser.add_argument("--reap", action="store_true",
                        help="first do what the scheduler does with a dead worker's tasks: mark them up_for_retry")
    args = parser.parse_args()

    from airflow.dag_processing.dagbag import DagBag

    logical = dt.datetime.fromisoformat(args.logical_date).replace(tzinfo=dt.UTC)
    run_after = (
        dt.datetime.fromisoformat(args.run_after).replace(tzinfo=dt.UTC)
        if args.run_after
        else logical
    )
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag(args.dag_id)
    if dag is None:
        print(f"no DAG {args.dag_id}: {bag.import_errors}")
        return 2
    if not args.fresh:
        _reuse_existing_runs()
    if args.reap:
        _reap(args.dag_id, logical)
    if args.clear:
        _clear(args.dag_id, logical, args.clear)
    run = dag.test(logical_date=logical, run_after=run_after, use_executor=args.use_executor)
    state = getattr(run, "state", None)
    print(f"STATE {state}")
    return 0 if str(state).endswith("success") else 1


def _reap(dag_id: str, logical: dt.datetime) -> None:
    """A killed worker's task is 'running' with nobody running it; the scheduler's heartbeat check
    fails it into up_for_retry (same run, try number kept, the retry increments it)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical))
        if run is None:
            return
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                             TaskInstance.run_id == run.run_id)):
            if ti.state in (TaskInstanceState.RUNNING, TaskInstanceState.RESTARTING, TaskInstanceState.QUEUED):
                ti.state = TaskInstanceState.UP_FOR_RETRY
                ti.end_date = dt.datetime.now(dt.UTC)


def _clear(dag_id: str, logical: dt.datetime, task_id: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical))
        if run is None:
            raise SystemExit(f"--clear {task_id}: no run of {dag_id} with logical date {logical}")
        tis = list(session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id, TaskInstance.task_id == task_id)))
        clear_task_instances(tis, session)


def _reuse_existing_runs() -> None:
    from airflow.models import dagrun as dagrun_module
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    create = dagrun_module.get_or_create_dagrun

    def get_or_reuse(*, dag, run_id, logical_date, session, **kwargs):
        existing = session.scalar(
            select(dagrun_module.DagRun).where(
                dagrun_module.DagRun.dag_id == dag.dag_id, dagrun_module.DagRun.run_id == run_id))
        if existing is None:
            return create(dag=dag, run_id=run_id, logical_date=logical_date, session=session, **kwargs)
        existing.state = DagRunState.RUNNING
        existing.dag = dag
        session.commit()
        return existing

    dagrun_module.get_or_create_dagrun = get_or_reuse


if __name__ == "__main__":
    sys.exit(main())

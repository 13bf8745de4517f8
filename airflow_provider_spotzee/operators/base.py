"""The one base behind every Spotzee sync operator: arguments and Airflow context over the sync engine.

Subclasses only choose the endpoint. The engine (:mod:`airflow_provider_spotzee.sync`, no Airflow imports)
maps, de-duplicates, diffs, sends, commits and counts; this module gives it what only a task knows:

- **input**: ``records`` (a list, or an XComArg resolved at run time, never rendered as a template), a SQL
  source (``table``/``sql`` + ``conn_id`` of any common.sql connection), or ``replay_from`` (a failure file);
- **window**: ``incremental="interval"`` reads the run's data interval; ``"cursor"`` reads everything after
  the high-water mark kept in the outlet Asset's state store, up to a bound captured once per run;
  ``"full"`` reads everything; ``"diff"`` reads everything and sends only rows that changed since Spotzee
  last confirmed them (a snapshot table, docs/diff-sync.md);
- **namespace**: (dag, task, data interval, map index), so every retry, clear or backfill of one interval
  reuses the same idempotency keys; **checkpoints** in ``task_state_store``;
- **report**: the summary as return value, the failure list (ids and codes, no PII) under XCom key
  ``failures``, the full list with payloads as JSON lines at the failure path; thresholds.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from airflow.providers.common.compat.sdk import Asset, AssetAlias, BaseOperator, XComArg, conf

# Keep checkpoints until their DAG run is deleted: a clear months later must not resend. (airflow.sdk
# re-exports it, but its type stub does not list it.)
from airflow.sdk.execution_time.context import NEVER_EXPIRE

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.batching import check_batch_size, namespace_for
from airflow_provider_spotzee.exceptions import SpotzeeConfigError, SpotzeeSyncFailed, SpotzeeSyncRejected
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.lineage import asset_alias_name, openlineage_facets, spotzee_asset_uri
from airflow_provider_spotzee.mapping import build_mapper, check_targets
from airflow_provider_spotzee.send import Endpoint
from airflow_provider_spotzee.sources import Partition, SqlSource, json_cursor, sql_hook
from airflow_provider_spotzee.sync.checkpoint import CHECKPOINT_KEY, Checkpointer, Resume
from airflow_provider_spotzee.sync.dedupe import Dedupe
from airflow_provider_spotzee.sync.diff import DEFAULT_SNAPSHOT_TABLE, Differ, SnapshotStore, run_tag
from airflow_provider_spotzee.sync.engine import Removal, SyncJob
from airflow_provider_spotzee.sync.failures import FailureSpill, failure_lines
from airflow_provider_spotzee.sync.failures import read_failure_payloads as _read_payloads
from airflow_provider_spotzee.sync.history import SyncHistory, check_prefix
from airflow_provider_spotzee.sync.progress import COUNT_FIELDS, Progress
from airflow_provider_spotzee.sync.summary import dominant_cause, summarise

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_KEY", "COUNT_FIELDS", "SpotzeeSyncOperator", "map_index", "partitions",
           "read_failure_payloads"]

UPPER_BOUND_KEY = "spotzee_upper_bound"
ASSET_CURSOR_KEY = "cursor"
DEFAULT_XCOM_FAILURES = 1000
#: Executors whose workers share one disk; with any other, a local failure file may be out of a retry's reach.
SINGLE_HOST_EXECUTORS = ("LocalExecutor", "SequentialExecutor", "DebugExecutor")

Incremental = Literal["interval", "cursor", "full", "diff"]
INCREMENTAL_MODES = ("interval", "cursor", "full", "diff")


def partitions(count: int) -> list[dict[str, int]]:
    """Arguments for ``.partial(...).expand(partition=partitions(8))``: N disjoint slices of one source.

    Each mapped task reads rows whose integer ``key_column`` modulo ``count`` equals its index, keeps
    its own checkpoint (``task_state_store`` is per map index). The partitions share the key's rate
    budget through the rate headers: each takes at least ``1/count`` of it while the others are busy,
    and more when fewer of them are running, so together they stay just under the ceiling.
    """
    if count < 1:
        raise SpotzeeConfigError("partitions(count) needs count >= 1")
    return [{"count": count, "index": index} for index in range(count)]


def map_index(context: Mapping[str, Any]) -> int:
    """The running task instance's map index (-1 when not mapped or outside a task)."""
    index = getattr(context.get("ti"), "map_index", -1)
    return -1 if index is None else index


def open_path(path: str) -> Any:
    """A local ``Path`` (a plain path or a ``file://`` URL: appended to as failures happen, so a killed try
    leaves them), or an ``ObjectStoragePath`` for any other URL (``s3://…``: written when the try ends)."""
    if path.startswith("file://"):
        return Path(path.removeprefix("file://"))
    if "://" in path:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(path)
    return Path(path)


def read_failure_payloads(path: str, stages: Sequence[str] = ("dead_lettered",)) -> list[dict[str, Any]]:
    """The payloads of a failure file's records in ``stages``, in file order, ready to send again.

    Sent again under the original namespace + ``/replay``: a replay retried within Spotzee's 24 h is
    replayed by key, and only records whose payload changed (e.g. fixed in the file) get fresh keys.
    """
    return _read_payloads(open_path(path), stages)


def _flag(value: Any) -> bool:
    """A templated boolean: ``True``/``False``, or the text Jinja renders (``"True"``, ``"false"``, ``"1"``)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no", ""):
            raise SpotzeeConfigError(f"expected a boolean, got {value!r}")
        return text in ("true", "1", "yes")
    return bool(value)


class SpotzeeSyncOperator(BaseOperator):
    """Base of the Spotzee sync operators (see the module docstring and docs/operators.md). Use a subclass."""

    # ``records`` is deliberately not a template field: it is data, never a template. An XComArg passed as
    # records is resolved in execute (and still sets the upstream dependency).
    template_fields: Sequence[str] = (
        "sql", "table", "conn_id", "spotzee_conn_id", "failures_path", "idempotency_namespace", "replay_from",
        "full_resync",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#ffd6a5"

    endpoint: ClassVar[Endpoint]

    def __init__(
        self,
        *,
        spotzee_conn_id: str = SpotzeeHook.default_conn_name,
        records: Iterable[Any] | None = None,
        replay_from: str | None = None,
        replay_stages: Sequence[str] = ("dead_lettered",),
        conn_id: str | None = None,
        table: str | None = None,
        sql: str | None = None,
        cursor_column: str = "updated_at",
        key_column: str = "id",
        incremental: Incremental = "interval",
        cursor_asset: Any = None,
        snapshot_conn_id: str | None = None,
        snapshot_table: str = DEFAULT_SNAPSHOT_TABLE,
        full_resync: bool | str = False,
        removed_payload: Callable[[Any], Any] | None = None,
        mapping: Mapping[str, str] | Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        dedupe_on: str | None = "external_id",
        batch_size: int = MAX_BATCH_SIZE,
        page_rows: int = 1000,
        partition: Mapping[str, int] | None = None,
        rate_share: float | None = None,
        max_failure_ratio: float | None = None,
        dry_run: bool = False,
        failures_path: str | None = None,
        max_failures_in_xcom: int = DEFAULT_XCOM_FAILURES,
        idempotency_namespace: str | None = None,
        checkpoint_every_seconds: float = 1.0,
        sent_ids_in_xcom: int = 0,
        sync_log_conn_id: str | None = None,
        sync_log_prefix: str = "spotzee_",
        emit_asset_events: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if sum(x is not None for x in (records, conn_id, replay_from)) != 1:
            raise SpotzeeConfigError(f"{name}: give exactly one input: records=, a SQL source "
                                     "(conn_id= with table= or sql=), or replay_from= (a failure file)")
        if conn_id is not None and (table is None) == (sql is None):
            raise SpotzeeConfigError(f"{name}: a SQL source needs exactly one of table= or sql=")
        if partition and conn_id is None:
            raise SpotzeeConfigError(f"{name}: partition= splits a SQL source; it cannot split records=")
        if incremental not in INCREMENTAL_MODES:
            raise SpotzeeConfigError(f"incremental must be one of {', '.join(map(repr, INCREMENTAL_MODES))}")
        if partition and incremental == "cursor":
            raise SpotzeeConfigError(f"{name}: incremental='cursor' keeps one high-water mark per "
                                     "asset; partitions would overwrite each other's: use incremental='interval'")
        if incremental == "diff" and conn_id is None:
            raise SpotzeeConfigError(f"{name}: incremental='diff' needs a SQL source (conn_id= with table= or sql=)")
        if removed_payload is not None and (incremental != "diff" or not callable(removed_payload)):
            raise SpotzeeConfigError(f"{name}: removed_payload= is a callable key -> payload, for incremental='diff'")
        if max_failure_ratio is not None and not 0 <= max_failure_ratio <= 1:
            raise SpotzeeConfigError("max_failure_ratio must be between 0 and 1")
        if isinstance(mapping, Mapping):
            check_targets(mapping, self.endpoint.model)
        build_mapper(mapping)  # a malformed mapping fails when the DAG is parsed, not when it runs
        if records is not None and isinstance(records, XComArg):
            XComArg.apply_upstream_relationship(self, records)
        self.spotzee_conn_id = spotzee_conn_id
        self.records = records
        self.replay_from = replay_from
        self.replay_stages = tuple(replay_stages)
        self.conn_id = conn_id
        self.table = table
        self.sql = sql
        self.cursor_column = cursor_column
        self.key_column = key_column
        self.incremental = incremental
        self.cursor_asset = cursor_asset
        self.snapshot_conn_id = snapshot_conn_id
        self.snapshot_table = snapshot_table
        self.full_resync = full_resync
        self.removed_payload = removed_payload
        self.mapping = mapping
        self.dedupe_on = dedupe_on
        self.batch_size = check_batch_size(batch_size)
        self.page_rows = page_rows
        self.partition = partition
        self.rate_share = rate_share
        self.max_failure_ratio = max_failure_ratio
        self.preview = dry_run  # not ``dry_run``: that name is BaseOperator.dry_run(), a method
        self.failures_path = failures_path
        self.max_failures_in_xcom = max_failures_in_xcom
        self.idempotency_namespace = idempotency_namespace
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.sent_ids_in_xcom = sent_ids_in_xcom
        self.sync_log_conn_id = sync_log_conn_id
        self.sync_log_prefix = check_prefix(sync_log_prefix)
        self.emit_asset_events = emit_asset_events
        if emit_asset_events:  # the host is in the connection: an alias now, the Asset itself at run time
            self.outlets = [*(self.outlets or []), AssetAlias(asset_alias_name(spotzee_conn_id, self.endpoint.name))]

    # ------------------------------------------------------------------------------------------ execute

    def execute(self, context: Any) -> dict[str, Any]:
        started_at = dt.datetime.now(dt.UTC)
        path = self._failures_path(context)  # the run's failures so far (earlier tries' included)
        try:
            summary, verdict = self._sync(context, path)
        except BaseException as exc:
            self._error = exc
            self._record_history(context, {"failures_path": path} if open_path(path).exists() else None,
                                 type(exc).__name__, started_at)
            raise
        state = "success" if verdict is None else type(verdict).__name__
        summary["history"] = self._record_history(context, summary, state, started_at)
        self.log.info("Spotzee %s summary: %s", self.endpoint.name, json.dumps(summary, sort_keys=True))
        self._summary = summary
        if verdict is not None:
            self._error = verdict
            raise verdict
        self._emit_asset_event(context, summary)
        return summary

    def _sync(self, context: Any, path: str) -> tuple[dict[str, Any], BaseException | None]:
        """One try, its failures filed at ``path``: the summary, and the exception that fails the task
        (``None``: it succeeds)."""
        started = time.monotonic()
        namespace = self._namespace(context)
        checkpoints = Checkpointer(context.get("task_state_store"), namespace, self.checkpoint_every_seconds,
                                   retention=NEVER_EXPIRE)
        resume = checkpoints.load()
        if resume:
            self.log.info("Resuming after checkpoint: %d records already final (%s)", resume.start_index,
                          resume.counts)
        target = open_path(path)
        with ExitStack() as stack:
            spill = stack.enter_context(FailureSpill(target, resume.start_index if resume else 0,
                                                     self.max_failures_in_xcom, local=isinstance(target, Path)))
            progress = Progress(resume.start_index if resume else 0, resume.counts if resume else {}, spill,
                                keep_ids=self.sent_ids_in_xcom)
            job, source, window, removal = self._job(context, namespace, checkpoints, progress, resume, stack)
            send = None if self.preview else self._send
            with _frozen_heap():
                result = job.run(send)
            if removal is not None and not result.dead_lettered:
                removal.run(endpoint=self.endpoint, namespace=namespace, batch_size=self.batch_size, send=send,
                            removed_payload=self.removed_payload)
            if self.incremental == "cursor" and send is not None and progress.cursor is not None \
                    and not result.dead_lettered:
                self._asset_state(context).set(ASSET_CURSOR_KEY, json_cursor(progress.cursor))
            failures, written = spill.finish()
        summary = summarise(progress, result, elapsed=time.monotonic() - started,
                            failures_path=path if written else None, namespace=namespace, dry_run=self.preview,
                            resumed_from=resume.start_index if resume else None,
                            diff=job.differ.counts.as_dict() if job.differ else None)
        self._push(context, failures, progress, removal)
        if summary["extracted"] == 0 and source is not None:
            self._say_empty(source, window)
        return summary, self._verdict(summary, spill, records=result.submitted)

    def _send(self, *args: Any, **kwargs: Any) -> Any:
        return self.hook.send(*args, **kwargs)

    def _job(self, context: Any, namespace: str, checkpoints: Checkpointer, progress: Progress,
             resume: Resume | None, stack: ExitStack) -> tuple[SyncJob, SqlSource | None, dict[str, Any] | None,
                                                              Removal | None]:
        """The engine's job for this try, the SQL source and window it reads (if any), and the removal
        step of a diff sync."""
        mapper = build_mapper(None if self.replay_from else self.mapping)  # a failure file holds payloads
        after = resume.after if resume else None
        job = SyncJob(self.endpoint, namespace, (), mapper, progress, checkpoints, batch_size=self.batch_size)
        if self.conn_id is None:
            records = self._in_memory_records(context)
            job.rows = _rows_of(records, progress.start_index)
            if self.dedupe_on:
                job.dedupe = Dedupe.for_records(records, mapper, self.dedupe_on)
            return job, None, None, None
        source = SqlSource(self.conn_id, table=self.table, sql=self.sql, page_rows=self.page_rows,
                           cursor_column=None if self.incremental == "diff" else self.cursor_column,
                           key_column=self.key_column)
        window = self._window(context, source, after)
        if window is None:
            return job, source, None, None
        source.columns()
        source.check_keys(**{k: v for k, v in window.items() if k != "after"})
        job.rows = source.rows(**window)
        job.dedupe = self._sql_dedupe(source, window)
        if self.incremental != "diff":
            return job, source, window, None
        job.differ = self._differ(context, namespace, resume, stack)
        stack.enter_context(source.session())  # the removal pass asks the source many small questions
        partition = window.get("partition")
        removal = Removal(job.differ, lambda keys: source.existing_keys(keys, partition), self.max_failures_in_xcom)
        return job, source, window, removal

    # ------------------------------------------------------------------------------------------ inputs

    def _in_memory_records(self, context: Any) -> Sequence[Any]:
        if self.replay_from is not None:
            replayed = read_failure_payloads(self.replay_from, self.replay_stages)
            self.log.info("Replaying %d records from %s", len(replayed), self.replay_from)
            return replayed
        records = self.records.resolve(context) if isinstance(self.records, XComArg) else self.records
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise SpotzeeConfigError(f"records must be a list of mappings, got {type(records).__name__}")
        # in memory by definition (a list, an XCom); a one-shot iterable is read once here, because
        # de-duplication and resuming by position both need a second look
        return records if isinstance(records, Sequence) else list(records)

    def _window(self, context: Mapping[str, Any], source: SqlSource, after: Any) -> dict[str, Any] | None:
        """The SQL rows to read: ``SqlSource.rows`` keyword arguments, or ``None`` when there are none."""
        window: dict[str, Any] = {"partition": self._partition(), "after": after}
        if self.incremental == "interval":
            start, end = context.get("data_interval_start"), context.get("data_interval_end")
            if start is not None and start == end:
                raise SpotzeeConfigError(
                    "incremental='interval' but this run's data interval is empty (start == end): give the DAG "
                    "a timetable with data intervals (e.g. CronDataIntervalTimetable) or use incremental='cursor'")
            window["start"], window["end"] = start, end
        elif self.incremental == "cursor":
            if after is None:
                mark = self._asset_state(context).get(ASSET_CURSOR_KEY)
                window["after"] = tuple(mark) if mark else None
            store = context.get("task_state_store")
            bound = store.get(UPPER_BOUND_KEY) if store is not None else None
            if bound is None:
                captured = source.max_cursor()
                bound = json_cursor(captured) if captured else []
                if store is not None:
                    store.set(UPPER_BOUND_KEY, bound, retention=NEVER_EXPIRE)
            if not bound:
                return None
            window["upto"] = tuple(bound)
        return window

    def _sql_dedupe(self, source: SqlSource, window: dict[str, Any]) -> Dedupe | None:
        """Which rows a later row of the same contact supersedes (only the latest state is sent)."""
        if not self.dedupe_on or not isinstance(self.mapping, Mapping):
            return None  # a callable mapping: the column is unknown, every row is sent
        column = next((col for col, target in self.mapping.items() if target == self.dedupe_on), None)
        if column is None:
            return None
        return Dedupe(column=column, remaining=source.duplicate_counts(column, **window))

    def _differ(self, context: Mapping[str, Any], namespace: str, resume: Resume | None, stack: ExitStack) -> Differ:
        hook = sql_hook(self.snapshot_conn_id or self.conn_id or "", "snapshot")
        conn = hook.get_conn()
        stack.callback(conn.close)
        store = SnapshotStore(conn, hook.placeholder, _ident_table(self.snapshot_table), self._sync_id(context),
                              run_tag(namespace))
        differ = Differ(store, self.endpoint, full_resync=_flag(self.full_resync), write=not self.preview,
                        resumed=resume is not None)
        differ.start()
        return differ

    # ------------------------------------------------------------------------------------------ context

    @cached_property
    def hook(self) -> SpotzeeHook:
        fair = 1 / int(self.partition["count"]) if self.partition else None
        return SpotzeeHook(self.spotzee_conn_id, rate_share=self.rate_share, fair_share=fair)

    def _partition(self) -> Partition | None:
        if not self.partition:
            return None
        return Partition(int(self.partition["count"]), int(self.partition["index"]))

    def _namespace(self, context: Mapping[str, Any]) -> str:
        if self.idempotency_namespace:
            return self.idempotency_namespace
        part = self._partition()
        base = namespace_for(self.dag_id, self.task_id, context.get("data_interval_start"),
                             context.get("data_interval_end"), map_index(context),
                             run_id=context.get("run_id"))
        base = f"{base}/p{part.index}of{part.count}" if part else base
        return f"{base}/replay" if self.replay_from else base

    def _sync_id(self, context: Mapping[str, Any]) -> str:
        """Whose rows a snapshot row is: the DAG, the task and the partition (or map index)."""
        part, index = self._partition(), map_index(context)
        suffix = f"/p{part.index}of{part.count}" if part else (f"/{index}" if index >= 0 else "")
        return f"{self.dag_id}/{self.task_id}{suffix}"

    def _cursor_asset(self) -> Any:
        if self.cursor_asset is not None:
            return self.cursor_asset
        from airflow.providers.common.compat.sdk import Asset

        assets = [a for a in (self.outlets or []) if isinstance(a, Asset)]
        if len(assets) != 1:
            raise SpotzeeConfigError(
                "incremental='cursor' keeps its high-water mark on an Asset: put exactly one Asset in outlets= "
                "or pass cursor_asset=")
        return assets[0]

    def _asset_state(self, context: Mapping[str, Any]) -> Any:
        stores = context.get("asset_state_store")
        if stores is None:
            raise SpotzeeConfigError("incremental='cursor' needs Airflow's asset state store (Airflow >= 3.3)")
        return stores[self._cursor_asset()]

    def _failures_path(self, context: Mapping[str, Any]) -> str:
        """``failures_path``, else ``<[spotzee] failures_base>/<dag>/<run>/<task>[.<map index>].jsonl``, else
        the same under ``$AIRFLOW_HOME/spotzee_failures`` (a warning when workers may not share that disk)."""
        if self.failures_path:
            return self.failures_path
        index = map_index(context)
        name = f"{self.task_id}{'' if index == -1 else f'.{index}'}.jsonl"
        run_id = str(context.get("run_id") or "adhoc").replace("/", "_").replace(":", "_")
        base = conf.get("spotzee", "failures_base", fallback=None)
        if base:
            return f"{base.rstrip('/')}/{self.dag_id}/{run_id}/{name}"
        executor = str(conf.get("core", "executor", fallback="") or "")
        if executor and not any(kind in executor for kind in SINGLE_HOST_EXECUTORS):
            self.log.warning(
                "The failure file goes to this worker's local disk, but the %s may run a retry on another "
                "worker, which cannot see it. Set [spotzee] failures_base (AIRFLOW__SPOTZEE__FAILURES_BASE) to a "
                "place every worker reaches, e.g. s3://bucket/spotzee-failures or a shared file:// path.", executor)
        home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        return str(Path(home) / "spotzee_failures" / self.dag_id / run_id / name)

    # ------------------------------------------------------------------------------------------ report

    def _push(self, context: Mapping[str, Any], failures: list[dict[str, Any]], progress: Progress,
              removal: Removal | None) -> None:
        ti = context.get("ti")
        if ti is None:
            return
        ti.xcom_push(key="failures", value=failures)
        if self.sent_ids_in_xcom:
            ti.xcom_push(key="sent_external_ids", value=progress.sent_ids())
        if removal is not None:
            ti.xcom_push(key="removed", value=removal.listed)

    def _say_empty(self, source: SqlSource, window: dict[str, Any] | None) -> None:
        """A run that read nothing says what it read, and whether the source holds rows elsewhere."""
        if window is None:
            self.log.warning("Read 0 rows: %s has no rows yet (incremental=%r)", source.describe(), self.incremental)
            return
        shown = {k: str(v) for k, v in window.items() if v is not None and k != "after"}
        outside = source.count(partition=window.get("partition"))
        if outside:
            self.log.warning(
                "Read 0 rows from %s in the window %s, but it holds %d rows outside it. Is this the run you "
                "meant? A scheduled run reads its data interval (airflow dags test <dag> <logical date> reads "
                "the interval that logical date starts)", source.describe(), shown, outside)
        else:
            self.log.warning("Read 0 rows: %s is empty (window %s)", source.describe(), shown)

    def _verdict(self, summary: dict[str, Any], spill: FailureSpill, *, records: int) -> BaseException | None:
        """The exception that fails the task, if any. Dead letters fail it so that a retry sends them; what a
        retry cannot change fails without one. ``records``: this try's records."""
        if self.preview:
            return None
        if summary["dead_lettered"]:
            return SpotzeeSyncFailed(
                f"{summary['dead_lettered']} records were dead-lettered (Spotzee kept failing); they are in "
                f"{summary['failures_path']}. A retry of this task resends them (committed batches are skipped).")
        cause = dominant_cause(spill, records)
        if cause is not None:
            (stage, code, message), count = cause
            return SpotzeeSyncRejected(
                f"{count} of the records failed for one cause ({stage}, {code}: {message}); this looks like a "
                f"mistake in the DAG (the mapping, the source or the connection), not bad data. See XCom "
                f"'failures' and {summary['failures_path']}")
        if self.max_failure_ratio is None:
            return None
        failed = summary["invalid"] + summary["rejected"]
        ratio = failed / summary["extracted"] if summary["extracted"] else 0.0
        if ratio > self.max_failure_ratio:
            return SpotzeeSyncRejected(
                f"{failed} of {summary['extracted']} records failed ({ratio:.1%} > max_failure_ratio "
                f"{self.max_failure_ratio:.1%}); see XCom 'failures' and {summary['failures_path']}. Not retried: "
                "a retry would send the same records with the same result.")
        return None

    # --------------------------------------------------------------------------- history, assets, lineage

    def _record_history(self, context: Mapping[str, Any], summary: Mapping[str, Any] | None, state: str,
                        started_at: dt.datetime) -> str | None:
        """Write this try to the sync history tables (``sync_log_conn_id``). Never fails the sync: a
        failing write logs one warning and the summary says so. Returns what the summary records."""
        if not self.sync_log_conn_id:
            return None
        ti = context.get("ti")
        interval = (context.get("data_interval_start"), context.get("data_interval_end"))
        counts = summary or {}
        run = {
            "dag_id": self.dag_id, "task_id": self.task_id, "run_id": str(context.get("run_id") or "adhoc"),
            "map_index": map_index(context), "try_number": int(getattr(ti, "try_number", 1) or 1),
            "endpoint": self.endpoint.name,
            "data_interval_start": interval[0].isoformat() if interval[0] is not None else None,
            "data_interval_end": interval[1].isoformat() if interval[1] is not None else None,
            "started_at": started_at.isoformat(), "ended_at": dt.datetime.now(dt.UTC).isoformat(),
            **{name: int(counts.get(name) or 0) for name in (*COUNT_FIELDS, "requests", "retries", "throttled")},
            "removed": counts.get("removed"), "items_per_second": float(counts.get("items_per_second") or 0.0),
            "state": state, "failures_path": counts.get("failures_path"),
        }
        try:
            hook = sql_hook(self.sync_log_conn_id, "sync history")
            conn = hook.get_conn()
            try:
                history = SyncHistory(conn, hook.placeholder, self.sync_log_prefix)
                history.ensure()
                history.record(run, _failure_lines(counts.get("failures_path")))
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - the history is a report: it never fails or repeats the sync
            self.log.warning("The sync history was not written to %r (%s: %s); the sync itself is unaffected",
                             self.sync_log_conn_id, type(exc).__name__, exc)
            return f"not written: {type(exc).__name__}"
        return "written"

    def _emit_asset_event(self, context: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
        """An event on ``spotzee://<host>/<object>`` (through the alias declared at parse time), with the
        counts as ``extra``, so DAGs scheduled on that Asset run after each successful sync."""
        events = context.get("outlet_events")
        if not self.emit_asset_events or self.preview or events is None:
            return
        uri = spotzee_asset_uri(self.hook.config.base_url, self.endpoint.name)
        extra = {name: summary[name] for name in (*COUNT_FIELDS, "requests", "throttled") if name in summary}
        if "removed" in summary:
            extra["removed"] = summary["removed"]
        events[AssetAlias(asset_alias_name(self.spotzee_conn_id, self.endpoint.name))].add(Asset(uri), extra=extra)

    def _lineage(self, error: BaseException | None) -> Any:
        try:
            base_url = self.hook.config.base_url
        except Exception:  # noqa: BLE001 - lineage is a report: a connection that cannot be read gives no output
            base_url = None
        return openlineage_facets(source_conn_id=self.conn_id, table=self.table, sql=self.sql, mapping=self.mapping,
                                  endpoint_name=self.endpoint.name, base_url=base_url,
                                  summary=getattr(self, "_summary", None), error=error)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (when ``apache-airflow-providers-openlineage`` is installed): the SQL source in, the
        Spotzee object out, rows sent, and which source column feeds which Spotzee field."""
        return self._lineage(None)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._lineage(getattr(self, "_error", None))


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Move what the task process holds before the send (Airflow, the DAG, the provider) out of the garbage
    collector's reach for the send, so a full collection during it scans only the send's own objects
    (measured: a 300-575 ms pause of the event loop becomes 12-21 ms). The task process is the operator's;
    the heap is unfrozen afterwards, and one someone else froze is left alone."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _failure_lines(path: str | None) -> Iterator[dict[str, Any]]:
    """Every failure of the run so far (the failure file holds each failed record once), without payloads."""
    return failure_lines(open_path(path)) if path else iter(())


def _ident_table(name: str) -> str:
    from airflow_provider_spotzee.sources import _ident

    return _ident(name, "snapshot_table")


def _rows_of(records: Sequence[Any], start: int) -> Iterator[tuple[int, Any]]:
    for position in range(start, len(records)):
        yield position, records[position]

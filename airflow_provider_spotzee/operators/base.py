"""The one base behind every Spotzee sync operator: extract → map → send, checkpointed.

Subclasses only choose the endpoint. Everything else lives here:

- **extract**: ``records`` (a list or an XComArg) or a SQL source (``table``/``sql`` + ``conn_id`` of any
  common.sql connection), streamed with a tie-safe keyset cursor;
- **window**: ``incremental="interval"`` reads the run's data interval; ``"cursor"`` reads everything after
  the high-water mark kept in the outlet Asset's state store, up to a bound captured once per run;
  ``"full"`` reads everything;
- **map**: a ``{column: field}`` dict (dotted ``data.<key>`` targets) or a callable;
- **send**: :meth:`SpotzeeHook.send` with a namespace of (dag, task, data interval, map index), so every
  retry, clear or backfill of one interval reuses the same idempotency keys;
- **checkpoint**: after each committed batch the last committed cursor goes to ``task_state_store``; a
  retry (or a killed worker's retry, or a clear days later) resumes after it and never re-sends what
  was committed, even past Spotzee's 24 h key memory;
- **report**: the summary as return value, the failure list (ids and codes, no PII) under XCom key
  ``failures``, the full list with payloads as JSON lines at ``failures_path``.
"""

from __future__ import annotations

import bisect
import heapq
import json
import logging
import os
import shutil
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_spotzee.batching import MAX_BATCH_SIZE, check_batch_size, namespace_for
from airflow_provider_spotzee.exceptions import SpotzeeConfigError, SpotzeeSyncFailed
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.mapping import Mapper, build_mapper, check_columns
from airflow_provider_spotzee.models import ItemFailure, SendResult
from airflow_provider_spotzee.send import Endpoint, Invalid, Unchanged, validated
from airflow_provider_spotzee.sources import Partition, SqlSource, json_cursor_value
from airflow_provider_spotzee.validation import PARAMETER_INVALID_FORMAT

try:  # keep checkpoints until their DAG run is deleted: a clear months later must not resend
    from airflow.sdk import NEVER_EXPIRE
except ImportError:  # pragma: no cover - Airflow < 3.3 has no state store anyway
    NEVER_EXPIRE = None

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "spotzee_checkpoint"
UPPER_BOUND_KEY = "spotzee_upper_bound"
ASSET_CURSOR_KEY = "cursor"
DEFAULT_XCOM_FAILURES = 1000
COUNT_FIELDS = ("extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")

Incremental = Literal["interval", "cursor", "full"]


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


class SpotzeeSyncOperator(BaseOperator):
    """Base of the Spotzee sync operators (see the module docstring). Use a subclass."""

    template_fields: Sequence[str] = (
        "records", "sql", "table", "conn_id", "spotzee_conn_id", "failures_path", "idempotency_namespace",
        "replay_from",
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if sum(x is not None for x in (records, conn_id, replay_from)) != 1:
            raise SpotzeeConfigError(f"{type(self).__name__}: give exactly one input: records=, a SQL source "
                                     "(conn_id= with table= or sql=), or replay_from= (a failure file)")
        if conn_id is not None and (table is None) == (sql is None):
            raise SpotzeeConfigError(f"{type(self).__name__}: a SQL source needs exactly one of table= or sql=")
        if partition and conn_id is None:
            raise SpotzeeConfigError(f"{type(self).__name__}: partition= splits a SQL source; it cannot split records=")
        if partition and incremental == "cursor":
            raise SpotzeeConfigError(f"{type(self).__name__}: incremental='cursor' keeps one high-water mark per "
                                     "asset; partitions would overwrite each other's: use incremental='interval'")
        if incremental not in ("interval", "cursor", "full"):
            raise SpotzeeConfigError("incremental must be 'interval', 'cursor' or 'full'")
        if max_failure_ratio is not None and not 0 <= max_failure_ratio <= 1:
            raise SpotzeeConfigError("max_failure_ratio must be between 0 and 1")
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
        self.mapping = mapping
        self.dedupe_on = dedupe_on
        self.batch_size = check_batch_size(batch_size)
        self.page_rows = page_rows
        self.partition = partition
        self.rate_share = rate_share
        self.max_failure_ratio = max_failure_ratio
        self.dry_run = dry_run
        self.failures_path = failures_path
        self.max_failures_in_xcom = max_failures_in_xcom
        self.idempotency_namespace = idempotency_namespace
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.sent_ids_in_xcom = sent_ids_in_xcom

    # --------------------------------------------------------------------------------------- pieces

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

    # ---------------------------------------------------------------------------------- extraction

    def _source(self) -> SqlSource:
        return SqlSource(self.conn_id, table=self.table, sql=self.sql, cursor_column=self.cursor_column,  # type: ignore[arg-type]
                         key_column=self.key_column, page_rows=self.page_rows)

    def _window(self, context: Mapping[str, Any], after: Any, store: Any) -> dict[str, Any] | None:
        """The SQL rows to read: ``SqlSource.rows`` keyword arguments, or ``None`` when there are none."""
        window: dict[str, Any] = {"start": None, "end": None, "upto": None, "partition": self._partition(),
                                  "after": tuple(after) if after is not None else None}
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
            bound = store.get(UPPER_BOUND_KEY) if store is not None else None
            if bound is None:
                captured = self._source().max_cursor()
                bound = [json_cursor_value(v) for v in captured] if captured else []
                if store is not None:
                    store.set(UPPER_BOUND_KEY, bound, retention=NEVER_EXPIRE)
            if not bound:
                return None
            window["upto"] = tuple(bound)
        return window

    def _rows(self, window: dict[str, Any] | None, after: Any) -> Iterator[tuple[Any, Mapping[str, Any]]]:
        """``(cursor, row)`` pairs to send. ``after`` is the checkpoint cursor (or ``None``)."""
        if self.records is not None or self.replay_from is not None:
            records = self.records if self.records is not None else self._replayed
            if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
                raise SpotzeeConfigError(f"records must be a list of mappings, got {type(records).__name__}")
            skip = -1 if after is None else int(after)
            for position, row in enumerate(records):
                if position > skip:
                    yield position, row
        elif window is not None:
            yield from self._source().rows(**window)

    def _dedupe(self, window: dict[str, Any] | None) -> _Dedupe | None:
        """Which records a later record for the same contact supersedes (only the latest state is sent)."""
        if not self.dedupe_on:
            return None
        if self.records is not None or self.replay_from is not None:
            records = self.records if self.records is not None else self._replayed
            return _Dedupe.for_records(records, build_mapper(None if self.replay_from else self.mapping),
                                       self.dedupe_on)
        column = next((col for col, target in (self.mapping or {}).items() if target == self.dedupe_on), None) \
            if isinstance(self.mapping, Mapping) else None
        if column is None or window is None:
            return None  # a callable mapping: the column is unknown, every row is sent
        return _Dedupe(column=column, remaining=self._source().duplicate_counts(column, **window))

    def _asset_state(self, context: Mapping[str, Any]) -> Any:
        stores = context.get("asset_state_store")
        if stores is None:
            raise SpotzeeConfigError("incremental='cursor' needs Airflow's asset state store (Airflow >= 3.3)")
        return stores[self._cursor_asset()]

    # -------------------------------------------------------------------------------------- execute

    def execute(self, context: Any) -> dict[str, Any]:
        started = time.monotonic()
        store = context.get("task_state_store")
        namespace = self._namespace(context)
        checkpoint = _load_checkpoint(store, namespace)
        mapper = build_mapper(None if self.replay_from else self.mapping)  # a failure file holds payloads
        start_index = checkpoint["index"] + 1 if checkpoint else 0
        prior = checkpoint["counts"] if checkpoint else dict.fromkeys(COUNT_FIELDS, 0)
        if checkpoint:
            self.log.info("Resuming after checkpoint: %d records already final (%s)", start_index, prior)

        after = checkpoint["cursor"] if checkpoint else None
        if self.records is not None and not isinstance(self.records, Sequence):
            # records are in memory by definition (a list, an XCom); a one-shot iterable is read once here
            # because de-duplication and resuming by position both need a second look
            self.records = list(self.records)
        if self.replay_from is not None:
            self._replayed = read_failure_payloads(self.replay_from, self.replay_stages)
            self.log.info("Replaying %d records from %s", len(self._replayed), self.replay_from)
        window = self._window(context, after, store) if self.conn_id is not None else None
        rows = self._rows(window, after)
        dedupe = self._dedupe(window)
        cursors: dict[int, Any] = {}
        unchanged: list[int] = []  # indexes, ascending
        identities: list[tuple[int, Any]] = []  # (index, external_id), at most sent_ids_in_xcom
        payloads = self._payloads(rows, mapper, cursors, start_index, unchanged, identities, dedupe)
        path = self._failures_path(context)

        with _FailureSpill(path, start_index, self.max_failures_in_xcom) as spill:
            if self.dry_run:
                result = _dry_run(self.endpoint, payloads, start_index, spill.add)
            else:
                checkpoints = _Checkpointer(store, namespace, prior, start_index, cursors, unchanged, spill,
                                            self.checkpoint_every_seconds)
                result = self.hook.send(self.endpoint, payloads, idempotency_namespace=namespace,
                                        batch_size=self.batch_size, on_commit=checkpoints.commit,
                                        start_index=start_index, on_failure=spill.add)
                checkpoints.flush()
                if self.incremental == "cursor" and self.conn_id is not None and checkpoints.cursor is not None \
                        and not result.dead_lettered:
                    self._asset_state(context).set(ASSET_CURSOR_KEY, _json_cursor(checkpoints.cursor))
            failures, written = spill.finish()
        summary = _summary(prior, result, started, path if written else None, namespace, self.dry_run,
                           resumed_from=start_index if checkpoint else None)
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key="failures", value=failures)
            if self.sent_ids_in_xcom:
                failed = spill.failed_indexes(upto=identities[-1][0] if identities else -1)
                sent = [str(ident) for index, ident in identities if index not in failed and ident is not None]
                ti.xcom_push(key="sent_external_ids", value=sent)
        self.log.info("Spotzee %s summary: %s", self.endpoint.name, json.dumps(summary, sort_keys=True))
        self._enforce_thresholds(summary)
        return summary

    def _payloads(self, rows: Iterable[tuple[Any, Mapping[str, Any]]], mapper: Mapper, cursors: dict[int, Any],
                  start_index: int, unchanged: list[int], identities: list[tuple[int, Any]],
                  dedupe: _Dedupe | None) -> Iterator[Any]:
        """Map rows to payloads, remembering each record's cursor until its batch commits (and, up to
        ``sent_ids_in_xcom``, its external_id)."""
        checked = False
        for index, (cursor, row) in enumerate(rows, start=start_index):
            cursors[index] = cursor
            if not checked and isinstance(row, Mapping):
                check_columns(mapper, row.keys())
                checked = True
            if dedupe is not None and dedupe.superseded(index, row):
                unchanged.append(index)
                yield Unchanged()
                continue
            try:
                payload = mapper(row) if isinstance(row, Mapping) else row
            except Exception as exc:  # noqa: BLE001 - a user mapping callable failed on this row: report it, go on
                yield Invalid(PARAMETER_INVALID_FORMAT, f"mapping failed on this row: {type(exc).__name__}")
                continue
            if len(identities) < self.sent_ids_in_xcom:
                identities.append((index, payload.get("external_id") if isinstance(payload, Mapping)
                                   else getattr(payload, "external_id", None)))
            yield payload

    def _failures_path(self, context: Mapping[str, Any]) -> str:
        if self.failures_path:
            return self.failures_path
        index = map_index(context)
        home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        name = f"{self.task_id}{'' if index == -1 else f'.{index}'}.jsonl"
        run_id = str(context.get("run_id") or "adhoc").replace("/", "_").replace(":", "_")
        return str(Path(home) / "spotzee_failures" / self.dag_id / run_id / name)

    def _enforce_thresholds(self, summary: dict[str, Any]) -> None:
        if self.dry_run:
            return
        if summary["dead_lettered"]:  # given up on: always a failed task, so that a retry sends them
            raise SpotzeeSyncFailed(
                f"{summary['dead_lettered']} records were dead-lettered (Spotzee kept failing); they are in "
                f"{summary['failures_path']}. A retry of this task resends them (committed batches are skipped).")
        if self.max_failure_ratio is None:
            return
        failed = summary["invalid"] + summary["rejected"] + summary["dead_lettered"]
        ratio = failed / summary["extracted"] if summary["extracted"] else 0.0
        if ratio > self.max_failure_ratio:
            raise SpotzeeSyncFailed(
                f"{failed} of {summary['extracted']} records failed ({ratio:.1%} > max_failure_ratio "
                f"{self.max_failure_ratio:.1%}); see XCom 'failures' and {summary['failures_path']}")


# ------------------------------------------------------------------------------------------- helpers


def map_index(context: Mapping[str, Any]) -> int:
    """The running task instance's map index (-1 when not mapped or outside a task)."""
    index = getattr(context.get("ti"), "map_index", -1)
    return -1 if index is None else index


def _json_cursor(cursor: Any) -> Any:
    if isinstance(cursor, tuple):
        return [json_cursor_value(v) for v in cursor]
    return json_cursor_value(cursor)


def _load_checkpoint(store: Any, namespace: str) -> dict[str, Any] | None:
    if store is None:
        return None
    checkpoint = store.get(CHECKPOINT_KEY)
    if not isinstance(checkpoint, dict) or checkpoint.get("namespace") != namespace:
        return None
    return checkpoint


class _Dedupe:
    """Duplicates within one run: every record of a contact but its last is ``unchanged`` (not sent).

    In-memory records: the superseded positions are known up front. SQL sources: the values that occur
    more than once in the window are counted by one query; rows come in cursor order, so the last one
    of a value is its latest state. A resumed run counts only the rows after its checkpoint.
    """

    def __init__(self, *, positions: set[int] | None = None, column: str | None = None,
                 remaining: dict[Any, int] | None = None) -> None:
        self.positions, self.column, self.remaining = positions, column, remaining

    @classmethod
    def for_records(cls, records: Iterable[Any], mapper: Mapper, key: str) -> _Dedupe:
        last: dict[Any, int] = {}
        positions: set[int] = set()
        for position, row in enumerate(records):
            try:
                ident = mapper(row).get(key) if isinstance(row, Mapping) else getattr(row, key, None)
            except Exception:  # noqa: BLE001 - the same row is reported invalid by _payloads
                ident = None
            if _blank(ident):  # no identity: reported invalid, never "superseded"
                continue
            if ident in last:
                positions.add(last[ident])
            last[ident] = position
        return cls(positions=positions)

    def superseded(self, index: int, row: Any) -> bool:
        if self.positions is not None:
            return index in self.positions
        if not self.remaining or not isinstance(row, Mapping):
            return False
        value = row.get(self.column)  # type: ignore[arg-type]
        if _blank(value) or value not in self.remaining:
            return False
        self.remaining[value] -= 1
        return self.remaining[value] > 0


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Checkpointer:
    """Writes ``{namespace, index, cursor, counts}`` to the task state store at commit points.

    Writes are throttled (each one is a round trip to the API server); :meth:`flush` writes the last
    commit point. A kill loses at most ``every`` seconds of checkpoints, and what is re-sent then is
    replayed by Spotzee from the same idempotency keys (within its 24 h memory).
    """

    def __init__(self, store: Any, namespace: str, prior: Mapping[str, int], start_index: int,
                 cursors: dict[int, Any], unchanged: list[int], spill: _FailureSpill, every: float) -> None:
        self.store, self.namespace, self.prior, self.start_index = store, namespace, prior, start_index
        self.cursors, self.unchanged, self.spill, self.every = cursors, unchanged, spill, every
        self.cursor: Any = None
        self._pending: tuple[int, Any] | None = None
        self._written = 0.0

    def commit(self, index: int, live: SendResult) -> None:
        cursor = self.cursors.get(index, self.cursor)
        for done in [i for i in self.cursors if i <= index]:
            del self.cursors[done]
        if cursor is None:
            return
        self.cursor = cursor
        self._pending = (index, cursor)
        if time.monotonic() - self._written >= self.every:
            self.flush()

    def flush(self) -> None:
        """Write the last commit point; the counts are computed here, once per write, not per batch."""
        if self._pending is not None and self.store is not None:
            started = time.monotonic()
            index, cursor = self._pending
            self.store.set(CHECKPOINT_KEY, {
                "namespace": self.namespace, "index": index, "cursor": _json_cursor(cursor),
                "counts": _counts_upto(self.prior, self.spill, index, self.start_index, self.unchanged),
            }, retention=NEVER_EXPIRE)
            self._written = time.monotonic()
            log.debug("checkpoint: records up to index %d are final (%.1f ms)", index,
                      (self._written - started) * 1000)
        self._pending = None


def _counts_upto(prior: Mapping[str, int], spill: _FailureSpill, index: int, start_index: int,
                 unchanged_indexes: list[int]) -> dict[str, int]:
    """Cumulative bucket counts for every record with index ≤ ``index`` (all final at a commit point)."""
    counts = {name: int(prior.get(name, 0)) for name in COUNT_FIELDS}
    stages = {stage: sum(1 for i in indexes if i <= index) for stage, indexes in spill.indexes.items()}
    records = index - start_index + 1
    unchanged = bisect.bisect_right(unchanged_indexes, index)
    counts["extracted"] += records
    for stage, n in stages.items():
        counts[stage] += n
    counts["unchanged"] += unchanged
    counts["sent_ok"] += records - unchanged - sum(stages.values())
    return counts


def _dry_run(endpoint: Endpoint, payloads: Iterable[Any], start_index: int,
             on_failure: Callable[[ItemFailure, Any], None]) -> SendResult:
    """Validate, map and count what would be sent; send nothing. ``succeeded`` means "would be sent"."""
    result = SendResult.start(endpoint.name, on_failure)
    result.succeeded = sum(1 for _ in validated(endpoint, payloads, result, start_index=start_index))
    return result


class _FailureSpill:
    """This try's failures, written to the failure file as they happen (with their payloads) instead of
    kept in memory: per failure only its index stays (8 bytes, for the checkpoint counts), plus the first
    ``keep`` by index for XCom. Memory does not grow with the number of bad rows, and a try that is
    killed leaves its failures on disk for the try that resumes it.

    On entry the file is cut down to the lines of earlier tries with an index before ``start_index``
    (committed: the checkpoint counts them); later ones are replaced by this try's outcome, so every
    record appears once: the earlier lines first, then this try's in the order they failed. A remote
    path (``s3://…``) cannot be appended to, so there the lines wait in a local temporary file and the
    failure file is written by :meth:`finish`.
    """

    STAGES = ("invalid", "rejected", "dead_lettered")

    def __init__(self, path: str, start_index: int, keep: int) -> None:
        self.target, self.start_index, self.keep = _open_path(path), start_index, keep
        self.indexes: dict[str, array[int]] = {stage: array("q") for stage in self.STAGES}
        self._fresh: list[tuple[int, int, dict[str, Any]]] = []  # max-heap (-index) of this try's first `keep`
        self._earlier: list[dict[str, Any]] = []  # the first `keep` committed lines of earlier tries
        self._kept = 0
        self._local = "://" not in path  # as _open_path decides
        # (closed by finish or __exit__)
        self._out: Any = None if self._local else tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._earlier_file: Any = None
        if self.target.exists():
            self._cut_to_committed()

    def _cut_to_committed(self) -> None:
        earlier = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed below or by __exit__
        if self.start_index:  # a try from the start keeps nothing: the file is not even read
            for line, entry in self._committed_lines():
                earlier.write(line if line.endswith("\n") else line + "\n")
                self._kept += 1
                if len(self._earlier) < self.keep:
                    self._earlier.append({k: v for k, v in entry.items() if k != "payload"})
        if not self._local:
            self._earlier_file = earlier
            return
        with earlier, self.target.open("w") as out:
            earlier.seek(0)
            shutil.copyfileobj(earlier, out)

    def _committed_lines(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The earlier tries' lines (and what they hold) for records before ``start_index``."""
        with self.target.open("r") as handle:
            for line in handle:
                try:
                    entry = json.loads(line) if line.strip() else None
                except ValueError:  # the torn last line of a killed try: not committed, sent again
                    continue
                if entry is not None and entry.get("index", -1) < self.start_index:
                    yield line, entry

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in (self._out, self._earlier_file):
            if handle is not None:
                handle.close()

    @property
    def total(self) -> int:
        return sum(len(indexes) for indexes in self.indexes.values())

    def add(self, failure: ItemFailure, payload: Any) -> None:
        entry = failure.model_dump()
        self.indexes[failure.stage].append(failure.index)
        if self.keep > 0:
            item = (-failure.index, self.total, entry)
            if len(self._fresh) < self.keep:
                heapq.heappush(self._fresh, item)
            elif -self._fresh[0][0] > failure.index:
                heapq.heapreplace(self._fresh, item)
        if self._out is None:  # the first failure of a local file: append, a line at a time
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.target.open("a", encoding="utf-8", buffering=1)
        self._out.write(json.dumps(dict(entry, payload=payload), default=repr, ensure_ascii=False) + "\n")

    def failed_indexes(self, upto: int) -> set[int]:
        return {i for indexes in self.indexes.values() for i in indexes if i <= upto}

    def finish(self) -> tuple[list[dict[str, Any]], bool]:
        """Complete the failure file; return (the first ``keep`` failures without payloads, whether the
        file holds any failure)."""
        first = self._earlier + [entry for _, _, entry in sorted(self._fresh, reverse=True)]
        any_failure = bool(self._kept or self.total)
        if self._local:
            if self._out is not None:
                self._out.close()
                self._out = None
            return first[: self.keep], any_failure
        if any_failure or self.target.exists():
            self.target.parent.mkdir(parents=True, exist_ok=True)
            with self.target.open("w") as out:
                for source in (self._earlier_file, self._out):
                    if source is not None:
                        source.flush()
                        source.seek(0)
                        shutil.copyfileobj(source, out)
        return first[: self.keep], any_failure


def read_failure_payloads(path: str, stages: Sequence[str] = ("dead_lettered",)) -> list[dict[str, Any]]:
    """The payloads of a failure file's records in ``stages``, in file order, ready to send again.

    Sent again under the original namespace + ``/replay``: a replay retried within Spotzee's 24 h is
    replayed by key, and only records whose payload changed (e.g. fixed in the file) get fresh keys.
    """
    target = _open_path(path)
    payloads: list[dict[str, Any]] = []
    if not target.exists():  # a clean sync writes no failure file: nothing to replay
        log.info("replay_from: no failure file at %s, nothing to replay", path)
        return payloads
    with target.open("r") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:  # the torn last line of a try that was killed while writing it
                log.warning("replay_from: line %d of %s is not JSON (a killed try's last line?); skipped",
                            number, path)
                continue
            if entry.get("stage") in stages and isinstance(entry.get("payload"), dict):
                payloads.append(entry["payload"])
    return payloads


def _open_path(path: str) -> Any:
    if "://" in path:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(path)
    return Path(path)


def _summary(prior: Mapping[str, int], result: SendResult, started: float, failures_path: str | None,
             namespace: str, dry_run: bool, resumed_from: int | None) -> dict[str, Any]:
    elapsed = time.monotonic() - started
    this_try = {
        "extracted": result.submitted,
        "sent_ok": result.succeeded,
        "unchanged": result.unchanged,
        "invalid": result.invalid,
        "rejected": result.rejected,
        "dead_lettered": result.dead_lettered,
    }
    counts = {name: int(prior.get(name, 0)) + this_try[name] for name in COUNT_FIELDS}
    return {
        "endpoint": result.endpoint,
        **counts,
        "balanced": counts["extracted"] == sum(counts[n] for n in COUNT_FIELDS[1:]),
        "requests": result.requests,
        "retries": result.retries,
        "throttled": result.throttled,
        "replayed": result.replayed,
        "elapsed_seconds": round(elapsed, 3),
        "items_per_second": round(result.submitted / elapsed, 1) if elapsed > 0 else 0.0,
        "failures_path": failures_path,
        "idempotency_namespace": namespace,
        "resumed_from_index": resumed_from,
        "dry_run": dry_run,
    }

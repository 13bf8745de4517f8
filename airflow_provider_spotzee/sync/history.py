"""Sync history in a SQL database: one row per task try, one row per failed record (no Airflow imports).

The operator opens a DB-API connection of any common.sql connection (``sync_log_conn_id``) and calls
:meth:`SyncHistory.record` once per try, after the sync. Two tables, created when missing (:data:`DDL`):

- ``<prefix>sync_runs``: one row per (dag_id, task_id, run_id, map_index, try_number), with every count of
  the summary, the request figures, the final state and the failure file's path;
- ``<prefix>sync_failures``: one row per failed record of a run (dag_id, task_id, run_id, map_index, idx),
  with the identifiers Spotzee knows the contact by, the stage, the code and the message. No payload and
  no other personal data.

A write is one transaction that replaces the try's run row and *all* failure rows of the run by the ones
given, with portable SQL (DELETE, then multi-row INSERT in chunks; no UPSERT dialect). So a try that was
killed and retried, or a write repeated after a crash, leaves neither duplicates nor gaps: the rows are
keyed by their natural keys and the last write of a run wins. Database errors are raised; the caller
decides that a history write never fails a sync.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

DEFAULT_PREFIX = "spotzee_"
#: Failure rows per INSERT statement (7 keys + 9 columns: far below every driver's parameter limit).
CHUNK_ROWS = 500
#: The longest message kept (the API's own messages are short; a longer one is cut, never rejected).
MAX_MESSAGE = 1000

_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

RUN_KEYS = ("dag_id", "task_id", "run_id", "map_index", "try_number")
RUN_COLUMNS = (*RUN_KEYS, "endpoint", "data_interval_start", "data_interval_end", "started_at", "ended_at",
               "extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered", "removed",
               "requests", "retries", "throttled", "items_per_second", "state", "failures_path")
FAILURE_KEYS = ("dag_id", "task_id", "run_id", "map_index")
FAILURE_FIELDS = ("idx", "source_key", "external_id", "anonymous_id", "subscription_id", "stage", "code",
                  "message")
FAILURE_COLUMNS = (*FAILURE_KEYS, "try_number", *FAILURE_FIELDS)

#: The tables, with ``{prefix}`` for the table prefix. Portable types: SQLite and PostgreSQL (and most
#: other SQL databases) accept them as they are. Timestamps are ISO 8601 text in UTC, so they sort and
#: compare as text and read back the same everywhere.
DDL = """\
CREATE TABLE IF NOT EXISTS {prefix}sync_runs (
    dag_id              VARCHAR(250) NOT NULL,
    task_id             VARCHAR(250) NOT NULL,
    run_id              VARCHAR(250) NOT NULL,
    map_index           INTEGER      NOT NULL,   -- -1 when the task is not mapped
    try_number          INTEGER      NOT NULL,
    endpoint            VARCHAR(64)  NOT NULL,   -- users_batch, users_async, events, subscriptions_batch
    data_interval_start VARCHAR(40),             -- ISO 8601, NULL for a run without a data interval
    data_interval_end   VARCHAR(40),
    started_at          VARCHAR(40)  NOT NULL,   -- ISO 8601 UTC
    ended_at            VARCHAR(40)  NOT NULL,
    extracted           INTEGER      NOT NULL,   -- the counts of the summary, earlier tries included
    sent_ok             INTEGER      NOT NULL,
    unchanged           INTEGER      NOT NULL,
    invalid             INTEGER      NOT NULL,
    rejected            INTEGER      NOT NULL,
    dead_lettered       INTEGER      NOT NULL,
    removed             INTEGER,                 -- incremental='diff' only
    requests            INTEGER      NOT NULL,   -- this try's HTTP requests, retries and 429s
    retries             INTEGER      NOT NULL,
    throttled           INTEGER      NOT NULL,
    items_per_second    REAL         NOT NULL,
    state               VARCHAR(250) NOT NULL,   -- 'success', or the class name of the exception
    failures_path       VARCHAR(1000),           -- the failure file (with payloads), NULL when none
    PRIMARY KEY (dag_id, task_id, run_id, map_index, try_number)
);
CREATE TABLE IF NOT EXISTS {prefix}sync_failures (
    dag_id          VARCHAR(250) NOT NULL,
    task_id         VARCHAR(250) NOT NULL,
    run_id          VARCHAR(250) NOT NULL,
    map_index       INTEGER      NOT NULL,
    idx             INTEGER      NOT NULL,       -- the record's position in the run's input
    try_number      INTEGER      NOT NULL,       -- the try that wrote this row
    source_key      VARCHAR(1000),               -- the row's key_column value (SQL sources), as text
    external_id     VARCHAR(1000),
    anonymous_id    VARCHAR(1000),
    subscription_id VARCHAR(1000),
    stage           VARCHAR(32)  NOT NULL,       -- invalid, rejected, dead_lettered
    code            VARCHAR(100) NOT NULL,
    message         VARCHAR(1000),
    PRIMARY KEY (dag_id, task_id, run_id, map_index, idx)
);
CREATE INDEX IF NOT EXISTS {prefix}sync_failures_external_id ON {prefix}sync_failures (external_id);
"""


def ddl_statements(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """:data:`DDL` for ``prefix``, one statement per item (DB-API runs one statement per ``execute``)."""
    text = DDL.format(prefix=check_prefix(prefix))
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


def check_prefix(prefix: str) -> str:
    """A table prefix is an SQL identifier (letters, digits, underscores): it is put into SQL text."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"sync history table prefix must be letters, digits and underscores, got {prefix!r}")
    return prefix


def _text(value: Any, limit: int = MAX_MESSAGE) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _int(value: Any) -> int:
    return int(value or 0)


class SyncHistory:
    """Writes the sync history through an open DB-API ``conn`` whose paramstyle is ``placeholder``
    (``?`` for SQLite, ``%s`` for psycopg: a common.sql hook's ``placeholder``)."""

    def __init__(self, conn: Any, placeholder: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.conn = conn
        self.placeholder = placeholder
        self.prefix = check_prefix(prefix)
        self.runs = f"{self.prefix}sync_runs"
        self.failures = f"{self.prefix}sync_failures"

    # ------------------------------------------------------------------------------------------ schema

    DDL = DDL

    def ensure(self) -> None:
        """Create the tables (and the index on external_id) when they are missing.

        Mapped tasks may create them at the same moment; PostgreSQL then refuses one of the two
        ``CREATE TABLE IF NOT EXISTS`` (a unique violation in its catalogue), so a failed attempt is tried once
        more, when the tables exist."""
        for attempt in (1, 2):
            cursor = self.conn.cursor()
            try:
                for statement in ddl_statements(self.prefix):
                    cursor.execute(statement)
                self.conn.commit()
                return
            except Exception:
                self.conn.rollback()
                if attempt == 2:
                    raise
            finally:
                cursor.close()

    # ------------------------------------------------------------------------------------------ write

    def record(self, run: Mapping[str, Any], failures: Iterable[Mapping[str, Any]]) -> None:
        """Replace the run row of this try and every failure row of this run, in one transaction."""
        run_row = self._run_row(run)
        keys = run_row[: len(FAILURE_KEYS)]
        try_number = run_row[len(FAILURE_KEYS)]
        cursor = self.conn.cursor()
        try:
            where = " AND ".join(f"{column} = {self.placeholder}" for column in RUN_KEYS)
            cursor.execute(f"DELETE FROM {self.runs} WHERE {where}", run_row[: len(RUN_KEYS)])
            cursor.execute(self._insert(self.runs, RUN_COLUMNS, 1), run_row)
            where = " AND ".join(f"{column} = {self.placeholder}" for column in FAILURE_KEYS)
            cursor.execute(f"DELETE FROM {self.failures} WHERE {where}", keys)
            rows = (self._failure_row(keys, try_number, failure) for failure in failures)
            for chunk in _chunks(_unique_by_index(rows), CHUNK_ROWS):
                cursor.execute(self._insert(self.failures, FAILURE_COLUMNS, len(chunk)),
                               [value for row in chunk for value in row])
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cursor.close()

    def _insert(self, table: str, columns: Sequence[str], rows: int) -> str:
        one = "(" + ", ".join([self.placeholder] * len(columns)) + ")"
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)

    @staticmethod
    def _run_row(run: Mapping[str, Any]) -> tuple[Any, ...]:
        missing = [name for name in RUN_COLUMNS if name not in run and name not in ("removed", "failures_path")]
        if missing:
            raise ValueError(f"sync history run is missing {', '.join(missing)}")
        removed = run.get("removed")
        return (
            str(run["dag_id"]), str(run["task_id"]), str(run["run_id"]),
            -1 if run["map_index"] is None else int(run["map_index"]), int(run["try_number"]),
            str(run["endpoint"]), _text(run["data_interval_start"], 40), _text(run["data_interval_end"], 40),
            str(run["started_at"]), str(run["ended_at"]),
            _int(run["extracted"]), _int(run["sent_ok"]), _int(run["unchanged"]), _int(run["invalid"]),
            _int(run["rejected"]), _int(run["dead_lettered"]), None if removed is None else int(removed),
            _int(run["requests"]), _int(run["retries"]), _int(run["throttled"]),
            float(run["items_per_second"] or 0.0), _text(run["state"], 250) or "success",
            _text(run.get("failures_path")),
        )

    @staticmethod
    def _failure_row(keys: Sequence[Any], try_number: int, failure: Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            *keys, try_number, int(failure["index"]), _text(failure.get("source_key")),
            _text(failure.get("external_id")), _text(failure.get("anonymous_id")),
            _text(failure.get("subscription_id")), str(failure["stage"]), _text(failure["code"], 100) or "",
            _text(failure.get("message")),
        )


def _unique_by_index(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Every record once: the index is part of the primary key, so a repeated index keeps its first row
    (the failure file already holds each record once; this guards the key, not the data)."""
    position = len(FAILURE_KEYS) + 1
    seen: set[int] = set()
    for row in rows:
        if row[position] not in seen:
            seen.add(row[position])
            yield row


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk

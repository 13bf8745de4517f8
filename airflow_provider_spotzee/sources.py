"""Extraction: stream rows from any common.sql connection, or from an in-memory iterable.

SQL sources page with a tie-safe keyset cursor ``(cursor_column, key_column)``: every page is one
``SELECT … WHERE (c, k) > (last c, last k) ORDER BY c, k LIMIT n`` query, so memory is constant in the
number of rows, a resumed run starts exactly after the last committed row, and rows sharing an
``updated_at`` are neither skipped nor repeated. The window (data interval) is half-open:
``start <= c < end``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_spotzee.exceptions import SpotzeeConfigError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

Cursor = tuple[Any, Any]


def _ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SpotzeeConfigError(f"{what} {name!r} is not a plain SQL identifier (letters, digits, _ and one dot)")
    return name


def json_cursor_value(value: Any) -> Any:
    """Cursor values as JSON (checkpoints): datetimes become ISO strings, the rest stays as is."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (str, int, float)) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class Partition:
    """``count`` partitions by the integer key modulo ``count``; this is partition ``index``."""

    count: int
    index: int

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1 and 0 <= self.index < self.count):
            raise SpotzeeConfigError(f"invalid partition {self.index} of {self.count}")


@dataclass
class SqlSource:
    """Rows of ``table`` (or of the SELECT in ``sql``) from the common.sql connection ``conn_id``.

    ``sql`` is wrapped as a sub-query, so it may join and filter freely but must expose
    ``cursor_column`` and ``key_column``. For SQLite store times as UTC text
    ``YYYY-MM-DD HH:MM:SS`` (SQLite's own CURRENT_TIMESTAMP form): window bounds are bound in that form.
    """

    conn_id: str
    table: str | None = None
    sql: str | None = None
    cursor_column: str = "updated_at"
    key_column: str = "id"
    page_rows: int = 1000

    def __post_init__(self) -> None:
        if (self.table is None) == (self.sql is None):
            raise SpotzeeConfigError("give exactly one of table= or sql= for a SQL source")
        if self.table is not None:
            _ident(self.table, "table")
        _ident(self.cursor_column, "cursor_column")
        _ident(self.key_column, "key_column")
        if self.page_rows < 1:
            raise SpotzeeConfigError("page_rows must be at least 1")

    # ------------------------------------------------------------------------------------------ hook

    def _hook(self) -> Any:
        from airflow.providers.common.compat.sdk import BaseHook

        try:
            hook = BaseHook.get_connection(self.conn_id).get_hook()
        except Exception as exc:
            raise SpotzeeConfigError(f"cannot open source connection {self.conn_id!r}: {type(exc).__name__}: {exc}") from exc
        if not hasattr(hook, "get_conn") or not hasattr(hook, "placeholder"):
            raise SpotzeeConfigError(f"source connection {self.conn_id!r} is not a common.sql (DbApiHook) connection")
        return hook

    def _is_sqlite(self, hook: Any) -> bool:
        return "sqlite" in type(hook).__name__.lower()

    def _bind(self, value: Any, sqlite: bool) -> Any:
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.timezone.utc)
            if sqlite:
                return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds" if not value.microsecond else "microseconds")
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return value

    # ------------------------------------------------------------------------------------------ rows

    def _where(self, ph: str, sqlite: bool, *, start: Any, end: Any, after: Cursor | None, upto: Cursor | None,
               partition: Partition | None) -> tuple[list[str], list[Any]]:
        c, k = self.cursor_column, self.key_column
        where: list[str] = []
        params: list[Any] = []
        if after is not None:
            # Implied by the keyset condition below, but a plain range an index on (c, k) can seek to. It
            # comes first: SQLite uses the first lower bound on c it finds, and with ``c >= start`` first
            # every page re-scanned the window from its start (1M rows: 2 ms per page at the start,
            # ~100 ms at the end, about a minute in all).
            where.append(f"{c} >= {ph}")
            params.append(self._bind(after[0], sqlite))
        if start is not None:
            where.append(f"{c} >= {ph}")
            params.append(self._bind(start, sqlite))
        if end is not None:
            where.append(f"{c} < {ph}")
            params.append(self._bind(end, sqlite))
        if upto is not None:
            where.append(f"({c} < {ph} OR ({c} = {ph} AND {k} <= {ph}))")
            params += [self._bind(upto[0], sqlite), self._bind(upto[0], sqlite), upto[1]]
        if after is not None:
            where.append(f"({c} > {ph} OR ({c} = {ph} AND {k} > {ph}))")
            params += [self._bind(after[0], sqlite), self._bind(after[0], sqlite), after[1]]
        if partition is not None and partition.count > 1:
            where.append(f"({k} % {int(partition.count)}) = {int(partition.index)}")
        return where, params

    def _connect(self, hook: Any) -> Any:
        try:
            return hook.get_conn()
        except Exception as exc:
            raise SpotzeeConfigError(f"cannot connect to source {self.conn_id!r}: {type(exc).__name__}: {exc}") from exc

    def rows(
        self,
        *,
        start: Any = None,
        end: Any = None,
        after: Cursor | None = None,
        upto: Cursor | None = None,
        partition: Partition | None = None,
    ) -> Iterator[tuple[Cursor, dict[str, Any]]]:
        """Yield ``(cursor, row)`` in cursor order, streaming page by page.

        ``start``/``end``: the half-open time window; ``after``: resume strictly after this cursor;
        ``upto``: stop at this cursor (inclusive); ``partition``: only rows whose integer key falls in it.
        """
        hook = self._hook()
        sqlite = self._is_sqlite(hook)
        c, k = self.cursor_column, self.key_column
        conn = self._connect(hook)
        try:
            last = after
            while True:
                where, params = self._where(hook.placeholder, sqlite, start=start, end=end, after=last, upto=upto,
                                            partition=partition)
                clause = f" WHERE {' AND '.join(where)}" if where else ""
                query = f"SELECT * FROM {self._from()}{clause} ORDER BY {c}, {k} LIMIT {int(self.page_rows)}"
                cur = conn.cursor()
                try:
                    cur.execute(query, params)
                    names = [d[0] for d in cur.description]
                    page = cur.fetchall()
                finally:
                    cur.close()
                if not page:
                    return
                if c not in names or k not in names:
                    raise SpotzeeConfigError(f"source rows have no {c!r} / {k!r} column (columns: {names})")
                ci, ki = names.index(c), names.index(k)
                for values in page:
                    last = (values[ci], values[ki])
                    yield last, dict(zip(names, values))
                if len(page) < self.page_rows:
                    return
        finally:
            conn.close()

    def duplicate_counts(self, column: str, **window: Any) -> dict[Any, int]:
        """``{value: rows}`` for values of ``column`` that occur more than once in the window (usually
        none, so this stays small). Used to send only the latest row of a contact that changed twice."""
        _ident(column, "dedupe column")
        hook = self._hook()
        where, params = self._where(hook.placeholder, self._is_sqlite(hook), **window)
        where.append(f"{column} IS NOT NULL")
        conn = self._connect(hook)
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT {column}, COUNT(*) FROM {self._from()} WHERE {' AND '.join(where)} "
                        f"GROUP BY {column} HAVING COUNT(*) > 1", params)
            found = {value: count for value, count in cur.fetchall()}
            cur.close()
        finally:
            conn.close()
        return found

    def max_cursor(self) -> Cursor | None:
        """The greatest ``(cursor, key)`` present now: captured once per run so a retry reads the same rows."""
        hook = self._hook()
        c, k = self.cursor_column, self.key_column
        conn = hook.get_conn()
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT {c}, {k} FROM {self._from()} ORDER BY {c} DESC, {k} DESC LIMIT 1")
            row = cur.fetchone()
            cur.close()
        finally:
            conn.close()
        return (row[0], row[1]) if row else None

    def _from(self) -> str:
        if self.table is not None:
            return self.table
        return f"({self.sql.rstrip().rstrip(';')}) AS spotzee_src"  # type: ignore[union-attr]

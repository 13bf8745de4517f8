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
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def json_cursor(cursor: Any) -> Any:
    """A cursor (a value, or a ``(cursor, key)`` tuple) as JSON."""
    if isinstance(cursor, tuple):
        return [json_cursor_value(v) for v in cursor]
    return json_cursor_value(cursor)


#: The provider package that gives Airflow a hook for each SQL connection type the docs mention.
SQL_PROVIDERS = {
    "sqlite": "apache-airflow-providers-sqlite",
    "postgres": "apache-airflow-providers-postgres",
    "mysql": "apache-airflow-providers-mysql",
    "snowflake": "apache-airflow-providers-snowflake",
    "google_cloud_platform": "apache-airflow-providers-google",
    "mssql": "apache-airflow-providers-microsoft-mssql",
}


#: SQL dialects with an extra of this package (pyproject.toml).
EXTRAS = ("sqlite", "postgres")


def sql_hook(conn_id: str, what: str = "source") -> Any:
    """The common.sql (``DbApiHook``) hook of ``conn_id``; a :class:`SpotzeeConfigError` that says what to
    install or fix when there is none."""
    from airflow.providers.common.compat.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise SpotzeeConfigError(f"cannot open {what} connection {conn_id!r}: {type(exc).__name__}: {exc}") from exc
    try:
        hook = conn.get_hook()
    except Exception as exc:
        package = SQL_PROVIDERS.get(str(conn.conn_type))
        extra = f"airflow-provider-spotzee[{conn.conn_type}]" if conn.conn_type in EXTRAS else package
        hint = f"; install {package} (pip install '{extra}')" if package else ""
        raise SpotzeeConfigError(f"cannot open {what} connection {conn_id!r} of type {conn.conn_type!r}: "
                                 f"{type(exc).__name__}: {exc}{hint}") from exc
    if not hasattr(hook, "get_conn") or not hasattr(hook, "placeholder"):
        raise SpotzeeConfigError(f"{what} connection {conn_id!r} is not a common.sql (DbApiHook) connection")
    return hook


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

    Rows are read in keyset order: ``(cursor_column, key_column)``, or ``key_column`` alone when
    ``cursor_column`` is ``None`` (diff syncs). That order must identify each row: :meth:`check_keys`
    refuses a source where it does not, because a keyset pager would skip the rows that share a position.
    ``sql`` is wrapped as a sub-query, so it may join and filter freely but must expose the order columns.
    For SQLite store times as UTC text ``YYYY-MM-DD HH:MM:SS`` (SQLite's own CURRENT_TIMESTAMP form):
    window bounds are bound in that form.
    """

    conn_id: str
    table: str | None = None
    sql: str | None = None
    cursor_column: str | None = "updated_at"
    key_column: str = "id"
    page_rows: int = 1000
    _session: tuple[Any, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.table is None) == (self.sql is None):
            raise SpotzeeConfigError("give exactly one of table= or sql= for a SQL source")
        if self.table is not None:
            _ident(self.table, "table")
        if self.cursor_column is not None:
            _ident(self.cursor_column, "cursor_column")
        _ident(self.key_column, "key_column")
        if self.page_rows < 1:
            raise SpotzeeConfigError("page_rows must be at least 1")

    @property
    def order(self) -> tuple[str, ...]:
        """The columns rows are read in, and whose values form a row's cursor."""
        return (self.key_column,) if self.cursor_column is None else (self.cursor_column, self.key_column)

    def describe(self) -> str:
        """What is read, for messages: the table, or that it is the query given as ``sql=``."""
        what = f"table {self.table}" if self.table is not None else "the query given as sql="
        return f"{what} of connection {self.conn_id!r}"

    # ------------------------------------------------------------------------------------------ hook

    def _hook(self) -> Any:
        return sql_hook(self.conn_id)

    def _is_sqlite(self, hook: Any) -> bool:
        return "sqlite" in type(hook).__name__.lower()

    def _bind(self, value: Any, sqlite: bool) -> Any:
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC)
            if sqlite:
                return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds" if not value.microsecond else "microseconds")
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value

    def _connect(self, hook: Any) -> Any:
        try:
            return hook.get_conn()
        except Exception as exc:
            raise SpotzeeConfigError(f"cannot connect to source {self.conn_id!r}: {type(exc).__name__}: {exc}") from exc

    @contextmanager
    def session(self) -> Iterator[None]:
        """Run the queries made inside the block on one connection (many small queries, one connect)."""
        hook = self._hook()
        self._session = (hook, self._connect(hook))
        try:
            yield
        finally:
            session, self._session = self._session, None
            session[1].close()

    def _query(self, sql: str, params: list[Any], *, limit_rows: int | None = None) -> tuple[list[str], list[Any]]:
        """Run one query: (column names, rows). A query the database refuses (a misspelled table or column) is
        a :class:`SpotzeeConfigError` naming the source."""
        session = self._session
        conn = session[1] if session else self._connect(self._hook())
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                names = [d[0] for d in cur.description or ()]
                rows = cur.fetchall() if limit_rows is None else cur.fetchmany(limit_rows)
            except Exception as exc:
                raise self._refused(exc) from exc
            finally:
                cur.close()
        finally:
            if not session:
                conn.close()
        return names, rows

    def _refused(self, exc: Exception) -> SpotzeeConfigError:
        return SpotzeeConfigError(f"cannot read {self.describe()}: {type(exc).__name__}: {exc}. Check table=/sql= "
                                  f"and the columns {list(self.order)} (order columns must exist in the source)")

    # ---------------------------------------------------------------------------------------- checks

    def columns(self) -> list[str]:
        """The source's column names (an empty read); a clear error for a misspelled table or column."""
        names, _ = self._query(f"SELECT * FROM {self._from()} WHERE 1 = 0", [])
        missing = [c for c in self.order if c not in names]
        if missing:
            raise SpotzeeConfigError(f"{self.describe()} has no column(s) {missing} (source columns: {sorted(names)}); "
                                     "check cursor_column= and key_column=")
        return names

    def check_keys(self, **window: Any) -> None:
        """Refuse a source whose rows in ``window`` are not identified by :attr:`order`: a NULL key, or two
        rows at one position. A keyset pager cannot read such rows reliably (rows sharing a position across
        a page boundary, or across a resume, would be skipped), so nothing is sent."""
        hook = self._hook()
        where, params = self._where(hook.placeholder, self._is_sqlite(hook), **window)
        cols = ", ".join(self.order)
        base = f"FROM {self._from()}" + (f" WHERE {' AND '.join(where)}" if where else "")
        null = " OR ".join(f"{c} IS NULL" for c in self.order)
        _, found = self._query(f"SELECT COUNT(*) {base}{' AND' if where else ' WHERE'} ({null})", params)
        if found and found[0][0]:
            raise SpotzeeConfigError(
                f"{found[0][0]} rows of {self.describe()} have a NULL {' or '.join(self.order)}: every row needs a "
                f"key (key_column={self.key_column!r}). Filter them out in sql=, or choose a non-null key column")
        groups = f"SELECT {cols}, COUNT(*) AS spotzee_n {base} GROUP BY {cols} HAVING COUNT(*) > 1"
        _, examples = self._query(f"{groups}", params, limit_rows=5)
        if not examples:
            return
        _, totals = self._query(f"SELECT COUNT(*), SUM(spotzee_n) FROM ({groups}) AS spotzee_dups", params)
        pairs, rows = totals[0]
        shown = "; ".join(", ".join(f"{c}={v!r}" for c, v in zip(self.order, example[:-1])) + f" ({example[-1]} rows)"
                          for example in examples)
        if self.cursor_column is None:
            raise SpotzeeConfigError(
                f"key_column={self.key_column!r} is not unique in {self.describe()}: {pairs} keys occur more than "
                f"once ({rows} rows), e.g. {shown}. A diff sync needs the model's primary key: choose a unique "
                "column, or de-duplicate the model first")
        raise SpotzeeConfigError(
            f"rows of {self.describe()} are not unique by (cursor_column, key_column) = ({self.cursor_column!r}, "
            f"{self.key_column!r}): {pairs} pairs occur more than once ({rows} rows), e.g. {shown}. Rows sharing a "
            "pair would be skipped at a page boundary. Choose key_column= the table's primary key (a column unique "
            "on its own)")

    # ------------------------------------------------------------------------------------------ rows

    def _where(self, ph: str, sqlite: bool, *, start: Any = None, end: Any = None, after: Cursor | None = None,
               upto: Cursor | None = None, partition: Partition | None = None) -> tuple[list[str], list[Any]]:
        k = self.key_column
        first = self.order[0]
        where: list[str] = []
        params: list[Any] = []
        if after is not None:
            # Implied by the keyset condition below, but a plain range an index on the order columns can
            # seek to. It comes first: SQLite uses the first lower bound it finds, and with ``c >= start``
            # first every page re-scanned the window from its start (quadratic in the window).
            where.append(f"{first} >= {ph}")
            params.append(self._bind(after[0], sqlite))
        if start is not None or end is not None:
            if self.cursor_column is None:
                raise SpotzeeConfigError("a time window needs a cursor_column")
            if start is not None:
                where.append(f"{self.cursor_column} >= {ph}")
                params.append(self._bind(start, sqlite))
            if end is not None:
                where.append(f"{self.cursor_column} < {ph}")
                params.append(self._bind(end, sqlite))
        if upto is not None:
            c = self.cursor_column
            where.append(f"({c} < {ph} OR ({c} = {ph} AND {k} <= {ph}))")
            params += [self._bind(upto[0], sqlite), self._bind(upto[0], sqlite), upto[1]]
        if after is not None:
            if self.cursor_column is None:
                where.append(f"{k} > {ph}")
                params.append(after[0])
            else:
                c = self.cursor_column
                where.append(f"({c} > {ph} OR ({c} = {ph} AND {k} > {ph}))")
                params += [self._bind(after[0], sqlite), self._bind(after[0], sqlite), after[1]]
        if partition is not None and partition.count > 1:
            where.append(f"({k} % {int(partition.count)}) = {int(partition.index)}")
        return where, params

    def rows(
        self,
        *,
        start: Any = None,
        end: Any = None,
        after: Cursor | None = None,
        upto: Cursor | None = None,
        partition: Partition | None = None,
    ) -> Iterator[tuple[Cursor, dict[str, Any]]]:
        """Yield ``(cursor, row)`` in :attr:`order`, streaming page by page; a cursor is the tuple of the
        row's order values.

        ``start``/``end``: the half-open time window; ``after``: resume strictly after this cursor;
        ``upto``: stop at this cursor (inclusive); ``partition``: only rows whose integer key falls in it.
        """
        hook = self._hook()
        sqlite = self._is_sqlite(hook)
        order = ", ".join(self.order)
        conn = self._connect(hook)
        try:
            last = after
            while True:
                where, params = self._where(hook.placeholder, sqlite, start=start, end=end, after=last, upto=upto,
                                            partition=partition)
                clause = f" WHERE {' AND '.join(where)}" if where else ""
                query = f"SELECT * FROM {self._from()}{clause} ORDER BY {order} LIMIT {int(self.page_rows)}"
                cur = conn.cursor()
                try:
                    try:
                        cur.execute(query, params)
                    except Exception as exc:
                        raise self._refused(exc) from exc
                    names = [d[0] for d in cur.description]
                    page = cur.fetchall()
                finally:
                    cur.close()
                if not page:
                    return
                if any(c not in names for c in self.order):
                    raise SpotzeeConfigError(f"source rows have no {list(self.order)} column(s) (columns: {names})")
                positions = [names.index(c) for c in self.order]
                for values in page:
                    last = tuple(values[i] for i in positions)
                    yield last, dict(zip(names, values))
                if len(page) < self.page_rows:
                    return
        finally:
            conn.close()

    def count(self, **window: Any) -> int:
        """Rows in ``window`` (for messages about an empty window)."""
        hook = self._hook()
        where, params = self._where(hook.placeholder, self._is_sqlite(hook), **window)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        _, rows = self._query(f"SELECT COUNT(*) FROM {self._from()}{clause}", params)
        return int(rows[0][0])

    def duplicate_counts(self, column: str, **window: Any) -> dict[Any, int]:
        """``{value: rows}`` for values of ``column`` that occur more than once in the window (usually
        none, so this stays small). Used to send only the latest row of a contact that changed twice."""
        _ident(column, "dedupe column")
        hook = self._hook()
        where, params = self._where(hook.placeholder, self._is_sqlite(hook), **window)
        where.append(f"{column} IS NOT NULL")
        _, found = self._query(f"SELECT {column}, COUNT(*) FROM {self._from()} WHERE {' AND '.join(where)} "
                               f"GROUP BY {column} HAVING COUNT(*) > 1", params)
        return {value: count for value, count in found}

    def max_cursor(self) -> Cursor | None:
        """The greatest ``(cursor, key)`` present now: captured once per run so a retry reads the same rows."""
        order = ", ".join(f"{c} DESC" for c in self.order)
        _, rows = self._query(f"SELECT {', '.join(self.order)} FROM {self._from()} ORDER BY {order} LIMIT 1", [])
        return tuple(rows[0]) if rows else None

    def existing_keys(self, keys: list[Any], partition: Partition | None = None) -> set[Any]:
        """Which of ``keys`` the source still holds (one ``IN`` query; equality only, so any collation and
        key type give the same answer)."""
        if not keys:
            return set()
        hook = self._session[0] if self._session else self._hook()
        marks = ", ".join([hook.placeholder] * len(keys))
        where, params = self._where(hook.placeholder, self._is_sqlite(hook), partition=partition)
        where.append(f"{self.key_column} IN ({marks})")
        _, rows = self._query(f"SELECT {self.key_column} FROM {self._from()} WHERE {' AND '.join(where)}",
                              params + list(keys))
        return {row[0] for row in rows}

    def _from(self) -> str:
        if self.table is not None:
            return self.table
        return f"({self.sql.rstrip().rstrip(';')}) AS spotzee_src"  # type: ignore[union-attr]

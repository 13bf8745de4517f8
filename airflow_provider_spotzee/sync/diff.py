"""Diff syncs: send only the rows whose payload changed since Spotzee last confirmed it.

The snapshot is a table in a SQL database the DAG author can query: one row per (sync, key) with the hash
of the exact bytes Spotzee last confirmed, the last outcome, its error code and when. It doubles as the
per-row status of the sync (docs/diff-sync.md).

How the diff is computed, in one streaming pass and with no dict of every key in memory:

1. The source is read in key order (a keyset pager, as for every SQL source).
2. Each page of keys is looked up in the snapshot with one ``IN`` query: equality only, so the result is
   the same whatever the two databases' collations or the key's type (text "10" and integer 10 never meet
   in a comparison of order).
3. Each row is mapped, validated and serialised; the hash of those bytes decides: no snapshot row →
   ``new``; a last outcome other than ``sent`` → ``retried``; another hash → ``changed``; else
   ``unchanged`` (counted, never sent).
4. At the send's commit points the snapshot rows of the records up to that point are written, before the
   checkpoint that covers them: a confirmed item gets its new hash; a failed one keeps the hash last
   confirmed, with the failure's stage and code.
5. Removed keys (in the snapshot, gone from the source) are found after the pass by paging the snapshot's
   keys and asking the source which of them it still holds (again ``IN`` queries). When the try started
   from the beginning and every snapshot row it began with was matched, that pass is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from airflow_provider_spotzee.exceptions import SpotzeeConfigError
from airflow_provider_spotzee.models import ItemFailure
from airflow_provider_spotzee.send import Endpoint, Prepared, prepare

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOT_TABLE = "spotzee_sync_snapshot"
MAX_KEY_LEN = 512
LOOKUP_CHUNK = 500  # keys per IN query (SQLite's oldest variable limit is 999)
INSERT_CHUNK = 140  # rows per multi-row INSERT (7 values each: under SQLite's oldest limit of 999)
WRITE_EVERY = 5000  # buffered snapshot rows before a write, between checkpoints

SNAPSHOT_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    sync_id VARCHAR(512) NOT NULL,
    row_key VARCHAR(512) NOT NULL,
    payload_hash CHAR(32),
    status VARCHAR(16) NOT NULL,
    error_code VARCHAR(64),
    synced_at VARCHAR(32) NOT NULL,
    sync_run CHAR(16) NOT NULL,
    PRIMARY KEY (sync_id, row_key)
)"""
COLUMNS = ("sync_id", "row_key", "payload_hash", "status", "error_code", "synced_at", "sync_run")


class Known(NamedTuple):
    """What the snapshot holds for a key: the hash last confirmed (``None`` if never), the last outcome, and
    the run that wrote it."""

    payload_hash: str | None
    status: str
    sync_run: str


class Found(NamedTuple):
    """A source row's key as the snapshot stores it, and the snapshot's row for it (``None``: a new key)."""

    key: str
    known: Known | None


class Outcome(NamedTuple):
    """A snapshot row to write: the key, the confirmed hash, the last outcome and its code, and whether the
    snapshot may already hold the key (then its row is replaced; a new key is only inserted)."""

    key: str
    payload_hash: str | None
    status: str
    error_code: str | None
    existed: bool


def run_tag(namespace: str) -> str:
    """The snapshot's short name for a run (its idempotency namespace): which run wrote a row."""
    return hashlib.blake2b(namespace.encode(), digest_size=8).hexdigest()


def payload_hash(body: bytes) -> str:
    """The snapshot's hash of the exact bytes sent for one item."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def row_key(value: Any) -> str:
    """A source key as the snapshot stores it (text); refuses keys the snapshot cannot hold."""
    if value is None or isinstance(value, (bool, float)):
        raise SpotzeeConfigError(f"a diff sync's key must be an integer or a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_KEY_LEN:
        raise SpotzeeConfigError(f"a diff sync's key is longer than {MAX_KEY_LEN} characters")
    return text


class SnapshotStore:
    """The snapshot rows of one sync (``sync_id``) in ``table``, over an open DB-API connection.

    Only portable SQL: ``CREATE TABLE IF NOT EXISTS``, ``IN`` lookups, and writes as a multi-row DELETE then
    a multi-row INSERT in one transaction (no dialect's UPSERT is needed).
    """

    def __init__(self, conn: Any, placeholder: str, table: str, sync_id: str, run: str) -> None:
        self.conn, self.ph, self.table, self.sync_id, self.run = conn, placeholder, table, sync_id, run

    def _run(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, list(params))
            return cur.fetchall() if cur.description else []
        finally:
            cur.close()

    def ensure(self) -> None:
        try:
            self._run(SNAPSHOT_DDL.format(table=self.table))
            self.conn.commit()
        except Exception as exc:
            raise SpotzeeConfigError(f"cannot create the snapshot table {self.table}: {type(exc).__name__}: {exc}") from exc

    def count(self) -> int:
        return int(self._run(f"SELECT COUNT(*) FROM {self.table} WHERE sync_id = {self.ph}", [self.sync_id])[0][0])

    def lookup(self, keys: list[str]) -> dict[str, Known]:
        found: dict[str, Known] = {}
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start:start + LOOKUP_CHUNK]
            marks = ", ".join([self.ph] * len(chunk))
            for key, digest, status, run in self._run(
                    f"SELECT row_key, payload_hash, status, sync_run FROM {self.table} "
                    f"WHERE sync_id = {self.ph} AND row_key IN ({marks})", [self.sync_id, *chunk]):
                found[key] = Known(digest, status, run)
        return found

    def write(self, rows: list[Outcome]) -> None:
        """Write these keys' rows, replacing the ones that exist; one transaction."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            self._delete([row.key for row in rows if row.existed], commit=False)
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start:start + INSERT_CHUNK]
                values = ", ".join(["(" + ", ".join([self.ph] * len(COLUMNS)) + ")"] * len(chunk))
                params: list[Any] = []
                for key, digest, status, code, _existed in chunk:
                    params += [self.sync_id, key, digest, status, code, now, self.run]
                self._run(f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES {values}", params)
            self.conn.commit()
        except Exception:
            self.conn.rollback()
            raise

    def delete(self, keys: list[str]) -> None:
        self._delete(keys, commit=True)

    def _delete(self, keys: list[str], *, commit: bool) -> None:
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start:start + LOOKUP_CHUNK]
            marks = ", ".join([self.ph] * len(chunk))
            self._run(f"DELETE FROM {self.table} WHERE sync_id = {self.ph} AND row_key IN ({marks})",
                      [self.sync_id, *chunk])
        if commit:
            self.conn.commit()

    def key_pages(self, page: int = 1000) -> Iterator[list[str]]:
        """Every key of this sync, a page at a time, in the snapshot database's own order (keyset paging,
        so rows deleted meanwhile do not shift the pages)."""
        last: str | None = None
        while True:
            after = f" AND row_key > {self.ph}" if last is not None else ""
            params = [self.sync_id] + ([last] if last is not None else [])
            rows = self._run(f"SELECT row_key FROM {self.table} WHERE sync_id = {self.ph}{after} "
                             f"ORDER BY row_key LIMIT {int(page)}", params)
            if not rows:
                return
            keys = [row[0] for row in rows]
            yield keys
            last = keys[-1]


@dataclass
class DiffCounts:
    new: int = 0
    changed: int = 0
    retried: int = 0
    unchanged: int = 0
    removed: int = 0
    removed_sent: int = 0
    removed_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class Differ:
    """Decides, row by row, what a diff sync sends, and writes the outcomes back to the snapshot.

    ``write=False`` (a dry run) reads the snapshot and writes nothing. ``full_resync=True`` treats every
    row as new (sends everything) and rewrites the snapshot.
    """

    store: SnapshotStore
    endpoint: Endpoint
    full_resync: bool = False
    write: bool = True
    resumed: bool = False
    counts: DiffCounts = field(default_factory=DiffCounts)
    key_is_int: bool | None = None
    _before: int = 0
    _absent: bool = False  # a dry run found no snapshot table
    _matched: int = 0
    _pending: deque[tuple[int, str, str | None, Known | None]] = field(default_factory=deque)
    _failed: dict[int, tuple[str, str]] = field(default_factory=dict)
    _buffer: list[Outcome] = field(default_factory=list)

    def start(self) -> None:
        if self.write:
            self.store.ensure()
        try:
            self._before = self.store.count() if not self.resumed else 0
        except Exception:
            if self.write:
                raise
            self.store.conn.rollback()  # a dry run before the first sync: no table yet, nothing known
            self._absent = True

    # --------------------------------------------------------------------------------- classification

    def annotate(self, rows: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any, Found]]:
        """``(cursor, row)`` pairs with the row's key (as the snapshot stores it) and what the snapshot knows
        of it, looked up a page at a time. The key is the cursor's last value (diff sources are read in key
        order)."""
        page: list[tuple[Any, Any]] = []
        for pair in rows:
            page.append(pair)
            if len(page) >= LOOKUP_CHUNK:
                yield from self._annotated(page)
                page = []
        if page:
            yield from self._annotated(page)

    def _annotated(self, page: list[tuple[Any, Any]]) -> Iterator[tuple[Any, Any, Found]]:
        if self.key_is_int is None:
            self.key_is_int = isinstance(page[0][0][-1], int)
        keys = [row_key(cursor[-1]) for cursor, _ in page]
        # nothing to look up: a full resync ignores the snapshot, and a first run from the start began
        # with none for this sync (what it writes itself is never read back within the try)
        empty = self.full_resync or self._absent or (not self.resumed and self._before == 0)
        known = {} if empty else self.store.lookup(keys)
        self._matched += len(known)
        for (cursor, row), key in zip(page, keys):
            yield cursor, row, Found(key, known.get(key))

    def decide(self, index: int, found: Found, payload: Any) -> Any:
        """What to send for this record: ``None`` when it is unchanged, else the record to send (validated
        and serialised once, here, to hash its bytes). Remembers it so its outcome can be written at its
        commit point."""
        key, known = found
        item = prepare(self.endpoint, index, payload)
        digest = payload_hash(item.body) if isinstance(item, Prepared) else None
        old = known.payload_hash if known is not None else None
        if known is None:
            self.counts.new += 1
        elif known.status != "sent" or known.sync_run == self.store.run:
            # a failure is retried; a row this very run wrote (an earlier try's outcome past its last
            # checkpoint) is sent again exactly as that try sent it: the same batches, so the same keys
            self.counts.retried += 1
        elif digest is not None and digest == old:
            self.counts.unchanged += 1
            return None
        else:
            self.counts.changed += 1
        self._pending.append((index, key, digest, known))
        return item if isinstance(item, Prepared) else payload  # an invalid one: the send path reports it

    def unmappable(self, index: int, found: Found) -> None:
        """A row the mapping could not turn into a payload: sent on as an invalid record, its outcome kept."""
        key, known = found
        self.counts.new += known is None
        self.counts.retried += known is not None
        self._pending.append((index, key, None, known))

    # ------------------------------------------------------------------------------------ outcomes

    def failed(self, failure: ItemFailure) -> None:
        self._failed[failure.index] = (failure.stage, failure.code)

    def commit(self, index: int) -> None:
        """Every record ≤ ``index`` is final: queue their snapshot rows."""
        pending, failed, replace = self._pending, self._failed, self.full_resync
        while pending and pending[0][0] <= index:
            position, key, digest, known = pending.popleft()
            existed = replace or known is not None  # a full resync did not look: replace whatever is there
            outcome = failed.pop(position, None)
            if outcome is not None:  # a failure keeps the hash last confirmed
                old = known.payload_hash if known is not None else None
                self._buffer.append(Outcome(key, old, outcome[0], outcome[1], existed))
            elif digest is not None:
                self._buffer.append(Outcome(key, digest, "sent", None, existed))
        if len(self._buffer) >= WRITE_EVERY:
            self.flush()

    def settle(self) -> None:
        """After a send that returned: every record it was given has its outcome (a dead-lettered batch
        stops commit points, not outcomes), so all of them are written."""
        if self._pending:
            self.commit(self._pending[-1][0])
        self.flush()

    def flush(self) -> None:
        """Write the queued snapshot rows (before the checkpoint that covers them)."""
        if self._buffer and self.write:
            self.store.write(self._buffer)
        self._buffer = []

    # ------------------------------------------------------------------------------------- removed

    def removed_keys(self, still_there: Callable[[list[Any]], set[Any]]) -> Iterator[list[Any]]:
        """Pages of keys in the snapshot that the source no longer holds (``still_there(keys)`` asks it).
        Skipped when this try read every row from the start and matched every snapshot row it began with."""
        if self._absent or (not self.resumed and not self.full_resync and self._matched >= self._before):
            return
        for page in self.store.key_pages():
            keys = [int(k) if self.key_is_int and k.lstrip("-").isdigit() else k for k in page]
            present = {row_key(k) for k in still_there(keys)}
            gone = [k for k, text in zip(keys, page) if text not in present]
            if gone:
                yield gone

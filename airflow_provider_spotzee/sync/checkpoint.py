"""Checkpoints: after each commit point, where a retry of this run resumes (``{namespace, index, cursor,
counts}``), in a store with ``get(key)`` and ``set(key, value, retention=...)`` (Airflow's task state
store in a task)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_spotzee.sources import json_cursor

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "spotzee_checkpoint"


@dataclass(frozen=True)
class Resume:
    """A checkpoint of this run: records up to ``index`` are final; read on after ``cursor``."""

    index: int
    cursor: Any
    counts: dict[str, int]

    @property
    def start_index(self) -> int:
        return self.index + 1

    @property
    def after(self) -> Any:
        """The source cursor to read on after: a tuple for a SQL row (stored as a JSON list), else as stored."""
        return tuple(self.cursor) if isinstance(self.cursor, list) else self.cursor


class Checkpointer:
    """Writes the last commit point to ``store``, at most every ``every`` seconds (each write is a round
    trip to the API server), and once more on :meth:`flush`. A kill loses at most ``every`` seconds of
    checkpoints; what is sent again then is replayed by Spotzee from the same idempotency keys."""

    def __init__(self, store: Any, namespace: str, every: float, *, retention: Any = None,
                 before_write: Callable[[], None] | None = None) -> None:
        self.store, self.namespace, self.every, self.retention = store, namespace, every, retention
        self.before_write = before_write  # e.g. the diff's snapshot rows: durable before the checkpoint
        self._pending: tuple[int, Any, Callable[[], dict[str, int]]] | None = None
        self._written = 0.0

    def load(self) -> Resume | None:
        """This run's checkpoint, or ``None`` (no store, none yet, or another run's namespace)."""
        if self.store is None:
            return None
        checkpoint = self.store.get(CHECKPOINT_KEY)
        if not isinstance(checkpoint, dict) or checkpoint.get("namespace") != self.namespace:
            return None
        return Resume(int(checkpoint["index"]), checkpoint.get("cursor"), dict(checkpoint.get("counts") or {}))

    def commit(self, index: int, cursor: Any, counts: Callable[[], dict[str, int]]) -> None:
        """Records ≤ ``index`` are final; ``counts()`` (called only when written) gives their counts."""
        if cursor is None:
            return
        self._pending = (index, cursor, counts)
        if time.monotonic() - self._written >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.before_write is not None:
            self.before_write()
        if self._pending is not None and self.store is not None:
            started = time.monotonic()
            index, cursor, counts = self._pending
            self.store.set(CHECKPOINT_KEY, {"namespace": self.namespace, "index": index,
                                            "cursor": json_cursor(cursor), "counts": counts()},
                           retention=self.retention)
            self._written = time.monotonic()
            log.debug("checkpoint: records up to index %d are final (%.1f ms)", index,
                      (self._written - started) * 1000)
        self._pending = None

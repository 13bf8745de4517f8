"""One try's progress over its records, by input index: the one object the engine, the checkpoint and the
summary read, instead of collections shared between a generator and its consumers."""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Mapping
from typing import Any

from airflow_provider_spotzee.sync.failures import FailureSpill

#: The buckets every record ends in exactly one of (``extracted`` is their sum).
COUNT_FIELDS = ("extracted", "sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")


class Progress:
    """Where each record of this try stands.

    - ``read(index, cursor)``: the record was read at this source cursor (kept until its batch commits);
    - ``unchanged(index)``: it is not sent (superseded by a later row of its contact, or unchanged since
      the last confirmed sync);
    - failures are the failure spill's (``spill.indexes``);
    - ``commit(index)``: every record ≤ ``index`` is final; returns the cursor to resume after.

    Counts up to a commit point are derived, not kept: a record that is neither unchanged nor failed was
    sent and confirmed.
    """

    def __init__(self, start_index: int, prior: Mapping[str, int], spill: FailureSpill, *,
                 keep_ids: int = 0) -> None:
        self.start_index = start_index
        self.prior = {name: int(prior.get(name, 0)) for name in COUNT_FIELDS}
        self.spill = spill
        self.keep_ids = keep_ids
        self.cursor: Any = None  # the cursor of the last committed record
        self.identities: list[tuple[int, Any]] = []  # (index, external_id), at most keep_ids
        # (index, cursor) of records read and not committed yet, in index order: commits pop from the left,
        # so a commit costs what it releases, however many unchanged rows a diff reads between batches
        self._cursors: deque[tuple[int, Any]] = deque()
        self._unchanged: array[int] = array("q")  # ascending

    def read(self, index: int, cursor: Any) -> None:
        self._cursors.append((index, cursor))

    def unchanged(self, index: int) -> None:
        self._unchanged.append(index)

    def identity(self, index: int, external_id: Any) -> None:
        if len(self.identities) < self.keep_ids:
            self.identities.append((index, external_id))

    def source_key(self, index: int) -> Any:
        """The key of a SQL row that is not committed yet (the last value of its cursor); ``None`` for
        records given in memory, whose cursor is their position."""
        cursors = self._cursors
        if not cursors:
            return None
        position = index - cursors[0][0]  # indexes are consecutive from the oldest uncommitted one
        cursor = cursors[position][1] if 0 <= position < len(cursors) else None
        return cursor[-1] if isinstance(cursor, tuple) else None

    def commit(self, index: int) -> Any:
        """Every record ≤ ``index`` is final: forget their cursors; return the cursor to resume after."""
        cursors, cursor = self._cursors, None
        while cursors and cursors[0][0] <= index:
            cursor = cursors.popleft()[1]
        if cursor is not None:
            self.cursor = cursor
        return self.cursor

    def counts_upto(self, index: int) -> dict[str, int]:
        """Cumulative bucket counts (earlier tries included) for every record with index ≤ ``index``."""
        counts = dict(self.prior)
        stages = {stage: sum(1 for i in indexes if i <= index) for stage, indexes in self.spill.indexes.items()}
        records = index - self.start_index + 1
        unchanged = bisect.bisect_right(self._unchanged, index)
        counts["extracted"] += records
        for stage, n in stages.items():
            counts[stage] += n
        counts["unchanged"] += unchanged
        counts["sent_ok"] += records - unchanged - sum(stages.values())
        return counts

    def sent_ids(self) -> list[str]:
        """The external_ids of the first ``keep_ids`` records that were sent and not failed."""
        if not self.identities:
            return []
        failed = self.spill.failed_indexes(upto=self.identities[-1][0])
        return [str(ident) for index, ident in self.identities if index not in failed and ident is not None]

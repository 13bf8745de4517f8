"""The failure file: every failed record of a sync as one JSON line, with its payload, for replay.

Failures are written as they happen instead of kept in memory: per failure only its index stays (8 bytes,
for the checkpoint counts), plus the first ``keep`` by index for XCom. Memory does not grow with the number
of bad rows, and a try that is killed leaves its failures on disk for the try that resumes it.
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Self

from airflow_provider_spotzee.models import ItemFailure

log = logging.getLogger(__name__)

STAGES = ("invalid", "rejected", "dead_lettered")
MAX_CAUSES = 1000  # distinct (stage, code, message) kept for the "one cause" check


class FailureSpill:
    """This try's failures, streamed to ``target`` (a ``pathlib.Path`` or an ``ObjectStoragePath``).

    On entry the file is cut down to the lines of earlier tries with an index before ``start_index``
    (committed: the checkpoint counts them); later ones are replaced by this try's outcome, so every record
    appears once: the earlier lines first, then this try's in the order they failed. A target that cannot
    be appended to (``local=False``, e.g. ``s3://…``) gets its lines from a local temporary file in
    :meth:`finish`.
    """

    def __init__(self, target: Any, start_index: int, keep: int, *, local: bool = True) -> None:
        self.target, self.start_index, self.keep, self._local = target, start_index, keep, local
        self.indexes: dict[str, array[int]] = {stage: array("q") for stage in STAGES}
        self._fresh: list[tuple[int, int, dict[str, Any]]] = []  # max-heap (-index) of this try's first `keep`
        self._earlier: list[dict[str, Any]] = []  # the first `keep` committed lines of earlier tries
        self._kept = 0
        self.causes: Counter[tuple[str, str, str]] = Counter()  # this try's failures by cause
        # (closed by finish or __exit__)
        self._out: Any = None if local else tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
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

    def add(self, failure: ItemFailure, payload: Any, source_key: Any = None) -> None:
        """File one failure (``source_key``: the row's key in a SQL source, kept as text)."""
        entry = failure.model_dump()
        if source_key is not None:
            entry["source_key"] = str(source_key)
        self.indexes[failure.stage].append(failure.index)
        cause = (failure.stage, failure.code, failure.message)
        if cause in self.causes or len(self.causes) < MAX_CAUSES:
            self.causes[cause] += 1
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


def failure_lines(target: Any) -> Iterator[dict[str, Any]]:
    """The failures in a failure file, without their payloads (a torn last line is skipped)."""
    if not target.exists():
        return
    with target.open("r") as handle:
        for line in handle:
            try:
                entry = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            if isinstance(entry, dict):
                entry.pop("payload", None)
                yield entry


def read_failure_payloads(target: Any, stages: Sequence[str] = ("dead_lettered",)) -> list[dict[str, Any]]:
    """The payloads of a failure file's records in ``stages``, in file order, ready to send again."""
    payloads: list[dict[str, Any]] = []
    if not target.exists():  # a clean sync writes no failure file: nothing to replay
        log.info("replay_from: no failure file at %s, nothing to replay", target)
        return payloads
    with target.open("r") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:  # the torn last line of a try that was killed while writing it
                log.warning("replay_from: line %d of %s is not JSON (a killed try's last line?); skipped",
                            number, target)
                continue
            if entry.get("stage") in stages and isinstance(entry.get("payload"), dict):
                payloads.append(entry["payload"])
    return payloads

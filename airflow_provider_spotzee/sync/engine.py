"""One try of a sync: rows → (de-duplicate, diff) → map → send → commit points → counts.

The engine has no Airflow imports: the operator hands it the rows, the mapper, the progress (with the
failure spill), the checkpointer and the hook's ``send``; it returns the send's :class:`SendResult`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.mapping import Mapper, check_columns
from airflow_provider_spotzee.models import ItemFailure, SendResult
from airflow_provider_spotzee.send import Endpoint, Invalid, Unchanged, prepared_batches
from airflow_provider_spotzee.sync.checkpoint import Checkpointer
from airflow_provider_spotzee.sync.dedupe import Dedupe
from airflow_provider_spotzee.sync.diff import Differ, row_key
from airflow_provider_spotzee.sync.progress import Progress
from airflow_provider_spotzee.validation import PARAMETER_INVALID_FORMAT

SUPERSEDED = Unchanged("superseded")
UNCHANGED = Unchanged("unchanged since the last confirmed sync")


class Send(Protocol):
    """The hook's send path (:meth:`SpotzeeHook.send`)."""

    def __call__(self, endpoint: Endpoint, records: Iterable[Any], *, idempotency_namespace: str | None = ...,
                 batch_size: int = ..., on_commit: Callable[[int, SendResult], None] | None = ...,
                 start_index: int = ..., on_failure: Callable[[ItemFailure, Any], None] | None = ...,
                 ) -> SendResult: ...


@dataclass
class SyncJob:
    """What one try sends: ``rows`` are ``(cursor, row)`` pairs numbered from ``progress.start_index``."""

    endpoint: Endpoint
    namespace: str
    rows: Iterable[tuple[Any, Any]]
    mapper: Mapper
    progress: Progress
    checkpoints: Checkpointer
    dedupe: Dedupe | None = None
    differ: Differ | None = None
    batch_size: int = MAX_BATCH_SIZE

    def payloads(self) -> Iterator[Any]:
        """Map rows to payloads, or to :class:`Unchanged`/:class:`Invalid` markers, recording each record's
        cursor (until its batch commits) in the progress."""
        progress, mapper, dedupe, differ = self.progress, self.mapper, self.dedupe, self.differ
        rows: Iterable[tuple[Any, Any, Any]] = (differ.annotate(self.rows) if differ is not None
                                                else ((cursor, row, None) for cursor, row in self.rows))
        checked = False
        for index, (cursor, row, found) in enumerate(rows, start=progress.start_index):
            progress.read(index, cursor)
            if not checked and isinstance(row, Mapping):
                check_columns(mapper, row.keys())
                checked = True
            if dedupe is not None and dedupe.superseded(index, row):
                progress.unchanged(index)
                yield SUPERSEDED
                continue
            try:
                payload = mapper(row) if isinstance(row, Mapping) else row
            except Exception as exc:  # noqa: BLE001 - a user mapping callable failed on this row: report it, go on
                if differ is not None:
                    differ.unmappable(index, found)
                yield Invalid(PARAMETER_INVALID_FORMAT, f"mapping failed on this row: {type(exc).__name__}")
                continue
            if differ is not None:
                payload = differ.decide(index, found, payload)
                if payload is None:
                    progress.unchanged(index)
                    yield UNCHANGED
                    continue
            if progress.keep_ids:
                progress.identity(index, payload.get("external_id") if isinstance(payload, Mapping)
                                  else getattr(payload, "external_id", None))
            yield payload

    def run(self, send: Send | None) -> SendResult:
        """Send (or, with ``send=None``, a dry run: validate and count what would be sent, send nothing and
        write nothing). Commit points advance the progress, the snapshot (diff) and then the checkpoint."""
        progress, differ, checkpoints = self.progress, self.differ, self.checkpoints
        spill = progress.spill

        def on_failure(failure: ItemFailure, payload: Any) -> None:
            spill.add(failure, payload, progress.source_key(failure.index))
            if differ is not None:
                differ.failed(failure)

        if send is None:
            result = SendResult.start(self.endpoint.name, on_failure)
            result.succeeded = sum(len(batch) for batch in prepared_batches(
                self.endpoint, self.payloads(), result, start_index=progress.start_index))
            return result

        def on_commit(index: int, _live: SendResult) -> None:
            cursor = progress.commit(index)
            if differ is not None:
                differ.commit(index)
            checkpoints.commit(index, cursor, lambda: progress.counts_upto(index))

        if differ is not None:
            checkpoints.before_write = differ.flush
        result = send(self.endpoint, self.payloads(), idempotency_namespace=self.namespace,
                      batch_size=self.batch_size, on_commit=on_commit, start_index=progress.start_index,
                      on_failure=on_failure)
        if differ is not None:
            differ.settle()
        checkpoints.flush()
        return result


@dataclass
class Removal:
    """Rows a diff sync found removed from the source: reported, optionally sent ``removed_payload(key)``,
    and dropped from the snapshot once that is confirmed (at once when there is no payload to send)."""

    differ: Differ
    still_there: Callable[[list[Any]], set[Any]]
    keep: int
    listed: list[dict[str, Any]] = field(default_factory=list)

    def _note(self, key: Any, status: str, code: str | None = None) -> None:
        if len(self.listed) < self.keep:
            self.listed.append({"key": key, "status": status, "code": code})

    def run(self, *, endpoint: Endpoint, namespace: str, batch_size: int, send: Send | None,
            removed_payload: Callable[[Any], Any] | None) -> None:
        differ, counts = self.differ, self.differ.counts
        if send is None or removed_payload is None:
            for page in differ.removed_keys(self.still_there):
                counts.removed += len(page)
                for key in page:
                    self._note(key, "removed" if send is not None else "would_remove")
                if send is not None and differ.write:
                    differ.store.delete([row_key(k) for k in page])
            return
        pending: deque[tuple[int, Any]] = deque()
        failed: dict[int, tuple[str, str]] = {}

        def records() -> Iterator[Any]:
            index = 0
            for page in differ.removed_keys(self.still_there):
                for key in page:
                    counts.removed += 1
                    pending.append((index, key))
                    index += 1
                    try:
                        yield removed_payload(key)
                    except Exception as exc:  # noqa: BLE001 - reported for this key, the others go on
                        yield Invalid(PARAMETER_INVALID_FORMAT, f"removed_payload failed: {type(exc).__name__}")

        def on_failure(failure: ItemFailure, _payload: Any) -> None:
            failed[failure.index] = (failure.stage, failure.code)

        def settle(upto: int | None) -> None:
            confirmed: list[str] = []
            while pending and (upto is None or pending[0][0] <= upto):
                index, key = pending.popleft()
                outcome = failed.pop(index, None)
                if outcome is None and upto is not None:
                    counts.removed_sent += 1
                    confirmed.append(row_key(key))
                    self._note(key, "sent")
                else:
                    counts.removed_failed += 1
                    stage, code = outcome or ("dead_lettered", "not_confirmed")
                    self._note(key, stage, code)
            if confirmed:
                differ.store.delete(confirmed)

        send(endpoint, records(), idempotency_namespace=f"{namespace}/removed", batch_size=batch_size,
             on_commit=lambda index, _live: settle(index), on_failure=on_failure)
        settle(None)  # past a dead-lettered batch nothing commits: those keys stay for the next run

"""The summary a sync returns (its XCom ``return_value``), and the checks on it that need no threshold."""

from __future__ import annotations

from typing import Any

from airflow_provider_spotzee.models import SendResult
from airflow_provider_spotzee.sync.failures import FailureSpill
from airflow_provider_spotzee.sync.progress import COUNT_FIELDS, Progress

#: A try fails without a retry when at least this share of its records (and at least ONE_CAUSE_MIN of them)
#: failed for one and the same cause: a mistake in the DAG (a misspelled mapping target), not bad data.
ONE_CAUSE_SHARE = 0.95
ONE_CAUSE_MIN = 20


def summarise(progress: Progress, result: SendResult, *, elapsed: float, failures_path: str | None,
              namespace: str, dry_run: bool, resumed_from: int | None,
              diff: dict[str, int] | None = None) -> dict[str, Any]:
    """Counts of every bucket (earlier tries included), which balance, and how the send went."""
    this_try = {
        "extracted": result.submitted,
        "sent_ok": result.succeeded,
        "unchanged": result.unchanged,
        "invalid": result.invalid,
        "rejected": result.rejected,
        "dead_lettered": result.dead_lettered,
    }
    counts = {name: progress.prior[name] + this_try[name] for name in COUNT_FIELDS}
    summary: dict[str, Any] = {
        "endpoint": result.endpoint,
        **counts,
        "balanced": counts["extracted"] == sum(counts[n] for n in COUNT_FIELDS[1:]),
        "requests": result.requests,
        "retries": result.retries,
        "throttled": result.throttled,
        "replayed": result.replayed,
        "replayed_items": result.replayed_items,  # of sent_ok: confirmed by a replay (sent by an earlier try)
        "elapsed_seconds": round(elapsed, 3),
        "items_per_second": round(result.submitted / elapsed, 1) if elapsed > 0 else 0.0,
        "failures_path": failures_path,
        "idempotency_namespace": namespace,
        "resumed_from_index": resumed_from,
        "dry_run": dry_run,
    }
    if diff is not None:
        summary["removed"] = diff["removed"]
        summary["diff"] = diff
    return summary


def dominant_cause(spill: FailureSpill, records: int) -> tuple[tuple[str, str, str], int] | None:
    """The (stage, code, message) that nearly all of this try's ``records`` failed for, if any."""
    if records < ONE_CAUSE_MIN or not spill.causes:
        return None
    cause, count = spill.causes.most_common(1)[0]
    if cause[0] == "dead_lettered" or count < ONE_CAUSE_SHARE * records:
        return None
    return cause, count

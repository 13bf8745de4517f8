"""Batching (``send.prepared_batches``), canonical bodies and idempotency keys."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_spotzee.batching import canonical_body, idempotency_key, namespace_for
from airflow_provider_spotzee.models import SendResult
from airflow_provider_spotzee.send import SUBSCRIPTIONS_BATCH, prepared_batches


def _toggles(n, counter=None):
    for i in range(n):
        if counter is not None:
            counter.append(i)
        yield {"external_id": f"c-{i}", "subscription_id": 1 + i % 3, "state": i % 3}


def _batches(records, size=100):
    result = SendResult.start(SUBSCRIPTIONS_BATCH.name, None)
    return result, prepared_batches(SUBSCRIPTIONS_BATCH, records, result, batch_size=size)


def test_batches_are_at_most_the_size_and_keep_order():
    result, batches = _batches(_toggles(250))
    chunks = list(batches)
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [item.index for c in chunks for item in c] == list(range(250))
    assert result.submitted == 250
    assert [len(c) for c in _batches(_toggles(10), 3)[1]] == [3, 3, 3, 1]
    assert list(_batches([])[1]) == []


@pytest.mark.parametrize("size", [0, 101, -1, 1.5, True])
def test_batch_size_bounds(size):
    with pytest.raises(ValueError):
        list(_batches(_toggles(3), size)[1])


def test_batching_streams_its_input_and_counts_before_handing_a_batch_on():
    """A batch is handed on as soon as it is full: the input is read no further than that, and the
    result already counts what was read (a commit point may look at it while the batch is in flight)."""
    read: list[int] = []
    result, batches = _batches(_toggles(100_000, read))
    first = next(batches)
    assert len(first) == 100 and len(read) == 100 and result.submitted == 100
    next(batches)
    assert len(read) == 200 and result.submitted == 200


def test_keys_are_deterministic_and_depend_on_every_part():
    body = canonical_body([b'{"external_id":"a"}', b'{"external_id":"b"}'])
    assert body == b'[{"external_id":"a"},{"external_id":"b"}]'
    key = idempotency_key("ns", "POST", "/users/batch", body)
    assert key == idempotency_key("ns", "post", "/users/batch", body)
    assert key.startswith("spz1-") and len(key) <= 255
    others = {
        idempotency_key("ns2", "POST", "/users/batch", body),
        idempotency_key("ns", "PATCH", "/users/batch", body),
        idempotency_key("ns", "POST", "/events", body),
        idempotency_key("ns", "POST", "/users/batch", body + b" "),
        # length-prefixing: moving a character between parts changes the key
        idempotency_key("nsP", "OST", "/users/batch", body),
    }
    assert key not in others and len(others) == 5


def test_namespace_is_stable_across_retries_and_differs_by_interval():
    start, end = (
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
    a = namespace_for("dag", "task", start, end, -1)
    assert a == namespace_for("dag", "task", start, end, -1)
    assert a != namespace_for("dag", "task", end, end + dt.timedelta(days=1), -1)
    assert a != namespace_for("dag", "task", start, end, 3)
    assert namespace_for("dag", "task", None, None, -1, run_id="manual__1") == "dag/task/run=manual__1/-1"

"""Chunking, canonical bodies and idempotency keys."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import pytest

from airflow_provider_spotzee.batching import canonical_body, chunked, idempotency_key, namespace_for


def test_chunks_are_at_most_100_and_keep_order():
    chunks = list(chunked(range(250)))
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [x for c in chunks for x in c] == list(range(250))
    assert [len(c) for c in chunked(range(10), 3)] == [3, 3, 3, 1]
    assert list(chunked([], 5)) == []


@pytest.mark.parametrize("size", [0, 101, -1, 1.5, True])
def test_batch_size_bounds(size):
    with pytest.raises(ValueError):
        list(chunked(range(3), size))


def test_chunking_streams_a_generator_without_materialising_it():
    tracemalloc.start()
    for _ in chunked((i for i in range(200_000)), 100):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


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

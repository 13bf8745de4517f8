"""The operator's failure spill: failures stream to disk; only indexes and the first N stay in memory."""

from __future__ import annotations

import json

from airflow_provider_spotzee.models import ItemFailure
from airflow_provider_spotzee.operators.base import _counts_upto, _FailureSpill


def _failure(index: int, stage: str = "invalid") -> ItemFailure:
    return ItemFailure(index=index, external_id=f"c-{index}", stage=stage, code="parameter_invalid_format",
                       message="email: is not a valid RFC 5322 address")


def test_keeps_the_first_n_by_index_for_xcom_and_every_line_in_the_file(tmp_path):
    path = tmp_path / "failures.jsonl"
    with _FailureSpill(start_index=0, keep=3) as spill:
        for index in (9, 4, 7, 1, 8, 2):  # in the order batches finish, not by index
            spill.add(_failure(index), {"external_id": f"c-{index}", "email": "x@"})
        first, written = spill.write(str(path))
    assert written
    assert [f["index"] for f in first] == [1, 2, 4]
    assert all("payload" not in f for f in first)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == [1, 2, 4, 7, 8, 9]
    assert lines[0]["payload"] == {"external_id": "c-9", "email": "x@"}


def test_a_resumed_try_keeps_committed_lines_and_replaces_the_rest(tmp_path):
    path = tmp_path / "failures.jsonl"
    with _FailureSpill(start_index=0, keep=10) as spill:
        for index in (1, 5, 12, 15):
            spill.add(_failure(index, "dead_lettered" if index > 10 else "invalid"), {"i": index})
        spill.write(str(path))
    with _FailureSpill(start_index=10, keep=10) as spill:  # resumed after a checkpoint at index 9
        spill.add(_failure(15, "rejected"), {"i": 15})
        first, written = spill.write(str(path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["index"], line["stage"]) for line in lines] == [(1, "invalid"), (5, "invalid"), (15, "rejected")]
    assert [f["index"] for f in first] == [1, 5, 15] and written


def test_no_failures_writes_no_file_and_empties_a_stale_one(tmp_path):
    path = tmp_path / "failures.jsonl"
    with _FailureSpill(start_index=0, keep=10) as spill:
        assert spill.write(str(path)) == ([], False)
    assert not path.exists()
    path.write_text(json.dumps({"index": 3, "stage": "invalid"}) + "\n")
    with _FailureSpill(start_index=0, keep=10) as spill:  # a fresh try over the same window: all clean now
        assert spill.write(str(path)) == ([], False)
    assert path.read_text() == ""


def test_checkpoint_counts_come_from_the_indexes():
    with _FailureSpill(start_index=0, keep=0) as spill:
        for index, stage in ((2, "invalid"), (5, "rejected"), (8, "dead_lettered"), (11, "invalid")):
            spill.add(_failure(index, stage), None)
        counts = _counts_upto({}, spill, 9, 0, [3])
    assert counts == {"extracted": 10, "sent_ok": 6, "unchanged": 1, "invalid": 1, "rejected": 1,
                      "dead_lettered": 1}

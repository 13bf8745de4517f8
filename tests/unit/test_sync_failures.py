"""The engine's failure spill: failures stream to disk; only indexes and the first N stay in memory."""

from __future__ import annotations

import json

from airflow_provider_spotzee.models import ItemFailure
from airflow_provider_spotzee.operators.base import open_path, read_failure_payloads
from airflow_provider_spotzee.sync.failures import FailureSpill
from airflow_provider_spotzee.sync.progress import Progress


def _FailureSpill(path, start_index, keep):
    return FailureSpill(open_path(str(path)), start_index, keep, local="://" not in str(path))


def _failure(index: int, stage: str = "invalid") -> ItemFailure:
    return ItemFailure(index=index, external_id=f"c-{index}", stage=stage, code="parameter_invalid_format",
                       message="email: is not a valid RFC 5322 address")


def test_keeps_the_first_n_by_index_for_xcom_and_every_line_in_the_file(tmp_path):
    path = tmp_path / "failures.jsonl"
    with _FailureSpill(str(path), start_index=0, keep=3) as spill:
        for index in (9, 4, 7, 1, 8, 2):  # in the order batches finish, not by index
            spill.add(_failure(index), {"external_id": f"c-{index}", "email": "x@"})
        assert len(path.read_text().splitlines()) == 6  # on disk as they happen, not at the end
        first, written = spill.finish()
    assert written
    assert [f["index"] for f in first] == [1, 2, 4]
    assert all("payload" not in f for f in first)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == [1, 2, 4, 7, 8, 9]
    assert lines[0]["payload"] == {"external_id": "c-9", "email": "x@"}


def test_a_resumed_try_keeps_committed_lines_and_replaces_the_rest(tmp_path):
    path = tmp_path / "failures.jsonl"
    with _FailureSpill(str(path), start_index=0, keep=10) as spill:
        for index in (1, 5, 12, 15):
            spill.add(_failure(index, "dead_lettered" if index > 10 else "invalid"), {"i": index})
        # killed here: no finish(), and the last line torn half-way
    path.write_text(path.read_text() + '{"index": 17, "stage": "inva')
    with _FailureSpill(str(path), start_index=10, keep=10) as spill:  # resumed after a checkpoint at index 9
        spill.add(_failure(15, "rejected"), {"i": 15})
        first, written = spill.finish()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["index"], line["stage"]) for line in lines] == [(1, "invalid"), (5, "invalid"), (15, "rejected")]
    assert [f["index"] for f in first] == [1, 5, 15] and written


def test_no_failures_writes_no_file_and_empties_a_stale_one(tmp_path):
    path = tmp_path / "failures.jsonl"
    with _FailureSpill(str(path), start_index=0, keep=10) as spill:
        assert spill.finish() == ([], False)
    assert not path.exists()
    path.write_text(json.dumps({"index": 3, "stage": "invalid"}) + "\n")
    with _FailureSpill(str(path), start_index=0, keep=10) as spill:  # a fresh try over the same window: all clean now
        assert spill.finish() == ([], False)
    assert path.read_text() == ""


def test_a_torn_last_line_is_skipped_by_replay(tmp_path):
    path = tmp_path / "failures.jsonl"
    path.write_text(json.dumps({"index": 1, "stage": "dead_lettered", "payload": {"external_id": "a"}}) + "\n"
                    + '{"index": 2, "stage": "dead_lett')
    assert read_failure_payloads(str(path)) == [{"external_id": "a"}]


def test_checkpoint_counts_come_from_the_indexes(tmp_path):
    with _FailureSpill(str(tmp_path / "f.jsonl"), start_index=0, keep=0) as spill:
        for index, stage in ((2, "invalid"), (5, "rejected"), (8, "dead_lettered"), (11, "invalid")):
            spill.add(_failure(index, stage), None)
        progress = Progress(0, {}, spill)
        progress.unchanged(3)
        counts = progress.counts_upto(9)
    assert counts == {"extracted": 10, "sent_ok": 6, "unchanged": 1, "invalid": 1, "rejected": 1,
                      "dead_lettered": 1}


def test_a_remote_failure_file_is_written_at_the_end(tmp_path):
    """Object storage cannot be appended to: the lines wait in a local file until finish(). (A file://
    URL takes the same ObjectStoragePath branch as s3:// would.)"""
    path = f"file://{tmp_path}/run-1/failures.jsonl"
    with _FailureSpill(path, start_index=0, keep=10) as spill:
        spill.add(_failure(4), {"i": 4})
        spill.add(_failure(2, "rejected"), {"i": 2})
        first, written = spill.finish()
    assert written and [f["index"] for f in first] == [2, 4]
    with _FailureSpill(path, start_index=3, keep=10) as spill:  # resumed: index 2 was committed
        spill.add(_failure(4, "dead_lettered"), {"i": 4})
        first, written = spill.finish()
    assert [(f["index"], f["stage"]) for f in first] == [(2, "rejected"), (4, "dead_lettered")]
    assert [p["i"] for p in read_failure_payloads(path, stages=("rejected", "dead_lettered"))] == [2, 4]

"""answers.py: the fast, partial decode of per-item answers concludes exactly what a full parse concludes."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_spotzee.answers import UnusableAnswer, read_item_answers


def _oracle(body: bytes, external_ids: list[str | None]) -> Any:
    """What a complete parse concludes: the reason an answer is unusable, else (error, contact) per item."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "response body is not JSON"
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        return "response has no 'results' list"
    results = payload["results"]
    if len(results) != len(external_ids):
        return f"response has {len(results)} results for {len(external_ids)} items"
    for position, (sent, result) in enumerate(zip(external_ids, results)):
        if not isinstance(result, dict) or result.get("index") != position:
            return f"result {position} has a wrong or missing index"
        returned = result.get("external_id")
        if sent is not None and returned is not None and returned != sent:
            return f"result {position} names a different contact"
        if "error" not in result and "contact" not in result and "state" not in result:
            return f"result {position} has neither an outcome nor an error"
    return [(r.get("error"), r.get("contact")) for r in results]


def _verdict(body: bytes, external_ids: list[str | None]) -> Any:
    try:
        answers = read_item_answers(body, external_ids)
    except UnusableAnswer as exc:
        return str(exc)
    return [(None if a.error is msgspec.UNSET else a.error, a.contact_dict()) for a in answers]


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.text(max_size=4))
_contact = st.one_of(st.none(), st.dictionaries(st.sampled_from(["id", "email", "data"]), _scalar, max_size=3))
_error = st.one_of(st.none(), _scalar, st.fixed_dictionaries({"code": _scalar}, optional={"message": _scalar}))


@st.composite
def _answer(draw: Any, position: int, external_id: str | None) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(_scalar)  # not an object
    result: dict[str, Any] = {}
    if draw(st.integers(0, 10)):
        result["index"] = position if draw(st.integers(0, 8)) else draw(_scalar)
    if draw(st.booleans()):
        result["external_id"] = external_id if draw(st.integers(0, 8)) else draw(st.sampled_from([None, "other"]))
    for name, strategy in (("error", _error), ("contact", _contact), ("state", _scalar)):
        if draw(st.booleans()):
            result[name] = draw(strategy)
    if draw(st.booleans()):
        result["extra"] = {"nested": [1, 2, {"x": None}]}
    return result


@st.composite
def _case(draw: Any) -> tuple[bytes, list[str | None]]:
    ids = draw(st.lists(st.one_of(st.none(), st.sampled_from(["crm-1", "crm-2", "007"])), max_size=5))
    count = len(ids) if draw(st.integers(0, 10)) else draw(st.integers(0, 6))
    results = [draw(_answer(i, ids[i] if i < len(ids) else None)) for i in range(count)]
    shape = draw(st.integers(0, 20))
    payload: Any = {"results": results, "meta": {"n": 1}} if shape else draw(st.sampled_from(
        [[], {"results": None}, {"result": results}, "text"]))
    return json.dumps(payload).encode(), ids


@settings(max_examples=600, deadline=None)
@given(_case())
def test_the_fast_decode_concludes_what_a_full_parse_concludes(case: tuple[bytes, list[str | None]]) -> None:
    body, ids = case
    assert _verdict(body, ids) == _oracle(body, ids)


def test_contacts_stay_undecoded_until_asked_for() -> None:
    contact = {"id": 7, "external_id": "crm-1", "email": "jane@example.com", "data": {"vip": True}}
    body = json.dumps({"results": [{"index": 0, "external_id": "crm-1", "contact": contact}]}).encode()
    [answer] = read_item_answers(body, ["crm-1"])
    assert isinstance(answer.contact, msgspec.Raw)
    assert answer.contact_dict() == contact
    assert answer.error is msgspec.UNSET and answer.has_outcome


@pytest.mark.parametrize(("body", "reason"), [
    (b"<html>502</html>", "response body is not JSON"),
    (b"", "response body is not JSON"),
    (b'{"results": [{"index": 0, "state": 1}, 3]}', "response has 2 results for 1 items"),
    (b'{"results": [7]}', "result 0 has a wrong or missing index"),
    (b'{"results": {"index": 0}}', "response has no 'results' list"),
])
def test_unusable_answers_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(UnusableAnswer, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_item_answers(body, ["crm-1"])


def test_what_only_the_complete_parsers_accept_is_still_read() -> None:
    """msgspec refuses NaN; the stdlib and pydantic_core accept it: the answer is read the slow way."""
    body = b'{"results": [{"index": 0, "external_id": "crm-1", "contact": {"score": NaN}}]}'
    [answer] = read_item_answers(body, ["crm-1"])
    assert answer.has_outcome and answer.contact_dict()["score"] != answer.contact_dict()["score"]

"""The bytes on the wire: how request bodies are read and answers written (msgspec with a stdlib fallback
must read and write exactly what the stdlib alone did)."""

from __future__ import annotations

import json

from tests.emulator.helpers import CONTACT_FIELDS, assert_problem

CONTACT_ORDER = list(CONTACT_FIELDS)


def _post(client, path: str, content: bytes):
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


def test_answer_is_compact_json_in_the_documented_key_order(client, emulator):
    body = [{"external_id": "w-1", "email": "w1@example.com", "data": {"plan": "pro", "ltv": 12.5, "vip": True}}]
    r = client.post("/users/batch", json=body)
    assert r.status_code == 200
    out = r.json()
    assert r.content == json.dumps(out, separators=(",", ":")).encode()  # what json.dumps writes, byte for byte
    assert list(out) == ["results", "succeeded", "failed"]
    assert list(out["results"][0]) == ["index", "external_id", "anonymous_id", "contact"]
    assert list(out["results"][0]["contact"]) == CONTACT_ORDER
    got = client.get("/users/w-1")
    assert list(got.json()) == CONTACT_ORDER and got.content == json.dumps(got.json(), separators=(",", ":")).encode()
    listed = client.get("/users").json()
    assert [list(c) for c in listed["results"]] == [CONTACT_ORDER]
    emulator.advance_clock(1)
    toggled = client.patch("/users/w-1/subscriptions", json=[{"subscription_id": 7, "state": 1}])
    assert list(toggled.json()) == CONTACT_ORDER and toggled.json()["subscriptions"] == {"7": 1}
    batch = client.post("/subscriptions/batch", json=[{"external_id": "w-1", "subscription_id": 8, "state": 2},
                                                      {"external_id": "nobody", "subscription_id": 8, "state": 2}])
    answer = batch.json()
    assert batch.content == json.dumps(answer, separators=(",", ":")).encode()
    assert answer["results"][0] == {"index": 0, "subscription_id": 8, "external_id": "w-1", "anonymous_id": None,
                                    "state": 2}
    assert list(answer["results"][0]) == ["index", "subscription_id", "external_id", "anonymous_id", "state"]
    assert list(answer["results"][1]) == ["index", "external_id", "anonymous_id", "subscription_id", "state",
                                          "error"]


def test_the_same_contact_twice_in_one_batch_is_answered_as_it_was_after_each_item(client, emulator):
    out = client.post(
        "/users/batch",
        json=[{"external_id": "twice", "data": {"a": 1}}, {"external_id": "twice", "email": "t@example.com",
                                                            "data": {"b": 2}}],
    ).json()
    first, second = (x["contact"] for x in out["results"])
    assert first["id"] == second["id"]
    assert first["data"] == {"a": 1} and first["email"] is None
    assert second["data"] == {"a": 1, "b": 2} and second["email"] == "t@example.com"


def test_non_ascii_text_is_escaped_as_before(client, emulator):
    r = client.post("/users/batch", json=[{"external_id": "zoë-1", "data": {"name": "Zoë 東京"}}])
    assert r.status_code == 200
    assert b"zo\\u00eb-1" in r.content and b"\\u6771\\u4eac" in r.content and r.content.isascii()
    assert r.content == json.dumps(r.json(), separators=(",", ":")).encode()
    assert r.json()["results"][0]["contact"]["data"] == {"name": "Zoë 東京"}


def test_a_lone_surrogate_is_read_and_written_back_by_the_stdlib(client, emulator):
    r = _post(client, "/users/batch", b'[{"external_id": "s-1", "data": {"odd": "\\ud800x"}}]')
    assert r.status_code == 200, r.text
    assert b'"odd":"\\ud800x"' in r.content
    got = client.get("/users/s-1")
    assert got.status_code == 200 and b'"odd":"\\ud800x"' in got.content


def test_a_number_beyond_float_range_is_an_item_error_not_a_body_error(client, emulator):
    r = _post(client, "/users/batch", b'[{"external_id": "big", "data": {"n": 1e400}}, {"external_id": "fine"}]')
    assert r.status_code == 200
    out = r.json()
    assert (out["succeeded"], out["failed"]) == (1, 1)
    assert out["results"][0]["error"] == {
        "code": "parameter_invalid_format", "message": "data: contains NaN or infinity", "field": "data"}
    huge = 10**40
    r = _post(client, "/users/batch", f'[{{"external_id": "int", "data": {{"n": {huge}}}}}]'.encode())
    assert r.json()["results"][0]["contact"]["data"] == {"n": huge}


def test_body_refusals_are_worded_as_before(client, emulator):
    cases = [
        (b"   ", "parameter_missing", "A JSON array body is required."),
        (b'[{"external_id": "\xff"}]', "parameter_invalid_format", "The body is not valid UTF-8."),
        (b"[NaN]", "parameter_invalid_format", "The body is not valid JSON."),
        (b"[1] x", "parameter_invalid_format", "The body is not valid JSON."),
        (b'\xef\xbb\xbf[{"external_id": "bom"}]', "parameter_invalid_format", "The body is not valid JSON."),
        (b'{"external_id": "x"}', "parameter_invalid_format", "The body must be a JSON array of 1 to 100 items."),
        (b"[]", "parameter_invalid_format", "The body must hold 1 to 100 items; it holds 0."),
    ]
    for content, code, message in cases:
        body = assert_problem(_post(client, "/events", content), 400, code)
        assert body["message"] == message, content


def test_event_duplicates_ignore_key_order_but_not_values(client, emulator):
    events = [
        {"name": "e", "external_id": "d-1", "data": {"a": 1, "b": {"x": 1, "y": 2}}},
        {"name": "e", "external_id": "d-1", "data": {"b": {"y": 2, "x": 1}, "a": 1}},  # same, keys reordered
        {"name": "e", "external_id": "d-1", "data": {"a": 1.0, "b": {"x": 1, "y": 2}}},  # 1.0 is not 1
        {"name": "e", "external_id": "d-1", "data": {"a": "é"}},
        {"name": "e", "external_id": "d-1", "data": {"a": "é"}},
    ]
    assert client.post("/events", json=events).status_code == 204
    assert [e["duplicate"] for e in emulator.events()] == [False, True, False, False, True]


def test_the_admin_api_answers_for_a_contact_holding_a_lone_surrogate(client, emulator):
    r = _post(client, "/users/batch", b'[{"external_id": "s-2", "data": {"odd": "\\udc80y"}}]')
    assert r.status_code == 200, r.text
    page = emulator.contacts()
    [contact] = [c for c in page if c["external_id"] == "s-2"]
    assert contact["data"] == {"odd": "\udc80y"}
    assert emulator.contact(external_id="s-2")["data"] == {"odd": "\udc80y"}

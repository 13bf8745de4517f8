"""Users: synchronous batch upsert, asynchronous upsert with a visibility delay, lookups, linking."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from tests.emulator.helpers import CONTACT_FIELDS, assert_problem, assert_rate_headers

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CONTACT_KEYS = set(CONTACT_FIELDS)


def test_batch_upsert_returns_contacts_in_request_order(client, emulator):
    body = [
        {
            "external_id": "cust-1",
            "email": "jane@example.com",
            "phone": "+61 400 123 456",
            "timezone": "Australia/Sydney",
            "locale": "en_AU",
            "data": {"first_name": "Jane", "plan": "pro"},
        },
        {"external_id": "cust-2", "anonymous_id": "anon-2"},
        {"anonymous_id": "anon-3"},
    ]
    r = client.post("/users/batch", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert_rate_headers(r)
    out = r.json()
    assert (out["succeeded"], out["failed"]) == (3, 0)
    assert [x["index"] for x in out["results"]] == [0, 1, 2]
    assert [(x["external_id"], x["anonymous_id"]) for x in out["results"]] == [
        ("cust-1", None),
        ("cust-2", "anon-2"),
        (None, "anon-3"),
    ]
    c = out["results"][0]["contact"]
    assert set(c) == CONTACT_KEYS
    assert c["project_id"] == 42 and c["has_push_device"] is False and c["devices"] == []
    assert c["phone"] == "+61400123456"  # normalised to E.164
    assert c["locale"] == "en-AU"
    assert c["data"] == {"first_name": "Jane", "plan": "pro"}
    assert ISO_MS_Z.match(c["created_at"]) and ISO_MS_Z.match(c["updated_at"])
    ids = [x["contact"]["id"] for x in out["results"]]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_batch_upsert_updates_by_external_id_and_merges_data_shallowly(client, emulator):
    first = client.post(
        "/users/batch",
        json=[{"external_id": "c", "email": "a@example.com", "data": {"a": 1, "nested": {"x": 1}}}],
    ).json()
    emulator.advance_clock(2)
    second = client.post(
        "/users/batch", json=[{"external_id": "c", "data": {"b": 2, "nested": {"y": 2}}}]
    ).json()
    c1, c2 = first["results"][0]["contact"], second["results"][0]["contact"]
    assert c1["id"] == c2["id"]
    assert c2["email"] == "a@example.com"  # absent fields are left alone
    assert c2["data"] == {"a": 1, "b": 2, "nested": {"y": 2}}  # shallow merge
    assert c2["created_at"] == c1["created_at"] and c2["updated_at"] > c1["updated_at"]
    assert emulator.contact("c")["upserts"] == 2
    assert emulator.ledger_summary()["contacts_upserted_more_than_once"] == 1


def test_batch_upsert_reports_per_item_errors(client, emulator):
    body = [
        {"external_id": "ok-1"},
        {"email": "nobody@example.com"},  # no identifier
        {"external_id": "bad-email", "email": "not-an-email"},
        {"external_id": "bad-phone", "phone": "12"},
        {"external_id": "bad-tz", "timezone": "Mars/Olympus"},
        {"external_id": "bad-data", "data": [1, 2]},
        "not an object",
        {"external_id": {"nested": 1}},
        {"external_id": "ok-2", "email": ""},
    ]
    out = client.post("/users/batch", json=body).json()
    assert (out["succeeded"], out["failed"]) == (2, 7)
    codes = [
        (x["index"], x.get("error", {}).get("code"), x.get("error", {}).get("field")) for x in out["results"]
    ]
    assert codes == [
        (0, None, None),
        (1, "parameter_missing", "external_id"),
        (2, "parameter_invalid_format", "email"),
        (3, "parameter_invalid_format", "phone"),
        (4, "parameter_invalid_format", "timezone"),
        (5, "parameter_invalid_format", "data"),
        (6, "parameter_invalid_format", "item"),
        (7, "parameter_invalid_format", "external_id"),
        (8, None, None),
    ]
    assert out["results"][2]["external_id"] == "bad-email"  # failed items keep their identifiers
    assert "not-an-email" not in r_text(out)  # messages never echo the value
    assert emulator.ledger_summary()["contacts"] == 2


def r_text(obj: dict[str, Any]) -> str:
    import json

    return json.dumps([x.get("error") for x in obj["results"]])


def test_anonymous_contact_gets_external_id_when_linked(client, emulator):
    anon = client.post("/users/batch", json=[{"anonymous_id": "anon-1", "data": {"seen": True}}]).json()
    linked = client.post("/users/batch", json=[{"anonymous_id": "anon-1", "external_id": "cust-1"}]).json()
    a, b = anon["results"][0]["contact"], linked["results"][0]["contact"]
    assert a["id"] == b["id"]
    assert (b["external_id"], b["anonymous_id"], b["data"]) == ("cust-1", "anon-1", {"seen": True})
    assert client.get("/users/cust-1").json()["id"] == a["id"]


def test_anonymous_contact_is_merged_into_existing_identified_contact(client, emulator):
    client.post("/users/batch", json=[{"external_id": "cust-1", "email": "jane@example.com"}])
    client.post(
        "/users/batch",
        json=[{"anonymous_id": "anon-1", "data": {"from_anon": 1}, "timezone": "Europe/Paris"}],
    )
    out = client.post("/users/batch", json=[{"anonymous_id": "anon-1", "external_id": "cust-1"}]).json()
    c = out["results"][0]["contact"]
    assert (c["email"], c["timezone"], c["data"]) == ("jane@example.com", "Europe/Paris", {"from_anon": 1})
    summary = emulator.ledger_summary()
    assert (summary["contacts"], summary["contacts_merged"]) == (1, 1)


def test_anonymous_id_of_another_identified_contact_is_rejected(client, emulator):
    client.post("/users/batch", json=[{"external_id": "a", "anonymous_id": "anon-a"}])
    out = client.post("/users/batch", json=[{"external_id": "b", "anonymous_id": "anon-a"}]).json()
    err = out["results"][0]["error"]
    assert (err["code"], err["field"]) == ("parameter_invalid_format", "anonymous_id")
    assert emulator.ledger_summary()["contacts"] == 1


def test_get_user_by_numeric_id_and_escaped_external_id(client, emulator):
    out = client.post("/users/batch", json=[{"external_id": "crm/42 ü", "email": "x@example.com"}]).json()
    cid = out["results"][0]["contact"]["id"]
    by_ext = client.get("/users/" + quote("crm/42 ü", safe=""))
    assert by_ext.status_code == 200 and by_ext.json()["id"] == cid
    by_id = client.get(f"/users/{cid}")
    assert by_id.status_code == 200 and by_id.json()["external_id"] == "crm/42 ü"
    assert_problem(client.get("/users/nobody"), 404, "resource_missing")
    assert_problem(client.get("/users/999999"), 404, "resource_missing")


def test_numeric_external_id_wins_over_contact_id(client, emulator):
    client.post("/users/batch", json=[{"external_id": "first"}, {"external_id": 1}])
    # contact id 1 is "first", but the external_id "1" belongs to the second contact
    assert client.get("/users/1").json()["external_id"] == "1"


def test_async_upsert_becomes_visible_after_the_delay(client, emulator):
    emulator.configure(async_delay_seconds=30)
    r = client.patch("/users", json=[{"external_id": "late", "email": "late@example.com"}])
    assert r.status_code == 204 and r.content == b""
    assert_rate_headers(r)
    assert_problem(client.get("/users/late"), 404, "resource_missing")
    assert client.get("/users").json()["results"] == []
    assert emulator.ledger_summary()["pending_async_items"] == 1
    emulator.advance_clock(30.5)
    got = client.get("/users/late")
    assert got.status_code == 200 and got.json()["email"] == "late@example.com"
    summary = emulator.ledger_summary()
    assert (summary["pending_async_items"], summary["upsert_applications"]) == (0, 1)


def test_async_upsert_with_default_delay_is_visible_half_a_second_later(client, emulator):
    import time

    assert client.patch("/users", json=[{"external_id": "soon"}]).status_code == 204
    assert client.get("/users/soon").status_code == 404
    time.sleep(0.6)
    assert client.get("/users/soon").status_code == 200


def test_async_upsert_drops_invalid_items_silently(client, emulator):
    emulator.configure(async_delay_seconds=0)
    r = client.patch(
        "/users", json=[{"external_id": "good"}, {"email": "bad"}, {"external_id": "x", "phone": "1"}, 7]
    )
    assert r.status_code == 204
    assert client.get("/users/good").status_code == 200
    stats = emulator.stats()
    assert stats["dropped_items"] == {"PATCH /users": 3}
    assert emulator.ledger_summary()["dropped_items"] == 3


def test_earlier_anonymous_ids_keep_resolving(client, emulator):
    client.post("/users/batch", json=[{"external_id": "cust-1", "anonymous_id": "anon-a"}])
    client.post("/users/batch", json=[{"external_id": "cust-1", "anonymous_id": "anon-b"}])
    c = emulator.contact("cust-1")
    assert c["anonymous_id"] == "anon-b" and c["anonymous_ids"] == ["anon-a", "anon-b"]
    # an event under the old anonymous id still lands on the same contact
    client.post("/events", json=[{"name": "e", "anonymous_id": "anon-a"}])
    assert emulator.events()[0]["contact_id"] == c["id"]
    assert emulator.contact(anonymous_id="anon-a")["id"] == c["id"]
    assert emulator.ledger_summary()["contacts"] == 1

"""POST /events: applied at once, profile updates via the user block, invalid events dropped, duplicates."""

from __future__ import annotations

EVENT = {
    "name": "product_viewed",
    "anonymous_id": "anon-2c8a3e",
    "external_id": "cust-9f4b21",
    "data": {"product_id": "sku-1024", "value": 49.95, "currency": "AUD"},
    "user": {
        "email": "jane@example.com",
        "phone": "+61400123456",
        "timezone": "Australia/Sydney",
        "locale": "en-AU",
        "data": {"plan": "pro"},
    },
    "created_at": "2026-04-28T05:14:00.000Z",
}


def test_documented_example_event_creates_and_updates_the_contact(client, emulator):
    r = client.post("/events", json=[EVENT], headers={"Idempotency-Key": "ev-1"})
    assert r.status_code == 204 and r.content == b""
    c = client.get("/users/cust-9f4b21").json()
    assert (c["anonymous_id"], c["email"], c["phone"], c["timezone"], c["locale"], c["data"]) == (
        "anon-2c8a3e",
        "jane@example.com",
        "+61400123456",
        "Australia/Sydney",
        "en-AU",
        {"plan": "pro"},
    )
    [ev] = emulator.events()
    assert ev["name"] == "product_viewed" and ev["external_id"] == "cust-9f4b21"
    assert ev["created_at"] == "2026-04-28T05:14:00.000Z" and ev["data"]["value"] == 49.95
    assert ev["idempotency_key"] == "ev-1" and ev["contact_id"] == c["id"] and ev["duplicate"] is False


def test_event_without_user_block_attaches_to_existing_contact(client, emulator):
    client.post("/users/batch", json=[{"external_id": "c1", "email": "a@example.com"}])
    before = client.get("/users/c1").json()
    emulator.advance_clock(1)
    assert client.post("/events", json=[{"name": "login", "external_id": "c1"}]).status_code == 204
    after = client.get("/users/c1").json()
    assert after == before  # no profile change, no updated_at bump
    [ev] = emulator.events(name="login")
    assert ev["contact_id"] == before["id"] and ev["created_at"]  # defaults to the receive time


def test_event_links_anonymous_history_to_the_identified_contact(client, emulator):
    client.post("/events", json=[{"name": "page_view", "anonymous_id": "anon-1"}])
    client.post("/users/batch", json=[{"external_id": "cust-1"}])
    client.post("/events", json=[{"name": "signed_up", "anonymous_id": "anon-1", "external_id": "cust-1"}])
    summary = emulator.ledger_summary()
    assert (summary["contacts"], summary["contacts_merged"], summary["events_applied"]) == (1, 1, 2)
    assert client.get("/users/cust-1").json()["anonymous_id"] == "anon-1"


def test_invalid_events_are_dropped_silently_and_counted(client, emulator):
    body = [
        {"name": "ok", "external_id": "c1"},
        {"name": "", "external_id": "c1"},
        {"name": "no-ids"},
        {"name": "bad-time", "external_id": "c1", "created_at": "yesterday"},
        {"name": "bad-user", "external_id": "c1", "user": {"email": "nope"}},
        {"name": "bad-user-type", "external_id": "c1", "user": []},
        {"name": "bad-data", "external_id": "c1", "data": "x"},
        None,
    ]
    assert client.post("/events", json=body).status_code == 204
    assert [e["name"] for e in emulator.events()] == ["ok"]
    assert emulator.stats()["dropped_items"] == {"POST /events": 7}


def test_duplicate_events_are_detected_in_the_ledger(client, emulator):
    e1 = {"name": "purchase", "external_id": "c1", "created_at": "2026-04-28T05:14:00Z", "data": {"v": 1}}
    e2 = {**e1, "data": {"v": 2}}
    client.post("/events", json=[e1, e2])
    client.post("/events", json=[{**e1, "created_at": "2026-04-28T05:14:00.000+00:00"}])  # same instant
    summary = emulator.ledger_summary()
    assert (summary["events_applied"], summary["events_distinct"], summary["duplicate_events"]) == (3, 2, 1)
    dups = emulator.events(duplicates_only=True)
    assert len(dups) == 1 and dups[0]["data"] == {"v": 1} and dups[0]["duplicate"] is True


def test_events_with_an_idempotency_key_are_not_applied_twice(client, emulator):
    body = [{"name": "purchase", "external_id": "c1", "created_at": "2026-04-28T05:14:00Z"}]
    for _ in range(3):
        r = client.post("/events", json=body, headers={"Idempotency-Key": "batch-7"})
        assert r.status_code == 204
    summary = emulator.ledger_summary()
    assert (summary["events_applied"], summary["duplicate_events"]) == (1, 0)
    assert emulator.stats()["replays"] == 2

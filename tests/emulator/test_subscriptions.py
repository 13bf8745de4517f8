"""PATCH /users/{userId}/subscriptions and POST /subscriptions/batch."""

from __future__ import annotations

from tests.emulator.helpers import assert_problem


def test_toggle_returns_the_refreshed_contact(client, emulator):
    cid = client.post("/users/batch", json=[{"external_id": "cust-1"}]).json()["results"][0]["contact"]["id"]
    emulator.advance_clock(1)
    r = client.patch(
        "/users/cust-1/subscriptions",
        json=[{"subscription_id": 7, "state": 1}, {"subscription_id": 8, "state": 2}],
    )
    assert r.status_code == 200
    c = r.json()
    assert c["id"] == cid and c["subscriptions"] == {"7": 1, "8": 2}
    # by numeric id as well; toggling to the current state is a no-op
    same = client.patch(f"/users/{cid}/subscriptions", json=[{"subscription_id": 7, "state": 1}]).json()
    assert same["updated_at"] == c["updated_at"] and same["subscriptions"] == {"7": 1, "8": 2}
    ledger = emulator.subscriptions()
    assert [(t["subscription_id"], t["state"], t["changed"]) for t in ledger["toggles"]] == [
        (7, 1, True),
        (8, 2, True),
        (7, 1, False),
    ]
    assert sorted((s["subscription_id"], s["state"]) for s in ledger["states"]) == [(7, 1), (8, 2)]
    summary = emulator.ledger_summary()
    assert (summary["subscription_toggles"], summary["subscription_changes"]) == (3, 2)


def test_toggle_errors(client, emulator):
    assert_problem(
        client.patch("/users/nobody/subscriptions", json=[{"subscription_id": 7, "state": 1}]),
        404,
        "resource_missing",
    )
    client.post("/users/batch", json=[{"external_id": "cust-1"}])
    body = assert_problem(
        client.patch(
            "/users/cust-1/subscriptions",
            json=[{"subscription_id": 7, "state": 1}, {"subscription_id": 7, "state": 3}],
        ),
        400,
        "parameter_invalid_format",
    )
    assert body["message"].startswith("[1].state")
    assert_problem(client.patch("/users/cust-1/subscriptions", json=[{"state": 1}]), 400, "parameter_missing")
    assert_problem(
        client.patch("/users/cust-1/subscriptions", json=[{"subscription_id": "7", "state": 1}]),
        400,
        "parameter_invalid_format",
    )
    # nothing was applied by the rejected requests
    assert emulator.ledger_summary()["subscription_toggles"] == 0


def test_subscriptions_batch_per_item_outcomes(client, emulator):
    client.post("/users/batch", json=[{"external_id": "cust-1"}, {"anonymous_id": "anon-2"}])
    body = [
        {"subscription_id": 7, "state": 1, "external_id": "cust-1"},
        {"subscription_id": 7, "state": 0, "anonymous_id": "anon-2"},
        {"subscription_id": 7, "state": 1, "external_id": "ghost"},
        {"subscription_id": 7, "state": 5, "external_id": "cust-1"},
        {"subscription_id": 7, "state": 1},
        {"state": 1, "external_id": "cust-1"},
    ]
    r = client.post("/subscriptions/batch", json=body)
    assert r.status_code == 200
    out = r.json()
    assert (out["succeeded"], out["failed"]) == (2, 4)
    res = out["results"]
    assert res[0] == {
        "index": 0,
        "subscription_id": 7,
        "external_id": "cust-1",
        "anonymous_id": None,
        "state": 1,
    }
    assert res[1]["anonymous_id"] == "anon-2" and "error" not in res[1]
    assert res[2]["error"]["code"] == "resource_missing" and res[2]["external_id"] == "ghost"
    assert res[2]["subscription_id"] == 7 and res[2]["state"] == 1
    assert res[3]["error"]["code"] == "parameter_invalid_format"
    assert res[4]["error"]["code"] == "parameter_missing"
    assert res[5]["error"]["code"] == "parameter_missing" and res[5]["error"]["field"] == "subscription_id"
    assert client.get("/users/cust-1").json()["subscriptions"] == {"7": 1}
    states = emulator.subscriptions(subscription_id=7)["states"]
    assert sorted((str(s["external_id"]), s["state"]) for s in states) == [("None", 0), ("cust-1", 1)]

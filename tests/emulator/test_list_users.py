"""GET /users: cursor pagination, sorting, search, and the pagination headers."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import assert_problem, users


def _seed(client: httpx.Client, n: int) -> None:
    for start in range(0, n, 100):
        batch = [
            {"external_id": f"cust-{i:03d}", "email": f"user{i}@example.com"}
            for i in range(start, min(n, start + 100))
        ]
        assert client.post("/users/batch", json=batch).json()["failed"] == 0


def test_default_page_and_headers(client, emulator):
    _seed(client, 30)
    r = client.get("/users")
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"results", "nextCursor", "prevCursor", "limit"}
    assert body["limit"] == 25 and len(body["results"]) == 25
    assert body["prevCursor"] is None and body["nextCursor"]
    assert (r.headers["x-total-count"], r.headers["x-page"], r.headers["x-limit"]) == ("30", "1", "25")
    assert [c["external_id"] for c in body["results"]] == [f"cust-{i:03d}" for i in range(25)]


def test_walk_forward_then_backward(client, emulator):
    _seed(client, 23)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        r = client.get("/users", params=params)
        body = r.json()
        pages += 1
        assert r.headers["x-page"] == str(pages)
        seen += [c["id"] for c in body["results"]]
        if body["nextCursor"] is None:
            break
        cursor = body["nextCursor"]
    assert pages == 5 and len(seen) == 23 and seen == sorted(seen)
    # back from the last page using prevCursor (the cursor remembers its direction)
    back = client.get("/users", params={"limit": 5, "cursor": body["prevCursor"]}).json()
    assert [c["id"] for c in back["results"]] == seen[15:20]
    # an explicit direction works too
    back2 = client.get(
        "/users", params={"limit": 5, "cursor": body["prevCursor"], "direction": "backward"}
    ).json()
    assert back2["results"] == back["results"]


def test_cursor_is_stable_across_inserts(client, emulator):
    _seed(client, 10)
    first = client.get("/users", params={"limit": 4}).json()
    client.post("/users/batch", json=users(3, prefix="new-"))  # appended after the existing ones
    second = client.get("/users", params={"limit": 4, "cursor": first["nextCursor"]}).json()
    assert [c["external_id"] for c in second["results"]] == ["cust-004", "cust-005", "cust-006", "cust-007"]


def test_sort_descending_and_by_updated_at(client, emulator):
    _seed(client, 5)
    desc = client.get("/users", params={"sort": "-id"}).json()["results"]
    assert [c["external_id"] for c in desc] == [f"cust-{i:03d}" for i in (4, 3, 2, 1, 0)]
    emulator.advance_clock(1)
    client.post("/users/batch", json=[{"external_id": "cust-001", "locale": "fr"}])
    by_updated = client.get("/users", params={"sort": "-updated_at", "limit": 2}).json()
    assert [c["external_id"] for c in by_updated["results"]] == ["cust-001", "cust-004"]
    nxt = client.get("/users", params={"sort": "-updated_at", "limit": 2, "cursor": by_updated["nextCursor"]})
    assert [c["external_id"] for c in nxt.json()["results"]] == ["cust-003", "cust-002"]
    asc = client.get("/users", params={"sort": "updated_at"}).json()["results"]
    assert asc[-1]["external_id"] == "cust-001"


def test_backward_without_cursor_returns_the_last_page(client, emulator):
    _seed(client, 12)
    r = client.get("/users", params={"limit": 5, "direction": "backward"})
    body = r.json()
    assert [c["external_id"] for c in body["results"]] == [f"cust-{i:03d}" for i in range(7, 12)]
    assert body["nextCursor"] is None and body["prevCursor"]
    assert r.headers["x-page"] == "3"


def test_search_matches_ids_email_and_phone(client, emulator):
    client.post(
        "/users/batch",
        json=[
            {"external_id": "alpha", "email": "jane@example.com"},
            {"external_id": "beta", "phone": "+61400123456"},
            {"anonymous_id": "anon-zeta"},
        ],
    )

    def q(text):
        r = client.get("/users", params={"q": text})
        return sorted(c["external_id"] or c["anonymous_id"] for c in r.json()["results"]), r.headers[
            "x-total-count"
        ]

    assert q("JANE@") == (["alpha"], "1")
    assert q("+6140012") == (["beta"], "1")
    assert q("zeta") == (["anon-zeta"], "1")
    assert q("ta") == (["anon-zeta", "beta"], "2")
    assert q("nothing") == ([], "0")


def test_search_cursor_keeps_the_query(client, emulator):
    _seed(client, 30)
    first = client.get("/users", params={"q": "cust-01", "limit": 4}).json()
    assert [c["external_id"] for c in first["results"]] == [f"cust-01{i}" for i in range(4)]
    second = client.get("/users", params={"cursor": first["nextCursor"]}).json()
    assert [c["external_id"] for c in second["results"]] == [f"cust-01{i}" for i in range(4, 8)]
    assert_problem(
        client.get("/users", params={"cursor": first["nextCursor"], "q": "other"}),
        400,
        "parameter_invalid_format",
    )


def test_invalid_list_parameters(client, emulator):
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"limit": -1},
        {"direction": "sideways"},
        {"sort": "email"},
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJ4IjoxfQ"},
    ):
        assert_problem(client.get("/users", params=params), 400, "parameter_invalid_format")
    assert client.get("/users", params={"limit": 100}).status_code == 200
    assert client.get("/users", params={"limit": 1}).status_code == 200


def test_order_indexes_compact_and_keep_their_order():
    """Past 1,024 stale entries (and over half the index) both order indexes are compacted; listings by id
    and by updated_at stay exactly what a full sort of the live contacts gives."""
    from airflow_provider_spotzee.testing.contacts import ContactStore

    store = ContactStore()
    for i in range(2000):
        c, _ = store.identify(f"c-{i}", None, "t0")
        store.touch(c, "t0")
    for i in range(2100):  # anonymous contacts merged into known ones: stale entries in both indexes
        a, _ = store.identify(None, f"anon-{i}", "t1")
        store.touch(a, "t1")
        store.identify(f"c-{i % 2000}", f"anon-{i}", "t1")
    for rnd in range(2):
        for i in range(1999, -1, -2):  # every other contact updated twice, in reverse order
            store.touch(store.by_external[f"c-{i}"], f"t{2 + rnd}")
    assert len(store._upd_index.seqs) < 2000 + 2100 + 2000  # compacted on the way (stale: under half)
    live = list(store.by_id.values())
    assert len(live) == 2000
    by_update = sorted(live, key=lambda c: c.useq)
    got, more = store.scan("updated_at", False, None, False, 5000, None)
    assert [c.id for c in got] == [c.id for c in by_update] and not more
    got, _ = store.scan("updated_at", True, None, False, 10, None)
    assert [c.id for c in got] == [c.id for c in reversed(by_update)][:10]
    got, _ = store.scan("id", True, None, True, 5000, None)
    assert [c.id for c in got] == sorted((c.id for c in live), reverse=True)
    assert store._id_index.seqs == sorted(c.id for c in live)  # the 2,100 merged-away contacts dropped

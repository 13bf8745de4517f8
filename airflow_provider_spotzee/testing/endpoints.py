"""The seven client endpoints. Each takes the state and the decoded request, applies it, and returns
``(status, payload, extra_headers)``; request-level failures raise :class:`ApiError`.

Everything here is synchronous: a request's items are applied atomically with respect to others.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.testing import items as parse
from airflow_provider_spotzee.testing.clock import iso
from airflow_provider_spotzee.testing.contacts import SORT_FIELDS, Contact, ContactView
from airflow_provider_spotzee.testing.problems import ApiError
from airflow_provider_spotzee.testing.state import EmulatorState
from airflow_provider_spotzee.validation import PARAMETER_INVALID_FORMAT, FieldError

Result = tuple[int, Any, list[tuple[bytes, bytes]]]

RESOURCE_MISSING = "resource_missing"
INTERNAL_ERROR = "internal_error"

DEFAULT_LIMIT = 25
MAX_LIMIT = MAX_BATCH_SIZE


class UpsertResult(msgspec.Struct, gc=False):
    """One applied item of ``POST /users/batch`` (a failed one is a dict with ``error``)."""

    index: int
    external_id: str | None
    anonymous_id: str | None
    contact: ContactView


class ToggleResult(msgspec.Struct, gc=False):
    """One applied item of ``POST /subscriptions/batch`` (a failed one is a dict with ``error``)."""

    index: int
    subscription_id: int
    external_id: str | None
    anonymous_id: str | None
    state: int


@dataclass(slots=True)
class Request:
    """What an endpoint needs to know about the request besides its body."""

    endpoint: str
    now: float
    idempotency_key: str | None
    query: bytes = b""
    user_id: str | None = None


def _item_error(
    index: int, external_id: Any, anonymous_id: Any, exc: FieldError, **extra: Any
) -> dict[str, Any]:
    out = {"index": index, "external_id": external_id, "anonymous_id": anonymous_id, **extra}
    out["error"] = {"code": exc.code, "message": f"{exc.field}: {exc.message}", "field": exc.field}
    return out


def _injected_item_error() -> FieldError:
    return FieldError("item", INTERNAL_ERROR, "transient failure, retry this item in a new request")


# -- users -----------------------------------------------------------------------------------------------
def upsert_async(st: EmulatorState, items: list[Any], req: Request) -> Result:
    """``PATCH /users``: validate, queue the valid items, drop the invalid ones silently; 204."""
    for raw in items:
        try:
            item = parse.upsert_item(raw)
        except FieldError:
            st.drop_item(req.endpoint)
            continue
        st.queue_upsert(item, req.now, req.endpoint)
    return 204, None, []


def upsert_batch(st: EmulatorState, items: list[Any], req: Request) -> Result:
    """``POST /users/batch``: synchronous upsert with a per-item outcome, in request order."""
    ts = iso(req.now)
    project_id = st.config.project_id
    faults = st.faults
    results: list[UpsertResult | dict[str, Any]] = []
    failed = 0
    for index, raw in enumerate(items):
        try:
            item = parse.upsert_item(raw)
        except FieldError as exc:  # an invalid item is named by its ids as sent
            failed += 1
            external_id, anonymous_id = parse.echo_identity(raw)
            results.append(_item_error(index, external_id, anonymous_id, exc))
            continue
        external_id, anonymous_id = item[0], item[1]
        try:
            if faults.item_error():
                st.stats.faults["item_error"] += 1
                raise _injected_item_error()
            c = st.apply_upsert(item, ts)
        except FieldError as exc:
            failed += 1
            results.append(_item_error(index, external_id, anonymous_id, exc))
            continue
        results.append(UpsertResult(index, external_id, anonymous_id, c.view(project_id)))
    return 200, {"results": results, "succeeded": len(items) - failed, "failed": failed}, []


def get_user(st: EmulatorState, req: Request) -> Result:
    c = st.contacts.resolve(req.user_id or "", st.config.numeric_user_ids_first)
    if c is None:
        raise ApiError(RESOURCE_MISSING, "No contact with that id or external_id.")
    return 200, c.view(st.config.project_id), []


# -- GET /users: cursor pagination ------------------------------------------------------------------------
def _encode_cursor(
    field: str,
    desc: bool,
    seq: int,
    backward: bool,
    page: int,
    q: str | None,
    limit: int,
) -> str:
    raw = json.dumps(
        {"f": field, "d": desc, "k": seq, "b": backward, "p": page, "q": q, "l": limit},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
        if not (
            isinstance(data, dict)
            and data.get("f") in SORT_FIELDS
            and isinstance(data.get("d"), bool)
            and type(data.get("k")) is int
            and isinstance(data.get("b"), bool)
            and type(data.get("p")) is int
            and (data.get("q") is None or isinstance(data.get("q"), str))
            and type(data.get("l")) is int
            and 1 <= data["l"] <= MAX_LIMIT
        ):
            raise ValueError
        return data
    except (ValueError, TypeError):
        raise ApiError(PARAMETER_INVALID_FORMAT, "cursor: is not a cursor issued by this API") from None


def _parse_sort(value: str) -> tuple[str, bool]:
    desc = value.startswith("-")
    field = value[1:] if desc else value
    if field not in SORT_FIELDS:
        raise ApiError(
            PARAMETER_INVALID_FORMAT,
            f"sort: must be one of {', '.join(SORT_FIELDS)}, optionally prefixed with -",
        )
    return field, desc


def list_users(st: EmulatorState, req: Request) -> Result:
    params: dict[str, str] = {}
    for name, value in parse_qsl(
        req.query.decode("latin-1"), keep_blank_values=True, errors="replace", encoding="utf-8"
    ):
        params.setdefault(name, value)

    limit = 0
    if "limit" in params:
        text = params["limit"].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise ApiError(PARAMETER_INVALID_FORMAT, f"limit: must be an integer from 1 to {MAX_LIMIT}")
        limit = int(text)
    direction = params.get("direction")
    if direction is not None and direction not in ("forward", "backward"):
        raise ApiError(PARAMETER_INVALID_FORMAT, "direction: must be forward or backward")
    q = params.get("q")
    q = q.strip().lower() or None if q is not None else None
    sort = params.get("sort") or None

    store = st.contacts
    if params.get("cursor"):
        cur = _decode_cursor(params["cursor"])
        field, desc = cur["f"], cur["d"]
        if sort is not None and _parse_sort(sort) != (field, desc):
            raise ApiError(PARAMETER_INVALID_FORMAT, "sort: differs from the sort the cursor was issued for")
        if "q" in params and q != cur["q"]:
            raise ApiError(PARAMETER_INVALID_FORMAT, "q: differs from the search the cursor was issued for")
        q = cur["q"]
        limit = limit or cur["l"]  # a cursor remembers the page size it was issued with
        backward = cur["b"] if direction is None else direction == "backward"
        position: int | None = cur["k"]
        page = max(1, cur["p"] + (-1 if backward else 1))
        total = store.count(q)
    else:
        limit = limit or DEFAULT_LIMIT
        field, desc = _parse_sort(sort or "id")
        backward = direction == "backward"
        position = None
        total = store.count(q)
        page = max(1, math.ceil(total / limit)) if backward else 1

    found, more = store.scan(field, desc, position, backward, limit, q)
    next_cursor = prev_cursor = None
    if found:
        first, last = found[0], found[-1]
        first_seq, last_seq = store.sort_seq(first, field), store.sort_seq(last, field)
        has_before = more if backward else store.scan(field, desc, first_seq, True, 0, q)[1]
        has_after = store.scan(field, desc, last_seq, False, 0, q)[1] if backward else more
        if has_after:
            next_cursor = _encode_cursor(field, desc, last_seq, False, page, q, limit)
        if has_before:
            prev_cursor = _encode_cursor(field, desc, first_seq, True, page, q, limit)
    project_id = st.config.project_id
    body = {
        "results": [c.view(project_id) for c in found],
        "nextCursor": next_cursor,
        "prevCursor": prev_cursor,
        "limit": limit,
    }
    headers = [
        (b"x-total-count", str(total).encode()),
        (b"x-page", str(page).encode()),
        (b"x-limit", str(limit).encode()),
    ]
    return 200, body, headers


# -- events ----------------------------------------------------------------------------------------------
def track_events(st: EmulatorState, items: list[Any], req: Request) -> Result:
    """``POST /events``: apply valid events at once (profile updates included), drop invalid ones; 204."""
    ts = iso(req.now)
    for raw in items:
        try:
            st.apply_event(parse.event_item(raw), req.idempotency_key, ts)
        except FieldError:
            st.drop_item(req.endpoint)
    return 204, None, []


# -- subscriptions -----------------------------------------------------------------------------------------
def toggle_user_subscriptions(st: EmulatorState, items: list[Any], req: Request) -> Result:
    """``PATCH /users/{userId}/subscriptions``: all-or-nothing; returns the refreshed contact."""
    toggles = []
    for index, raw in enumerate(items):
        try:
            toggles.append(parse.toggle_item(raw))
        except FieldError as exc:
            raise ApiError(exc.code, f"[{index}].{exc.field}: {exc.message}") from None
    c = st.contacts.resolve(req.user_id or "", st.config.numeric_user_ids_first)
    if c is None:
        raise ApiError(RESOURCE_MISSING, "No contact with that id or external_id.")
    ts = iso(req.now)
    changed = False
    for subscription_id, state in toggles:
        changed |= st.toggle(c, subscription_id, state, req.endpoint, req.idempotency_key, ts)
    if changed:
        st.contacts.touch(c, ts)
    return 200, c.view(st.config.project_id), []


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def subscriptions_batch(st: EmulatorState, items: list[Any], req: Request) -> Result:
    """``POST /subscriptions/batch``: per-item toggles across contacts."""
    ts = iso(req.now)
    faults = st.faults
    results: list[ToggleResult | dict[str, Any]] = []
    failed = 0
    for index, raw in enumerate(items):
        try:
            sid, state, external_id, anonymous_id = parse.subscription_batch_item(raw)
        except FieldError as exc:  # an invalid item is named by its ids (and toggle) as sent
            failed += 1
            external_id, anonymous_id = parse.echo_identity(raw)
            sent_sid = sent_state = None
            if isinstance(raw, dict):
                sent_sid, sent_state = _int_or_none(raw.get("subscription_id")), _int_or_none(raw.get("state"))
            results.append(
                _item_error(index, external_id, anonymous_id, exc, subscription_id=sent_sid, state=sent_state)
            )
            continue
        try:
            c: Contact | None = st.contacts.find(external_id, anonymous_id)
            if c is None:
                raise FieldError(
                    "external_id" if external_id is not None else "anonymous_id",
                    RESOURCE_MISSING,
                    "contact identity could not be resolved",
                )
            if faults.item_error():
                st.stats.faults["item_error"] += 1
                raise _injected_item_error()
        except FieldError as exc:
            failed += 1
            results.append(
                _item_error(index, external_id, anonymous_id, exc, subscription_id=sid, state=state)
            )
            continue
        if st.toggle(c, sid, state, req.endpoint, req.idempotency_key, ts):
            st.contacts.touch(c, ts)
        results.append(ToggleResult(index, sid, external_id, anonymous_id, state))
    return 200, {"results": results, "succeeded": len(items) - failed, "failed": failed}, []

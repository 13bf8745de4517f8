"""Parsing and validating request items with the shared rules of :mod:`airflow_provider_spotzee.validation`.

Each function takes one decoded JSON item and returns a small normalised tuple, or raises
:class:`FieldError`. No models are built: the emulator works on plain dicts for speed. Unknown keys in
an item are ignored.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_spotzee import validation as v
from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.validation import PARAMETER_INVALID_FORMAT, FieldError

MAX_ITEMS = MAX_BATCH_SIZE


def _require_object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise FieldError("item", PARAMETER_INVALID_FORMAT, "must be a JSON object")
    return raw


def identity(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    external_id = v.identifier("external_id", raw.get("external_id"))
    anonymous_id = v.identifier("anonymous_id", raw.get("anonymous_id"))
    v.require_identity(external_id, anonymous_id)
    return external_id, anonymous_id


def profile(raw: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """First-class profile fields that were given (normalised) and the ``data`` object."""
    fields: dict[str, Any] = {}
    try:
        for name, rule in v.PROFILE_FIELDS.items():
            value = raw.get(name)
            if value is not None:
                value = rule(value)
                if value is not None:
                    fields[name] = value
        data = v.json_data("data", raw.get("data"))
    except FieldError as exc:
        if prefix:
            raise FieldError(prefix + exc.field, exc.code, exc.message) from None
        raise
    return fields, data


def upsert_item(raw: Any) -> tuple[str | None, str | None, dict[str, Any], dict[str, Any] | None]:
    """A ``/users`` item -> ``(external_id, anonymous_id, profile_fields, data)``."""
    raw = _require_object(raw)
    external_id, anonymous_id = identity(raw)
    fields, data = profile(raw)
    return external_id, anonymous_id, fields, data


def event_item(
    raw: Any,
) -> tuple[
    str,
    str | None,
    str | None,
    dict[str, Any] | None,
    str | None,
    dict[str, Any] | None,
    dict[str, Any] | None,
]:
    """An ``/events`` item -> ``(name, external_id, anonymous_id, data, created_at, user_fields, user_data)``."""
    raw = _require_object(raw)
    name = v.event_name(raw.get("name"))
    external_id, anonymous_id = identity(raw)
    data = v.json_data("data", raw.get("data"))
    created_at = v.timestamp("created_at", raw.get("created_at"))
    user = raw.get("user")
    user_fields = user_data = None
    if user is not None:
        if not isinstance(user, dict):
            raise FieldError("user", PARAMETER_INVALID_FORMAT, "must be a JSON object")
        user_fields, user_data = profile(user, prefix="user.")
    return name, external_id, anonymous_id, data, created_at, user_fields, user_data


def toggle_item(raw: Any) -> tuple[int, int]:
    """A ``/users/{userId}/subscriptions`` item -> ``(subscription_id, state)``."""
    raw = _require_object(raw)
    return v.subscription_id(raw.get("subscription_id")), v.subscription_state(raw.get("state"))


def subscription_batch_item(raw: Any) -> tuple[int, int, str | None, str | None]:
    """A ``/subscriptions/batch`` item -> ``(subscription_id, state, external_id, anonymous_id)``."""
    raw = _require_object(raw)
    sid = v.subscription_id(raw.get("subscription_id"))
    state = v.subscription_state(raw.get("state"))
    external_id, anonymous_id = identity(raw)
    return sid, state, external_id, anonymous_id


def echo_identity(raw: Any) -> tuple[str | None, str | None]:
    """Best-effort ids of a (possibly invalid) item, for echoing in per-item results
    (:func:`airflow_provider_spotzee.validation.echo_identifier`, the rule the client reports by)."""
    if not isinstance(raw, dict):
        return None, None
    return v.echo_identifier(raw.get("external_id")), v.echo_identifier(raw.get("anonymous_id"))

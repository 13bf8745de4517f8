"""Plain-function validators for events and subscription toggles: the fast paths of ``send.prepare``.

Like ``models.user_upsert_fields`` for users, each returns the fields the pydantic model would hold (``None``
ones left out, in the model's field order), computed with the very same rules (:mod:`validation`) without
building a model, so ``pydantic_core.to_json`` of the result is byte for byte what the model's serialiser
writes. Each returns ``None`` when it cannot decide: an unknown key, a value of an unusual type, a missing
identity or any rule failing. The model then validates the record and words the error, so a fast path only
ever accepts what the model accepts, with the same values (``tests/unit/test_fastpath_payloads.py`` proves
it with hypothesis).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_spotzee import validation as v

_EVENT_KEYS = frozenset({"external_id", "anonymous_id", "name", "data", "user", "created_at"})
_PROFILE_KEYS = frozenset({*v.PROFILE_FIELDS, "data"})
_TOGGLE_KEYS = frozenset({"external_id", "anonymous_id", "subscription_id", "state"})
_NONE = type(None)


def _identity(record: dict[str, Any], fields: dict[str, Any]) -> bool:
    """``external_id`` then ``anonymous_id`` into ``fields`` (their rule); False when neither is set.
    Raises what the rule raises."""
    for name in ("external_id", "anonymous_id"):
        value = record.get(name)
        if value is not None:
            value = v.identifier(name, value)
            if value is not None:
                fields[name] = value
    return "external_id" in fields or "anonymous_id" in fields


def _profile(user: dict[str, Any]) -> dict[str, Any] | None:
    """An event's ``user`` block as ``UserProfile`` holds it (``None`` fields left out); None: undecided."""
    if not user.keys() <= _PROFILE_KEYS or type(user.get("data")) not in (dict, _NONE):
        return None
    fields: dict[str, Any] = {}
    for name, rule in v.PROFILE_FIELDS.items():
        value = user.get(name)
        if value is not None:
            value = rule(value)
            if value is not None:
                fields[name] = value
    data = user.get("data")
    if data is not None:
        fields["data"] = v.json_data("data", data)
    return fields


def event_fields(record: dict[str, Any]) -> dict[str, Any] | None:
    """The fields ``Event.model_validate(record)`` holds, in field order, or ``None`` (see the module)."""
    if not record.keys() <= _EVENT_KEYS or type(record.get("name")) is not str:
        return None
    data, user = record.get("data"), record.get("user")
    if type(data) not in (dict, _NONE) or type(user) not in (dict, _NONE):
        return None
    fields: dict[str, Any] = {}
    try:
        if not _identity(record, fields):
            return None
        fields["name"] = v.event_name(record["name"])
        if data is not None:
            fields["data"] = v.json_data("data", data)
        if user is not None:
            profile = _profile(user)
            if profile is None:
                return None
            fields["user"] = profile
        created_at = record.get("created_at")
        if created_at is not None:
            created_at = v.timestamp("created_at", created_at)
            if created_at is not None:
                fields["created_at"] = created_at
    except Exception:  # noqa: BLE001 - a failing rule is the model's to report, with its own words
        return None
    return fields


def subscription_toggle_fields(record: dict[str, Any]) -> dict[str, Any] | None:
    """The fields ``SubscriptionToggle.model_validate(record)`` holds, in field order, or ``None``."""
    if not record.keys() <= _TOGGLE_KEYS:
        return None
    subscription_id, state = record.get("subscription_id"), record.get("state")
    if type(subscription_id) is not int or type(state) is not int:  # (bool, IntEnum...: the model decides)
        return None
    fields: dict[str, Any] = {}
    try:
        if not _identity(record, fields):
            return None
        fields["subscription_id"] = v.subscription_id(subscription_id)
        fields["state"] = v.subscription_state(state)
    except Exception:  # noqa: BLE001 - a failing rule is the model's to report, with its own words
        return None
    return fields

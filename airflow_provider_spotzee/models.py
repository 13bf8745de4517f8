"""Pydantic v2 models: what the provider sends to Spotzee, what it gets back, and how it reports.

Payload models validate with the shared rules in :mod:`airflow_provider_spotzee.validation` (the same
functions the emulator uses) and reject unknown fields, so a misspelled column mapping is reported per
record instead of being silently ignored by the API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from airflow_provider_spotzee import validation as v

Stage = Literal["invalid", "rejected", "dead_lettered"]


class _Payload(BaseModel):
    # defer_build: the schema is built on first use (the plain-dict fast paths rarely need it), not at import
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False, defer_build=True)


class _Identified(_Payload):
    external_id: str | None = None
    anonymous_id: str | None = None

    @field_validator("external_id", "anonymous_id", mode="before")
    @classmethod
    def _identifier(cls, value: Any, info: Any) -> str | None:
        return v.identifier(info.field_name, value)

    @model_validator(mode="after")
    def _identity(self) -> _Identified:
        v.require_identity(self.external_id, self.anonymous_id)
        return self


class _Profile(_Payload):
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None
    data: dict[str, Any] | None = None

    @field_validator(*v.PROFILE_FIELDS, mode="before")
    @classmethod
    def _profile_field(cls, value: Any, info: Any) -> str | None:
        return v.PROFILE_FIELDS[info.field_name](value)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> dict[str, Any] | None:
        return v.json_data("data", value)


class UserProfile(_Profile):
    """The optional ``user`` block of an event: profile fields applied with the event."""


class UserUpsert(_Profile, _Identified):
    """One contact for ``POST /users/batch`` or ``PATCH /users``. ``external_id`` is the upsert key."""


#: ``UserUpsert``'s fields in declaration (and serialisation) order, each with the rule its validator applies.
_USER_RULES: dict[str, Callable[[Any], Any]] = {
    "external_id": partial(v.identifier, "external_id"),
    "anonymous_id": partial(v.identifier, "anonymous_id"),
    **v.PROFILE_FIELDS,
    "data": partial(v.json_data, "data"),
}


#: The same, by name: (position in field order, name, rule).
_USER_FIELDS: dict[str, tuple[int, str, Callable[[Any], Any]]] = {
    name: (rank, name, rule) for rank, (name, rule) in enumerate(_USER_RULES.items())}
_DATA_RANK = _USER_FIELDS["data"][0]


def user_upsert_fields(record: dict[str, Any]) -> dict[str, Any] | None:
    """The fields ``UserUpsert.model_validate(record)`` holds (``None`` ones left out, in field order),
    computed with the very same rules but without building a model: the fast path of ``send.prepare``.

    ``None`` when this cannot decide: an unknown key, a record without identity, or any rule failing.
    The model then validates the record and words the error, so the fast path only ever accepts what
    the model accepts, with the same values (tests/unit/test_fast_path.py).

    It walks the record's own keys (fewer than the model's fields, and one lookup each), and puts them in
    field order only when the record had them in another order.
    """
    fields: dict[str, Any] = {}
    last = -1
    in_order = True
    try:
        for key, value in record.items():
            known = _USER_FIELDS.get(key)
            if known is None:
                return None
            rank, name, rule = known
            if rank < last:
                in_order = False
            last = rank
            if value is None:  # every rule maps None to None
                continue
            if rank == _DATA_RANK and type(value) is not dict:
                return None
            value = rule(value)
            if value is not None:
                fields[name] = value
    except Exception:  # noqa: BLE001 - a failing rule is the model's to report, exactly as it does today
        return None
    if "external_id" not in fields and "anonymous_id" not in fields:
        return None
    if not in_order:
        fields = {name: fields[name] for name in _USER_RULES if name in fields}
    return fields


class Event(_Identified):
    """One behavioural event for ``POST /events``."""

    name: str
    data: dict[str, Any] | None = None
    user: UserProfile | None = None
    created_at: str | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return v.event_name(value)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> dict[str, Any] | None:
        return v.json_data("data", value)

    @field_validator("created_at", mode="before")
    @classmethod
    def _created_at(cls, value: Any) -> str | None:
        return v.timestamp("created_at", value)


class SubscriptionChange(_Payload):
    """One item of ``PATCH /users/{userId}/subscriptions`` (the contact is in the path)."""

    subscription_id: int
    state: int

    @field_validator("subscription_id", mode="before")
    @classmethod
    def _subscription_id(cls, value: Any) -> int:
        return v.subscription_id(value)

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> int:
        return v.subscription_state(value)


class SubscriptionToggle(SubscriptionChange, _Identified):
    """One item of ``POST /subscriptions/batch``: set ``state`` of ``subscription_id`` for a contact."""


# --------------------------------------------------------------------------------------------- responses


class Contact(BaseModel):
    """A contact as Spotzee returns it. Unknown fields are kept (the API may add some)."""

    model_config = ConfigDict(extra="allow")

    id: int
    project_id: int | None = None
    external_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


# ------------------------------------------------------------------------------------------- reporting


class ItemFailure(BaseModel):
    """One record that was not applied. Identifiers, a catalogue code and a message: never PII or data."""

    model_config = ConfigDict(frozen=True)

    index: int
    external_id: str | None = None
    anonymous_id: str | None = None
    subscription_id: int | None = None
    stage: Stage
    code: str
    message: str


class SendResult(BaseModel):
    """The outcome of one send through the hook.

    ``submitted == succeeded + unchanged + invalid + rejected + dead_lettered``. ``failures`` holds
    identifiers and codes only; ``payloads`` maps a failed record's index to what was (or would have
    been) sent, for replay files: it may hold personal data and never goes to XCom. A send given an
    ``on_failure`` callback hands each failure and its payload to it instead of keeping them here (the
    operators stream them to the failure file, so a sync with many bad rows does not grow in memory).
    """

    endpoint: str
    submitted: int = 0
    succeeded: int = 0
    unchanged: int = 0
    invalid: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    replayed: int = 0  # requests Spotzee answered as replays (Idempotent-Replayed: true)
    replayed_items: int = 0  # items counted in ``succeeded`` whose confirmation was such a replay
    elapsed_seconds: float = 0.0
    contacts: list[Contact] = Field(default_factory=list)
    failures: list[ItemFailure] = Field(default_factory=list)
    payloads: dict[int, Any] = Field(default_factory=dict, repr=False)
    _on_failure: Callable[[ItemFailure, Any], None] | None = PrivateAttr(default=None)

    @classmethod
    def start(cls, endpoint: str, on_failure: Callable[[ItemFailure, Any], None] | None = None) -> SendResult:
        """An empty result; with ``on_failure`` its failures go there instead of being kept."""
        result = cls(endpoint=endpoint)
        result._on_failure = on_failure
        return result

    def add_failure(self, failure: ItemFailure, payload: Any = None) -> None:
        """Count one failure in its stage and keep it (or hand it to ``on_failure``)."""
        if failure.stage == "rejected":
            self.rejected += 1
        elif failure.stage == "dead_lettered":
            self.dead_lettered += 1
        else:
            self.invalid += 1
        if self._on_failure is not None:
            self._on_failure(failure, payload)
            return
        self.failures.append(failure)
        if payload is not None:
            self.payloads[failure.index] = payload

    @property
    def balanced(self) -> bool:
        return self.submitted == self.succeeded + self.unchanged + self.invalid + self.rejected + self.dead_lettered


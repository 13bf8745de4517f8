"""Field rules shared by the client-side models and the emulator.

Spotzee validates every item on write (see ``docs/api-contract.md``). The provider checks the same rules
before sending so that invalid records are reported per item (``stage="invalid"``) instead of being
silently dropped by the asynchronous endpoints. The emulator uses the very same functions, so "what the
client rejects" and "what the server rejects" cannot drift apart.

Every check raises :class:`FieldError` with a code from Spotzee's error catalogue. The message never
contains the offending value (it may be an email address or a phone number).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from functools import lru_cache
from typing import Any

import email_validator
import langcodes
import phonenumbers

PARAMETER_MISSING = "parameter_missing"
PARAMETER_INVALID_FORMAT = "parameter_invalid_format"

MAX_TIMEZONE_LEN = 50
MAX_LOCALE_LEN = 255
MAX_IDENTIFIER_LEN = 255
SUBSCRIPTION_STATES = frozenset({0, 1, 2})

_CACHE = 65536


class FieldError(ValueError):
    """One field failed a Spotzee rule. ``code`` is the API's catalogue code."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.message = message


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def identifier(field: str, value: Any) -> str | None:
    """An ``external_id`` / ``anonymous_id``: a non-empty string (numbers are accepted and stringified)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "must be a string")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > MAX_IDENTIFIER_LEN:
        raise FieldError(field, PARAMETER_INVALID_FORMAT, f"longer than {MAX_IDENTIFIER_LEN} characters")
    if _CONTROL.search(text):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "contains control characters")
    return text


def require_identity(external_id: str | None, anonymous_id: str | None) -> None:
    if external_id is None and anonymous_id is None:
        raise FieldError("external_id", PARAMETER_MISSING, "external_id or anonymous_id is required")


@lru_cache(maxsize=_CACHE)
def _email(value: str) -> str:
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise FieldError("email", PARAMETER_INVALID_FORMAT, "is not a valid RFC 5322 address") from exc


def email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError("email", PARAMETER_INVALID_FORMAT, "must be a string")
    return _email(value.strip())


@lru_cache(maxsize=_CACHE)
def _phone(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, "is not a phone number (E.164 expected)") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, "is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone(value: Any) -> str | None:
    """Normalise to E.164. Numbers without a country code cannot be normalised and are invalid."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"+{value}"
    if not isinstance(value, str):
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, "must be a string")
    return _phone(value.strip())


@lru_cache(maxsize=4096)
def _timezone(value: str) -> str:
    if len(value) > MAX_TIMEZONE_LEN:
        raise FieldError("timezone", PARAMETER_INVALID_FORMAT, f"longer than {MAX_TIMEZONE_LEN} characters")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise FieldError("timezone", PARAMETER_INVALID_FORMAT, "is not an IANA timezone name") from exc
    return value


def timezone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError("timezone", PARAMETER_INVALID_FORMAT, "must be a string")
    return _timezone(value.strip())


@lru_cache(maxsize=4096)
def _locale(value: str) -> str:
    if len(value) > MAX_LOCALE_LEN:
        raise FieldError("locale", PARAMETER_INVALID_FORMAT, f"longer than {MAX_LOCALE_LEN} characters")
    if not langcodes.tag_is_valid(value):
        raise FieldError("locale", PARAMETER_INVALID_FORMAT, "is not a BCP-47 language tag")
    return value


def locale(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError("locale", PARAMETER_INVALID_FORMAT, "must be a string")
    return _locale(value.strip().replace("_", "-"))


def event_name(value: Any) -> str:
    if value is None or value == "":
        raise FieldError("name", PARAMETER_MISSING, "event name is required")
    if not isinstance(value, str) or not value.strip():
        raise FieldError("name", PARAMETER_INVALID_FORMAT, "must be a non-empty string")
    if len(value) > MAX_IDENTIFIER_LEN:
        raise FieldError("name", PARAMETER_INVALID_FORMAT, f"longer than {MAX_IDENTIFIER_LEN} characters")
    return value


def timestamp(field: str, value: Any) -> str | None:
    """ISO 8601 string or datetime → canonical ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (naive means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise FieldError(field, PARAMETER_INVALID_FORMAT, "is not an ISO 8601 timestamp") from None
    if not isinstance(value, dt.datetime):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "must be an ISO 8601 timestamp string")
    moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    try:
        return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "is out of range") from None


def subscription_state(value: Any) -> int:
    if value is None:
        raise FieldError("state", PARAMETER_MISSING, "state is required")
    if isinstance(value, bool) or value not in SUBSCRIPTION_STATES or not isinstance(value, int):
        raise FieldError("state", PARAMETER_INVALID_FORMAT, "must be 0, 1 or 2")
    return value


def subscription_id(value: Any) -> int:
    if value is None:
        raise FieldError("subscription_id", PARAMETER_MISSING, "subscription_id is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError("subscription_id", PARAMETER_INVALID_FORMAT, "must be a positive integer")
    return value


def json_data(field: str, value: Any) -> dict[str, Any] | None:
    """``data``: a JSON object whose values are JSON (no NaN/inf, string keys, no bytes/sets/objects)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "must be a JSON object")
    _check_json(field, value, 0)
    return value


def _check_json(field: str, value: Any, depth: int) -> None:
    if depth > 32:
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "is nested too deeply")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(field, PARAMETER_INVALID_FORMAT, "contains NaN or infinity")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FieldError(field, PARAMETER_INVALID_FORMAT, "has a non-string key")
            _check_json(field, item, depth + 1)
        return
    if isinstance(value, list):
        for item in value:
            _check_json(field, item, depth + 1)
        return
    raise FieldError(field, PARAMETER_INVALID_FORMAT, f"holds a value of type {type(value).__name__}")

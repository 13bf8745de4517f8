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
import importlib
import importlib.resources
import math
import re
import zoneinfo
from functools import lru_cache
from typing import Any

# email_validator, phonenumbers and langcodes are imported where they are first needed: together they are
# ~0.25 s of a task's start-up, and the fast paths below rarely need them (their answers are cached).

PARAMETER_MISSING = "parameter_missing"
PARAMETER_INVALID_FORMAT = "parameter_invalid_format"

MAX_TIMEZONE_LEN = 50
MAX_LOCALE_LEN = 255
MAX_IDENTIFIER_LEN = 255
SUBSCRIPTION_STATES = frozenset({0, 1, 2})

#: Per-value caches: they pay off only when values repeat (a test corpus, a re-sync of the same rows), so
#: they are kept small. At 65,536 entries each they held ~50 MB in a 1M-row sync of unique contacts.
_CACHE = 4096


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
    # The common case in one test: a printable str (so no control characters, and no whitespace but the
    # ASCII space) that does not start or end with a space is its own result.
    if (type(value) is str and 0 < len(value) <= MAX_IDENTIFIER_LEN and value.isprintable()
            and value[0] != " " and value[-1] != " "):
        return value
    return _identifier(field, value)


def _identifier(field: str, value: Any) -> str | None:
    """:func:`identifier`, every case."""
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


def echo_identifier(value: Any) -> str | None:
    """How an item's ``external_id`` / ``anonymous_id`` is named back when the item failed (valid or not):
    a string or an integer as text, cut at ``MAX_IDENTIFIER_LEN`` characters; anything else is ``None``.
    The emulator echoes ids in per-item results by this rule and the client reports its own failures by
    it, so both name a failed record the same way."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        return str(value)[:MAX_IDENTIFIER_LEN]
    except ValueError:  # an integer too long to print (Python's int-to-str digit limit)
        return None


def require_identity(external_id: str | None, anonymous_id: str | None) -> None:
    if external_id is None and anonymous_id is None:
        raise FieldError("external_id", PARAMETER_MISSING, "external_id or anonymous_id is required")


#: RFC 5322 dot-atom local part in ASCII: by far the common case, checked without the full parser.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_INVALID = "is not a valid RFC 5322 address"

#: email-validator, told that syntax is the rule and deliverability is not: no DNS lookup, quoted local
#: parts (``"jane doe"@example.com``) and address literals (``jane@[192.0.2.1]``, ``jane@[IPv6:2001:db8::1]``)
#: allowed, and no "globally deliverable" demands (a dot in the domain, a letter TLD, ``.test``).
_EMAIL_RULES: dict[str, Any] = {
    "check_deliverability": False,
    "allow_quoted_local": True,
    "allow_domain_literal": True,
    "globally_deliverable": False,
    "test_environment": True,
}

@lru_cache(maxsize=1)
def _reserved_domains() -> tuple[str, ...]:
    """Reserved names email-validator refuses whatever its options (``localhost``, ``.local``, ``.invalid``,
    ``.onion``, ``.arpa``, ``.test``): a judgement on deliverability, not on syntax."""
    import email_validator

    return tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


@lru_cache(maxsize=1)
def _case_insensitive_mailboxes() -> frozenset[str]:
    """RFC 2142 mailbox names email-validator lowercases (``Postmaster@`` -> ``postmaster@``)."""
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

    return frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _stand_in(value: str) -> tuple[str, str | None]:
    """``value`` with a reserved last domain name replaced by a neutral one of the same length, and that
    name (``None``: nothing replaced). The stand-in passes exactly the syntax checks the original would
    pass: same lengths, same label structure, letters for letters."""
    domain = value.rpartition("@")[2]
    if domain.isascii():
        lowered = domain.lower()
        for name in _reserved_domains():
            if lowered == name or lowered.endswith("." + name):
                return value[: -len(name)] + "x" * len(name), name
    return value, None


@lru_cache(maxsize=_CACHE)
def _email_full(value: str) -> str:
    import email_validator

    checked, reserved = _stand_in(value)
    try:
        normalized = email_validator.validate_email(checked, **_EMAIL_RULES).normalized
    except email_validator.EmailNotValidError as exc:
        raise FieldError("email", PARAMETER_INVALID_FORMAT, _EMAIL_INVALID) from exc
    return normalized if reserved is None else normalized[: -len(reserved)] + reserved


@lru_cache(maxsize=_CACHE)
def _email_domain(domain: str) -> str:
    """A domain checked (and normalised) once by email-validator; domains repeat a lot."""
    return _email_full("x@" + domain).rpartition("@")[2]


def _email(value: str) -> str:
    """Same answer as email-validator (``_email_full``), without re-parsing the domain for every address:
    a plain ASCII dot-atom local part needs no more than a regex and the length limits."""
    local, at, domain = value.rpartition("@")
    if (at and len(local) <= 64 and len(value) <= 254 and domain.isascii() and _DOT_ATOM.fullmatch(local)
            and local.lower() not in _case_insensitive_mailboxes()):
        normalized = f"{local}@{_email_domain(domain)}"
        if len(normalized) <= 254:
            return normalized
    return _email_full(value)


def email(value: Any) -> str | None:
    """An RFC 5322 ``addr-spec`` (normalised by email-validator): the syntax is checked, never whether mail
    could be delivered. Accepted besides the common form: quoted local parts, IPv4 and ``IPv6:`` address
    literals, dotless and reserved domains (``jane@localhost``, ``jane@shop.test``). Refused: what the
    syntax refuses, comments and folding whitespace, display names, more than 254 characters in all, and
    address literals that are not an IPv4 or ``IPv6:`` address (RFC 5321)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError("email", PARAMETER_INVALID_FORMAT, "must be a string")
    return _email(value.strip())


_E164 = re.compile(r"\+([1-9]\d{6,14})")


@lru_cache(maxsize=1024)
def _calling_code(head: str) -> tuple[int, int, re.Pattern[str] | None] | None:
    """``(size, code, national-prefix rule)`` of the calling code that starts ``head`` (the first three
    digits of an E.164 number; calling codes are prefix-free), or ``None`` for an unknown code."""
    import phonenumbers

    for size in (1, 2, 3):
        code = int(head[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            region = phonenumbers.region_code_for_country_code(code)
            metadata = (phonenumbers.PhoneMetadata.metadata_for_region(region)
                        or phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code))
            prefix = getattr(metadata, "national_prefix_for_parsing", None)
            return size, code, re.compile(prefix) if prefix else None
    return None


@lru_cache(maxsize=4096)
def _possible_length(code: int, length: int) -> bool:
    """``phonenumbers.is_possible_number`` for a national number of ``length`` digits (no leading zero):
    it only compares the length of the national number with the lengths the region allows."""
    import phonenumbers

    number = phonenumbers.PhoneNumber(country_code=code, national_number=10 ** (length - 1))
    return phonenumbers.is_possible_number(number)


def _phone_e164(digits: str) -> str | None:
    """Fast path for input already in E.164: the calling code and the national number are read directly
    instead of through ``phonenumbers.parse``. ``None``: not decidable here (unknown code, a leading zero,
    or digits the region's national-prefix rule would rewrite), so the full parser decides; the answers
    are the same either way (see tests/unit/test_validation.py)."""
    found = _calling_code(digits[:3])
    if found is None:
        return None
    size, code, prefix = found
    national = digits[size:]
    if not national or national[0] == "0" or (prefix is not None and prefix.match(national)):
        return None
    if not _possible_length(code, len(national)):
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, _PHONE_IMPOSSIBLE)
    return "+" + digits


_PHONE_IMPOSSIBLE = "is not a possible phone number for its country"


def _phone(value: str) -> str:
    """E.164 input is read directly (and not cached: numbers seldom repeat); anything else is parsed by
    phonenumbers, once per distinct value."""
    strict = _E164.fullmatch(value)
    if strict is not None:
        fast = _phone_e164(strict.group(1))
        if fast is not None:
            return fast
    return _phone_parsed(value)


@lru_cache(maxsize=_CACHE)
def _phone_parsed(value: str) -> str:
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, "is not a phone number (E.164 expected)") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, _PHONE_IMPOSSIBLE)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone(value: Any) -> str | None:
    """Normalise to E.164. Numbers without a country code cannot be normalised and are invalid; a number
    must be *possible* for its country (length and structure), which is what "normalised when possible"
    in Spotzee's docs asks; it is not checked against every allocated number range."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"+{value}"
    if not isinstance(value, str):
        raise FieldError("phone", PARAMETER_INVALID_FORMAT, "must be a string")
    return _phone(value.strip())


#: Files of a zoneinfo directory that are not zone names (links to the host's zone, the POSIX rules).
_NOT_ZONES = frozenset({"localtime", "posixrules"})


def _iana_zone_names() -> tuple[frozenset[str], str]:
    """The IANA zone names accepted, and where the list comes from.

    The ``tzdata`` package's list (``tzdata/zones``, one IANA release, the same on every host) when it is
    installed; otherwise the host's zones (``zoneinfo.available_timezones()``) without what is only a file
    of the host's zoneinfo directory (``posix/...``, ``right/...``, ``localtime``, ``posixrules``)."""
    try:
        package = importlib.import_module("tzdata")
        text = importlib.resources.files(package).joinpath("zones").read_text(encoding="utf-8")
        return frozenset(text.split()), f"tzdata {package.IANA_VERSION}"
    except (ImportError, OSError, AttributeError):
        zones = zoneinfo.available_timezones()
        names = {z for z in zones if z not in _NOT_ZONES and not z.startswith(("posix/", "right/"))}
        return frozenset(names), "host zoneinfo"


#: Every ``timezone`` value accepted (exact, case-sensitive names); ``IANA_TIMEZONES_SOURCE`` says whence.
IANA_TIMEZONES, IANA_TIMEZONES_SOURCE = _iana_zone_names()


def _timezone(value: str) -> str:
    if value in IANA_TIMEZONES:
        return value
    if len(value) > MAX_TIMEZONE_LEN:
        raise FieldError("timezone", PARAMETER_INVALID_FORMAT, f"longer than {MAX_TIMEZONE_LEN} characters")
    raise FieldError("timezone", PARAMETER_INVALID_FORMAT, "is not an IANA timezone name")


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
    import langcodes

    if not langcodes.tag_is_valid(value):
        raise FieldError("locale", PARAMETER_INVALID_FORMAT, "is not a BCP-47 language tag")
    return value


def locale(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError("locale", PARAMETER_INVALID_FORMAT, "must be a string")
    return _locale(value.strip().replace("_", "-"))


#: The contact profile's first-class fields and their rules (used by the client models and the emulator).
PROFILE_FIELDS: dict[str, Any] = {"email": email, "phone": phone, "timezone": timezone, "locale": locale}


def event_name(value: Any) -> str:
    if value is None or value == "":
        raise FieldError("name", PARAMETER_MISSING, "event name is required")
    if not isinstance(value, str) or not value.strip():
        raise FieldError("name", PARAMETER_INVALID_FORMAT, "must be a non-empty string")
    if len(value) > MAX_IDENTIFIER_LEN:
        raise FieldError("name", PARAMETER_INVALID_FORMAT, f"longer than {MAX_IDENTIFIER_LEN} characters")
    return value


#: A timestamp already in the canonical form :func:`timestamp` writes (UTC, milliseconds, ``Z``).
_CANONICAL_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def timestamp(field: str, value: Any) -> str | None:
    """ISO 8601 string or datetime → canonical ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (naive means UTC)."""
    # A string already in the canonical form is its own result once its date and time are real (the full
    # rules would parse it and print it back unchanged): the shape most sources send, at a fifth the cost.
    if type(value) is str and _CANONICAL_TIMESTAMP.fullmatch(value):
        try:
            dt.datetime.fromisoformat(value[:-1])
        except ValueError:
            pass  # (the full rules word the error)
        else:
            return value
    return _timestamp(field, value)


def _timestamp(field: str, value: Any) -> str | None:
    """:func:`timestamp`, every case."""
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
    moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "is out of range") from None


def subscription_state(value: Any) -> int:
    if value is None:
        raise FieldError("state", PARAMETER_MISSING, "state is required")
    if isinstance(value, bool) or not isinstance(value, int) or value not in SUBSCRIPTION_STATES:
        raise FieldError("state", PARAMETER_INVALID_FORMAT, "must be 0, 1 or 2")
    return value


def subscription_id(value: Any) -> int:
    if value is None:
        raise FieldError("subscription_id", PARAMETER_MISSING, "subscription_id is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError("subscription_id", PARAMETER_INVALID_FORMAT, "must be a positive integer")
    return value


#: Types a flat ``data`` object may hold without a closer look (floats need a finiteness check).
_JSON_LEAVES = frozenset({str, int, bool, type(None)})


def json_data(field: str, value: Any) -> dict[str, Any] | None:
    """``data``: a JSON object whose values are JSON (no NaN/inf, string keys, no bytes/sets/objects)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError(field, PARAMETER_INVALID_FORMAT, "must be a JSON object")
    for key, item in value.items():  # fast path: a flat object of JSON scalars (the common case)
        kind = type(item)
        if type(key) is not str or (kind not in _JSON_LEAVES and not (kind is float and math.isfinite(item))):
            _check_json(field, value, 0)  # anything else: the full check decides, and words the error
            break
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

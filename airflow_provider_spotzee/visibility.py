"""Contact lookups, and "are these contacts visible in Spotzee yet?": one decision shared by the sensor's
poke and the trigger. The hook's reads use :func:`fetch_user` from here too (this module imports the
transport, never the hook, so both can import it without a cycle)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.config import ClientConfig
from airflow_provider_spotzee.exceptions import SpotzeeAPIError, SpotzeeConfigError
from airflow_provider_spotzee.models import Contact
from airflow_provider_spotzee.transport import SpotzeeTransport, api_error, wrong_base_url

LOOKUP_CONCURRENCY = 8
#: What a lenient integer parser could read as a number (Python's ``int()`` takes all of these).
NUMERIC_LOOKING = re.compile(r"\s*[+-]?\d[\d_]*\s*")
#: The code of the error raised when a numeric contact id resolves to another contact's external_id.
CONTACT_ID_AMBIGUOUS = "contact_id_ambiguous"


def parse_since(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def is_visible(contact: Contact | None, since: dt.datetime | None) -> bool:
    """Present, and (when ``since`` is given) updated at or after it, so an update is seen, not only a create."""
    if contact is None:
        return False
    if since is None:
        return True
    return contact.updated_at is not None and contact.updated_at >= since


def normalise_ids(external_ids: Iterable[object] | str | None) -> list[str]:
    if external_ids is None:
        return []
    if isinstance(external_ids, str):
        external_ids = [external_ids]
    seen: dict[str, None] = {}
    for value in external_ids:
        if value is not None and str(value).strip():
            seen[str(value).strip()] = None
    return list(seen)


async def missing_contacts(config: ClientConfig, external_ids: Sequence[str], since: dt.datetime | None) -> list[str]:
    """The ids (in input order) not yet visible. Lookups are paced by the read budget and run a few at a time.
    A contact counts only if its external_id is exactly the one asked for (:func:`find_by_external_id`),
    so an all-digit id never reports somebody else's contact as visible.

    Raises :class:`~airflow_provider_spotzee.exceptions.SpotzeeAuthError` on 401/403 and
    :class:`~airflow_provider_spotzee.exceptions.SpotzeeRetriesExhausted` when Spotzee keeps failing
    (callers treat that as "try again later", never as "missing").
    """
    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)
    async with SpotzeeTransport(config) as transport:

        async def check(external_id: str) -> bool:
            async with gate:
                return is_visible(await find_by_external_id(transport, external_id), since)

        visible = await asyncio.gather(*(check(i) for i in external_ids))
    return [i for i, ok in zip(external_ids, visible) if not ok]


def looks_numeric(external_id: str) -> bool:
    """Could ``{userId}`` = this external_id be read as a numeric contact id? All digits, optionally
    signed or with ``_`` separators and surrounding blanks: whatever a lenient integer parser accepts."""
    return NUMERIC_LOOKING.fullmatch(external_id) is not None


async def fetch_user(transport: SpotzeeTransport, user_id: str | int) -> Contact | None:
    """One contact on an open transport, or ``None``: a ``str`` is an external_id
    (:func:`find_by_external_id`), an ``int`` Spotzee's numeric id (:func:`fetch_by_contact_id`)."""
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise SpotzeeConfigError(f"user_id must be an external_id (str), got {type(user_id).__name__}")
    if isinstance(user_id, int):
        return await fetch_by_contact_id(transport, user_id)
    return await find_by_external_id(transport, user_id)


async def find_by_external_id(transport: SpotzeeTransport, external_id: str) -> Contact | None:
    """The contact whose external_id is exactly ``external_id``, or ``None``. Never somebody else.

    ``GET /users/{userId}`` resolves a numeric contact id as well as an external_id, so an all-digit
    external_id such as ``"1024"`` may come back as contact *id* 1024. A contact is accepted only if its
    external_id equals the one asked for. For a numeric-looking id that got somebody else, the contact
    is looked for with ``GET /users?q=<id>`` (every page), keeping only an exact external_id match.
    Exhausted retries raise :class:`~airflow_provider_spotzee.exceptions.SpotzeeRetriesExhausted`.
    """
    wanted = external_id.strip()
    if not wanted:
        raise SpotzeeConfigError("external_id must not be empty")
    response = await transport.request("GET", f"/users/{quote(wanted, safe='')}")
    if response.status == 404:
        await transport.confirm_base_url()  # (a wrong base URL 404s too: that is no "missing")
        return None  # neither reading of the path names anybody
    if response.status >= 300:
        raise api_error(response, f"Spotzee could not look up contact {wanted!r}")
    contact = Contact.model_validate(response.json())
    if contact.external_id == wanted:
        return contact
    if not looks_numeric(wanted):
        return None  # not this person (a server that resolved the path some other way)
    return await _search_external_id(transport, wanted)


async def _search_external_id(transport: SpotzeeTransport, wanted: str) -> Contact | None:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"q": wanted, "limit": MAX_BATCH_SIZE}
        if cursor is not None:
            params["cursor"] = cursor
        response = await transport.request("GET", "/users", params=params)
        if response.status == 404:
            raise wrong_base_url("GET", "/users", response, transport.config.base_url)
        if response.status >= 300:
            raise api_error(response, f"Spotzee could not search for contact {wanted!r}")
        payload = response.json()
        for raw in payload.get("results") or []:
            if isinstance(raw, dict) and raw.get("external_id") == wanted:
                return Contact.model_validate(raw)
        cursor = payload.get("nextCursor")
        if not cursor:
            return None


async def fetch_by_contact_id(transport: SpotzeeTransport, contact_id: int) -> Contact | None:
    """The contact with Spotzee's numeric id ``contact_id``, or ``None`` (404).

    ``GET /users/{contact_id}`` may resolve as an external_id instead (a contact whose external_id is
    ``"1024"``): such an answer is never taken for contact 1024. It raises
    :class:`~airflow_provider_spotzee.exceptions.SpotzeeAPIError` (code ``contact_id_ambiguous``), since
    Spotzee offers no other way to address that numeric id.
    """
    if isinstance(contact_id, bool) or not isinstance(contact_id, int) or contact_id < 1:
        raise SpotzeeConfigError(f"contact_id must be a positive integer, got {contact_id!r}")
    response = await transport.request("GET", f"/users/{contact_id}")
    if response.status == 404:
        await transport.confirm_base_url()
        return None
    if response.status >= 300:
        raise api_error(response, f"Spotzee could not look up contact id {contact_id}")
    contact = Contact.model_validate(response.json())
    if contact.id != contact_id:
        raise SpotzeeAPIError(
            f"Spotzee read /users/{contact_id} as the external_id of another contact, so contact id "
            f"{contact_id} cannot be addressed by its numeric id: address it by its external_id",
            code=CONTACT_ID_AMBIGUOUS)
    return contact

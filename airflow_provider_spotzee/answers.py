"""The per-item answers of the batch endpoints, decoded only as far as the send path reads them.

``POST /users/batch`` answers each of its up to 100 items with the whole contact it now holds; the send
path needs only each item's ``index``, ``external_id``, whether it has an outcome, and its ``error``.
:func:`read_item_answers` reads exactly those with msgspec and leaves every ``contact`` as undecoded
bytes (a 100-contact answer: ~50 µs instead of ~290 µs with a full parse).

msgspec takes only the well-formed case: a JSON object with a ``results`` array of objects. Anything
else is parsed whole, the slow way, which finds what is wrong (or reads what msgspec refuses and the
JSON parsers accept, such as ``NaN``). So the fast decode changes how fast an answer is read, never what
is concluded from it.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from pydantic_core import from_json

from airflow_provider_spotzee.transport import parse_json


class ItemAnswer(msgspec.Struct):
    """One entry of ``results``. A member the answer left out is :data:`msgspec.UNSET` (a ``null`` is
    ``None``), so "has an outcome" is the same test as on the parsed dict: the key is present."""

    index: Any = None
    external_id: Any = None
    error: Any = msgspec.UNSET
    contact: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    state: Any = msgspec.UNSET

    @property
    def has_outcome(self) -> bool:
        return (self.error is not msgspec.UNSET or self.contact is not msgspec.UNSET
                or self.state is not msgspec.UNSET)

    def contact_dict(self) -> Any:
        """The contact, parsed as the full answer would have parsed it (``None`` when absent)."""
        return None if self.contact is msgspec.UNSET else from_json(bytes(self.contact))


class _Answers(msgspec.Struct):
    results: list[ItemAnswer]


_DECODER = msgspec.json.Decoder(_Answers)


class UnusableAnswer(ValueError):
    """A per-item answer that cannot be matched to the request item by item; says why."""


def read_item_answers(body: bytes, external_ids: list[str | None]) -> list[ItemAnswer]:
    """The answers to a request whose items had ``external_ids`` (one per item, ``None`` when an item had
    none), checked against it one to one: as many as items, each at its index, none naming another
    contact, each with an outcome. Never trusted blindly: :class:`UnusableAnswer` says what is wrong."""
    try:
        answers = _DECODER.decode(body).results
    except msgspec.MsgspecError:  # not the well-formed case: parse it whole, to word what is wrong
        answers = _complete(body)
    if len(answers) != len(external_ids):
        raise UnusableAnswer(f"response has {len(answers)} results for {len(external_ids)} items")
    for position, (sent, answer) in enumerate(zip(external_ids, answers)):
        if answer.index != position:
            raise UnusableAnswer(f"result {position} has a wrong or missing index")
        returned = answer.external_id
        if sent is not None and returned is not None and returned != sent:
            raise UnusableAnswer(f"result {position} names a different contact")
        if not answer.has_outcome:
            raise UnusableAnswer(f"result {position} has neither an outcome nor an error")
    return answers


def _complete(body: bytes) -> list[ItemAnswer]:
    """The slow path: the body parsed whole, as every other answer is (:func:`transport.parse_json`)."""
    try:
        payload = parse_json(body)
    except ValueError:  # (UnicodeDecodeError included)
        raise UnusableAnswer("response body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise UnusableAnswer("response has no 'results' list")
    answers = []
    for result in payload["results"]:
        if not isinstance(result, dict):  # (no index: it is reported as "wrong or missing index")
            answers.append(ItemAnswer())
            continue
        contact = result.get("contact", msgspec.UNSET)
        answers.append(ItemAnswer(
            index=result.get("index"), external_id=result.get("external_id"),
            error=result.get("error", msgspec.UNSET), state=result.get("state", msgspec.UNSET),
            contact=contact if contact is msgspec.UNSET else msgspec.Raw(json.dumps(contact).encode())))
    return answers

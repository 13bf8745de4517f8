"""The send path, shared by every batch endpoint.

records → validate (invalid ones become ``ItemFailure(stage="invalid")``, never sent) → chunk (≤ 100,
input order) → canonical body → ``Idempotency-Key`` → paced, bounded-concurrency send with retries →
per-item results (sync endpoints) → successes counted; transient item errors retried once in a fresh
batch; permanent ones ``stage="rejected"``; batches that exhaust retries ``stage="dead_lettered"`` with
their payloads kept for replay.

An endpoint is a small :class:`Endpoint` spec; the path is the same for all of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from msgspec import UNSET
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from airflow_provider_spotzee import validation as v
from airflow_provider_spotzee.answers import UnusableAnswer, read_item_answers
from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE, TRANSIENT_ITEM_CODES
from airflow_provider_spotzee.batching import (
    canonical_body,
    check_batch_size,
    idempotency_key,
)
from airflow_provider_spotzee.exceptions import SpotzeeError, SpotzeeRetriesExhausted
from airflow_provider_spotzee.fastpath import event_fields, subscription_toggle_fields
from airflow_provider_spotzee.models import (
    Contact,
    Event,
    ItemFailure,
    SendResult,
    SubscriptionToggle,
    UserUpsert,
    user_upsert_fields,
)
from airflow_provider_spotzee.transport import SpotzeeTransport, wrong_base_url

log = logging.getLogger(__name__)

RESPONSE_INVALID = "response_invalid"
PROGRESS_EVERY_SECONDS = 15.0


@dataclass(frozen=True)
class Endpoint:
    """What differs between batch endpoints: method, path, payload model, and whether it answers per item."""

    name: str
    method: str
    path: str
    model: type[BaseModel]
    per_item_results: bool
    returns_contacts: bool = False


USERS_BATCH = Endpoint("users_batch", "POST", "/users/batch", UserUpsert, per_item_results=True,
                       returns_contacts=True)
USERS_ASYNC = Endpoint("users_async", "PATCH", "/users", UserUpsert, per_item_results=False)
EVENTS = Endpoint("events", "POST", "/events", Event, per_item_results=False)
SUBSCRIPTIONS_BATCH = Endpoint("subscriptions_batch", "POST", "/subscriptions/batch", SubscriptionToggle,
                               per_item_results=True)


@dataclass(frozen=True)
class Unchanged:
    """A record the caller decided not to send (e.g. superseded by a later row for the same contact)."""

    reason: str = "superseded"


@dataclass(frozen=True)
class Invalid:
    """A record the caller could not even map: reported as ``stage="invalid"`` with this code."""

    code: str
    message: str
    external_id: str | None = None


class Prepared(NamedTuple):
    """A validated item: its position in the input, its exact JSON bytes and its identifiers.
    (Immutable; a named tuple because one is built per record and is cheaper than a frozen dataclass.)"""

    index: int  # type: ignore[assignment]  # (shadows tuple.index, which nobody calls on it)
    body: bytes
    external_id: str | None
    anonymous_id: str | None
    subscription_id: int | None


def _raw_id(record: Any, name: str) -> Any:
    value = record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)
    if name == "subscription_id":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)[: v.MAX_IDENTIFIER_LEN]
    return None


def invalid_failure(index: int, record: Any, code: str, message: str) -> ItemFailure:
    return ItemFailure(index=index, external_id=_raw_id(record, "external_id"),
                       anonymous_id=_raw_id(record, "anonymous_id"),
                       subscription_id=_raw_id(record, "subscription_id"),
                       stage="invalid", code=code, message=message)


def _describe(error: ValidationError) -> tuple[str, str]:
    """The first error as (catalogue code, message). Pydantic inputs are never copied into the message."""
    first = error.errors(include_input=False, include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, v.FieldError):
        return cause.code, str(cause)
    where = ".".join(str(part) for part in first["loc"]) or "record"
    if first["type"] == "missing":
        return v.PARAMETER_MISSING, f"{where}: field required"
    if first["type"] == "extra_forbidden":
        return v.PARAMETER_INVALID_FORMAT, f"{where}: unknown field (check the mapping)"
    return v.PARAMETER_INVALID_FORMAT, f"{where}: {first['msg']}"


#: Plain-function validators for the common case, per payload model (see ``user_upsert_fields``).
_FAST_PATHS: dict[type[BaseModel], Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    UserUpsert: user_upsert_fields,
    Event: event_fields,
    SubscriptionToggle: subscription_toggle_fields,
}


def prepare(endpoint: Endpoint, index: int, record: Any) -> Prepared | ItemFailure:
    """Validate one record and serialise it once. Never raises for bad data.

    A plain dict goes through the model's fast path when it has one: the same rules without building a
    model, and the bytes the model's serialiser would write. Whatever that path cannot decide (invalid
    or unusual records) is validated, and its errors worded, by the pydantic model as before.
    """
    fast = _FAST_PATHS.get(endpoint.model) if type(record) is dict else None
    normal = fast(record) if fast is not None else None
    if normal is not None:
        get = normal.get
        try:  # (tuple.__new__: a NamedTuple's own __new__ is a Python function, twice the cost)
            return _new_tuple(Prepared, (index, to_json(normal), get("external_id"), get("anonymous_id"),
                                         get("subscription_id")))
        except (ValueError, TypeError):  # e.g. a lone surrogate: the model path reports it
            pass
    return prepare_with_model(endpoint, index, record)


_new_tuple = tuple.__new__


def prepare_with_model(endpoint: Endpoint, index: int, record: Any) -> Prepared | ItemFailure:
    """The complete path of :func:`prepare`: the pydantic model validates, words errors and serialises."""
    model = endpoint.model
    if isinstance(record, Invalid):
        return ItemFailure(index=index, external_id=record.external_id, stage="invalid", code=record.code,
                           message=record.message)
    try:
        if isinstance(record, model):
            item = record
        elif isinstance(record, Mapping):
            item = model.model_validate(record)
        else:
            return invalid_failure(index, record, v.PARAMETER_INVALID_FORMAT,
                                   f"record must be a mapping or {model.__name__}, got {type(record).__name__}")
        body = model.__pydantic_serializer__.to_json(item, exclude_none=True)
    except ValidationError as exc:
        code, message = _describe(exc)
        return invalid_failure(index, record, code, message)
    except (ValueError, TypeError) as exc:  # e.g. a value pydantic cannot serialise
        return invalid_failure(index, record, v.PARAMETER_INVALID_FORMAT, f"record cannot be serialised: {type(exc).__name__}")
    fields = vars(item)  # plain dict access: pydantic's __getattr__ raises (slowly) for absent fields
    return Prepared(index, body, fields.get("external_id"), fields.get("anonymous_id"), fields.get("subscription_id"))


def _failure(item: Prepared, stage: str, code: str, message: str) -> ItemFailure:
    return ItemFailure(index=item.index, external_id=item.external_id, anonymous_id=item.anonymous_id,
                       subscription_id=item.subscription_id, stage=stage, code=code, message=message)  # type: ignore[arg-type]


@dataclass
class _Run:
    endpoint: Endpoint
    transport: SpotzeeTransport
    namespace: str
    result: SendResult
    collect_contacts: bool
    started: float
    batches_done: int = 0
    last_log: float = 0.0

    # ------------------------------------------------------------------------------------------- send

    async def send_batch(self, batch: list[Prepared], namespace: str, retry_transient: bool = True) -> None:
        endpoint = self.endpoint
        body = canonical_body([item.body for item in batch])
        key = idempotency_key(namespace, endpoint.method, endpoint.path, body)
        try:
            response = await self.transport.request(endpoint.method, endpoint.path, body=body,
                                                    idempotency_key=key)
        except SpotzeeRetriesExhausted as exc:  # (SpotzeeConnectError is not one: it stops the whole send)
            self._dead_letter(batch, exc.code or "transport_error",
                              f"gave up after {self.transport.config.max_retries} retries: {exc.last_error}")
            return
        if response.status == 404:  # the endpoint itself is missing: every batch would fail the same way
            raise wrong_base_url(endpoint.method, endpoint.path, response, self.transport.config.base_url)
        if not 200 <= response.status < 300:
            code = response.error_code
            for item in batch:
                self.result.add_failure(_failure(item, "rejected", code, f"Spotzee rejected the whole batch (HTTP {response.status})"),
                           json.loads(item.body))
            return
        if not endpoint.per_item_results:
            self.result.succeeded += len(batch)
            self.result.replayed_items += len(batch) if response.replayed else 0
            return
        try:
            answers = read_item_answers(response.body, [item.external_id for item in batch])
        except UnusableAnswer as exc:
            self._dead_letter(batch, RESPONSE_INVALID, f"unusable answer from Spotzee ({exc}); nothing assumed sent")
            return
        transient: list[Prepared] = []
        succeeded = 0  # (counted here and added once: every assignment to a pydantic model field is a call)
        keep_contacts = self.collect_contacts and endpoint.returns_contacts
        for item, answer in zip(batch, answers):
            error = answer.error
            if error is None or error is UNSET:
                succeeded += 1
                if keep_contacts and isinstance(contact := answer.contact_dict(), dict):
                    self.result.contacts.append(Contact.model_validate(contact))
                continue
            code = str(error.get("code") or "unknown_error") if isinstance(error, dict) else "unknown_error"
            message = str(error.get("message") or "")[:500] if isinstance(error, dict) else ""
            if code in TRANSIENT_ITEM_CODES:
                if retry_transient:
                    transient.append(item)
                else:
                    self._dead_letter([item], code, f"still failing after one retry in a fresh batch: {message}")
            else:
                self.result.add_failure(_failure(item, "rejected", code, message or "rejected by Spotzee"), json.loads(item.body))
        self.result.succeeded += succeeded
        self.result.replayed_items += succeeded if response.replayed else 0
        if transient:
            self.result.retries += 1
            await asyncio.sleep(0.2)
            await self.send_batch(transient, namespace + "/item-retry", retry_transient=False)

    # -------------------------------------------------------------------------------------- outcomes

    def _dead_letter(self, batch: list[Prepared], code: str, message: str) -> None:
        for item in batch:
            self.result.add_failure(_failure(item, "dead_lettered", code, message), json.loads(item.body))

    def progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_log < PROGRESS_EVERY_SECONDS:
            return
        self.last_log = now
        elapsed = max(now - self.started, 1e-9)
        r, c = self.result, self.transport.counters
        done = r.succeeded + r.unchanged + r.rejected + r.dead_lettered + r.invalid
        log.info("Spotzee %s: %d batches, %d/%d items done (%.0f items/s), %d ok, %d invalid, %d rejected, "
                 "%d dead-lettered, %d requests, %d retries, %d throttled", self.endpoint.name,
                 self.batches_done, done, r.submitted, done / elapsed, r.succeeded, r.invalid, r.rejected,
                 r.dead_lettered, c.requests, c.retries, c.throttled)


def prepared_batches(endpoint: Endpoint, records: Iterable[Any], result: SendResult, *, start_index: int = 0,
                     batch_size: int = MAX_BATCH_SIZE) -> Iterator[list[Prepared]]:
    """Number, validate and serialise records, yielding the sendable ones in batches of ``batch_size``.
    Counts every record in ``result`` (submitted, unchanged, invalid) and files invalid ones as failures
    with their payloads. A record that already is a :class:`Prepared` of this index (a diff sync prepared
    it to hash its bytes) is passed on as it is.

    The counts reach ``result`` before each batch is handed on, before each failure is filed, and at the
    end; not per record: every assignment to a field of the pydantic result is a call (~1 µs a record)."""
    check_batch_size(batch_size)
    submitted = unchanged = 0
    batch: list[Prepared] = []

    def flush() -> None:
        nonlocal submitted, unchanged
        if submitted:
            result.submitted += submitted
        if unchanged:
            result.unchanged += unchanged
        submitted = unchanged = 0

    try:
        for index, record in enumerate(records, start=start_index):
            submitted += 1
            if isinstance(record, Unchanged):
                unchanged += 1
                continue
            if type(record) is Prepared and record.index == index:
                item: Prepared | ItemFailure = record
            else:
                item = prepare(endpoint, index, record)
            if isinstance(item, ItemFailure):
                flush()
                result.add_failure(item, None if isinstance(record, Invalid) else record)
                continue
            batch.append(item)
            if len(batch) == batch_size:
                flush()
                yield batch
                batch = []
        if batch:
            flush()
            yield batch
    finally:
        flush()


async def send_records(
    transport: SpotzeeTransport,
    endpoint: Endpoint,
    records: Iterable[Any],
    *,
    namespace: str,
    batch_size: int = MAX_BATCH_SIZE,
    collect_contacts: bool = False,
    on_commit: Callable[[int, SendResult], None] | None = None,
    start_index: int = 0,
    on_failure: Callable[[ItemFailure, Any], None] | None = None,
) -> SendResult:
    """Send ``records`` (any iterable, streamed) to ``endpoint``; see the module docstring.

    Records are numbered from ``start_index`` (a resumed run passes the first index after its checkpoint);
    each batch's key is derived from ``namespace``, the index of its first record and its bytes, so a
    resumed run rebuilds exactly the batches (and keys) the interrupted one sent.

    A record may be an :class:`Unchanged` marker: it is counted as unchanged and not sent.

    ``on_commit(i, result)`` is called (in order, from the event loop) whenever every record with input index
    ``≤ i`` has reached a final outcome other than dead-lettered: a checkpoint can be written there and a
    resumed run can start after ``i``. A dead-lettered batch holds the commit point back so that a retry
    of the task sends it again.

    ``on_failure(failure, payload)``, when given, receives every failure (from the event loop, as it
    happens) instead of ``result.failures``/``result.payloads`` keeping them.
    """
    check_batch_size(batch_size)
    result = SendResult.start(endpoint.name, on_failure)
    run = _Run(endpoint, transport, namespace, result, collect_contacts, time.monotonic())
    run.last_log = run.started
    limit = asyncio.Semaphore(transport.config.max_in_flight)
    in_flight: set[asyncio.Task[None]] = set()
    done_upto: dict[int, tuple[int, bool]] = {}  # batch number -> (last input index, fully committed)
    next_commit = 0
    commit_blocked = False
    fatal: list[BaseException] = []

    def committed(batch_no: int, upto: int, ok: bool) -> None:
        nonlocal next_commit, commit_blocked
        done_upto[batch_no] = (upto, ok)
        while next_commit in done_upto:
            upto_i, ok_i = done_upto.pop(next_commit)
            next_commit += 1
            if not ok_i:
                commit_blocked = True
            if not commit_blocked and on_commit is not None:
                on_commit(upto_i, result)

    async def one(batch_no: int, batch: list[Prepared]) -> None:
        dead_before = result.dead_lettered
        try:
            await run.send_batch(batch, f"{namespace}@{batch[0].index}")
        except BaseException as exc:  # auth, config and connect errors: stop the whole send
            fatal.append(exc)
            raise
        finally:
            limit.release()
        run.batches_done += 1
        committed(batch_no, batch[-1].index, result.dead_lettered == dead_before)
        run.progress()

    try:
        for batch_no, batch in enumerate(prepared_batches(endpoint, records, result, start_index=start_index,
                                                          batch_size=batch_size)):
            await limit.acquire()
            if fatal:
                limit.release()
                break
            task = asyncio.create_task(one(batch_no, batch))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            # Let the loop run between batches: with free slots, acquire() does not yield, and preparing
            # max_in_flight batches back to back would hold answers, the pacer and timers for tens of ms.
            await asyncio.sleep(0)
    except Exception:
        # The source failed mid-stream (e.g. a SQL error): let the batches already sent finish, so they
        # are counted and checkpointed, then surface the error; a retry resumes after the checkpoint.
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    try:
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
    finally:
        for task in in_flight:
            task.cancel()
        counters = transport.counters
        result.requests, result.throttled, result.replayed = counters.requests, counters.throttled, counters.replayed
        result.retries += counters.retries
        result.elapsed_seconds = time.monotonic() - run.started
    if fatal:
        raise fatal[0]
    last_index = start_index + result.submitted - 1
    if not commit_blocked and on_commit is not None and last_index >= start_index:
        on_commit(last_index, result)  # trailing invalid records are final too
    run.progress(force=True)
    if not result.balanced:  # a bug, never bad data: say so loudly rather than lose records silently
        raise SpotzeeError(f"Spotzee send did not balance: {result.model_dump(exclude={'contacts', 'failures', 'payloads'})}")
    return result

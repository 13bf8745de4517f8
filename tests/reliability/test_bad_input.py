"""Bad input never crashes a send and never vanishes: a hypothesis corpus on the pure path, and a
hand-picked corpus through the hook against the emulator."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_spotzee.models import ItemFailure
from airflow_provider_spotzee.send import EVENTS, SUBSCRIPTIONS_BATCH, USERS_BATCH, Prepared, prepare
from tests.integration.helpers import users

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=300), st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                      max_leaves=8)
fields = st.sampled_from(["external_id", "anonymous_id", "email", "phone", "timezone", "locale", "data", "name",
                          "user", "created_at", "subscription_id", "state", "typo_field"])
records = st.one_of(st.dictionaries(fields, values, max_size=8), scalars, st.lists(scalars, max_size=2))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=20))
def test_prepare_never_raises_and_every_record_lands_somewhere(batch):
    for endpoint in (USERS_BATCH, EVENTS, SUBSCRIPTIONS_BATCH):
        for index, record in enumerate(batch):
            outcome = prepare(endpoint, index, record)
            assert isinstance(outcome, (Prepared, ItemFailure))
            if isinstance(outcome, ItemFailure):
                assert outcome.stage == "invalid" and outcome.code in ("parameter_missing", "parameter_invalid_format")
                assert outcome.index == index and outcome.message
            else:
                payload = json.loads(outcome.body)  # valid JSON, no NaN/inf
                assert payload.get("external_id") or payload.get("anonymous_id")


CORPUS = [
    {},  # empty
    {"external_id": ""},  # empty id
    {"external_id": "x" * 256},  # too long
    {"external_id": "tab\there"},  # control character
    {"external_id": None, "email": "a@example.com"},  # NULL id
    {"external_id": "ok-emoji-😀", "data": {"note": "ünïcödé ✓"}},  # fine
    {"external_id": "bad-mail", "email": "jane@@example.com"},
    {"external_id": "bad-phone", "phone": "+0000"},
    {"external_id": "bad-tz", "timezone": "Mars/Olympus_Mons"},
    {"external_id": "bad-locale", "locale": "not a locale!"},
    {"external_id": "nan", "data": {"score": math.nan}},
    {"external_id": "inf", "data": {"score": math.inf}},
    {"external_id": "bytes", "data": {"blob": b"\x00\x01"}},
    {"external_id": "set", "data": {"tags": {1, 2}}},
    {"external_id": "obj", "data": {"when": object()}},
    {"external_id": "typo", "emial": "a@example.com"},
    "not a mapping",
    None,
    42,
]
GOOD_IN_CORPUS = {"ok-emoji-😀"}


def test_hand_picked_corpus_through_the_hook(hook, emulator):
    batch = users(150) + CORPUS + users(120, start=150) + [users(1, start=5)[0]]  # 271 good (u-5 twice) + corpus
    result = hook.upsert_users(batch, idempotency_namespace="corpus")
    assert result.balanced and result.submitted == len(batch)
    bad = len(CORPUS) - len(GOOD_IN_CORPUS)
    assert result.invalid == bad and result.rejected == 0 and result.dead_lettered == 0
    assert result.succeeded == 271 + len(GOOD_IN_CORPUS)
    assert all(f.code in ("parameter_missing", "parameter_invalid_format") for f in result.failures)
    contacts = {c["external_id"] for c in emulator.contacts()}
    assert len(contacts) == 270 + len(GOOD_IN_CORPUS)  # u-5 sent twice is one contact
    assert not contacts & {"bad-mail", "bad-phone", "bad-tz", "bad-locale", "nan", "inf", "bytes", "typo"}
    text = json.dumps([f.model_dump() for f in result.failures])
    assert "example.com" not in text and "\\u0000" not in text


def test_empty_input_is_a_clean_zero(hook, emulator):
    result = hook.upsert_users(iter(()))
    assert (result.submitted, result.requests, result.balanced) == (0, 0, True)


def test_more_than_100_items_are_chunked(hook, emulator):
    result = hook.upsert_users(users(1_001))
    assert result.requests == 11 and result.succeeded == 1_001

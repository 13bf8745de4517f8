"""An all-digit external_id ("1024") against both readings of ``/users/{userId}``: as an external_id first
(the emulator's default) and as a numeric contact id first (``numeric_user_ids_first``). Under either,
the hook, the sensor and the operator act on and report only the contact whose external_id is "1024",
never contact *id* 1024."""

from __future__ import annotations

import pytest

from airflow_provider_spotzee.exceptions import SpotzeeAPIError
from airflow_provider_spotzee.operators.subscriptions import UserSubscriptionsOperator
from airflow_provider_spotzee.sensors.contacts import SpotzeeContactSensor
from tests.integration.helpers import users

SUBSCRIPTION = 7


@pytest.fixture(params=[False, True], ids=["external-id-first", "numeric-id-first"])
def numeric_first(request, hook, emulator) -> bool:
    emulator.configure(numeric_user_ids_first=request.param)
    assert emulator.config()["numeric_user_ids_first"] is request.param
    return request.param


@pytest.fixture
def people(hook, emulator, numeric_first) -> dict[str, dict]:
    """Contact id 1024 is some "u-…"; the contact whose external_id is "1024" has another id (1031);
    contact id 1025 exists and nobody has external_id "1025"."""
    hook.upsert_users(users(1030), idempotency_namespace="people")
    hook.upsert_users([{"external_id": "1024", "email": "digits@example.com"}], idempotency_namespace="digits")
    by_id, digits = emulator.contact(id=1024), emulator.contact("1024")
    assert by_id["external_id"].startswith("u-") and digits["id"] == 1031
    assert emulator.contact(id=1025) is not None and emulator.contact("1025") is None
    return {"id_1024": by_id["external_id"], "id_1025": emulator.contact(id=1025)["external_id"]}


def _states(emulator, contact_id: int) -> dict[int, int]:
    return {s["subscription_id"]: s["state"] for s in emulator.subscriptions(contact_id=contact_id)["states"]}


def test_a_toggle_for_external_id_1024_changes_that_contact_and_never_contact_id_1024(hook, emulator, people):
    contact = hook.update_user_subscriptions("1024", [{"subscription_id": SUBSCRIPTION, "state": 1}],
                                             idempotency_namespace="toggle")
    assert (contact.id, contact.external_id) == (1031, "1024")
    assert _states(emulator, 1031) == {SUBSCRIPTION: 1}
    assert _states(emulator, 1024) == {}
    with pytest.raises(SpotzeeAPIError) as info:  # nobody has external_id "1025"; contact id 1025 exists
        hook.update_user_subscriptions("1025", [{"subscription_id": SUBSCRIPTION, "state": 1}])
    assert info.value.code == "resource_missing"
    assert _states(emulator, 1025) == {}


def test_get_user_returns_only_the_right_person_or_none(hook, people):
    contact = hook.get_user("1024")
    assert (contact.id, contact.external_id) == (1031, "1024")
    assert hook.get_user(" 1024 ").external_id == "1024"
    assert hook.get_user("1025") is None  # contact id 1025 exists, external_id "1025" does not
    assert hook.get_user("99999") is None
    assert hook.get_user(people["id_1024"]).id == 1024


def test_contact_id_is_accepted_only_when_the_answer_is_that_contact(hook, emulator, people, numeric_first):
    if numeric_first:
        assert hook.get_user(contact_id=1024).external_id == people["id_1024"]
        with pytest.warns(DeprecationWarning, match="contact_id"):
            assert hook.get_user(1024).external_id == people["id_1024"]
        contact = hook.update_user_subscriptions(contact_id=1024, toggles=[{"subscription_id": SUBSCRIPTION,
                                                                            "state": 2}])
        assert (contact.id, contact.external_id) == (1024, people["id_1024"])
        assert _states(emulator, 1024) == {SUBSCRIPTION: 2}
    else:  # /users/1024 reads as external_id "1024": contact id 1024 cannot be addressed by number
        with pytest.raises(SpotzeeAPIError) as info:
            hook.get_user(contact_id=1024)
        assert info.value.code == "contact_id_ambiguous"
        with pytest.raises(SpotzeeAPIError, match="external_id"):
            hook.update_user_subscriptions(contact_id=1024, toggles=[{"subscription_id": SUBSCRIPTION, "state": 2}])
        assert _states(emulator, 1024) == {} and _states(emulator, 1031) == {}
    assert hook.get_user(contact_id=1025).external_id == people["id_1025"]  # no collision: both readings agree
    assert hook.get_user(contact_id=5000) is None


def test_the_sensor_never_reports_the_wrong_person_visible(hook, people):
    def sensor(ids: list[str]) -> SpotzeeContactSensor:
        return SpotzeeContactSensor(task_id="wait", external_ids=ids, poke_interval=0.5, timeout=5, deferrable=False)

    assert sensor(["1025"]).poke({}) is False  # only contact *id* 1025 exists
    assert sensor(["1024", "1025"]).poke({}) is False
    assert sensor(["1024", "u-7"]).poke({})


def test_the_operator_toggles_the_external_id_it_was_given(hook, emulator, people):
    op = UserSubscriptionsOperator(task_id="subs", user_id="1024",
                                   toggles=[{"subscription_id": SUBSCRIPTION, "state": 0}])
    assert op.execute({"run_id": "r1"}) == {"id": 1031, "external_id": "1024", "toggles": 1}
    assert _states(emulator, 1031) == {SUBSCRIPTION: 0} and _states(emulator, 1024) == {}


def test_non_numeric_external_ids_keep_the_per_contact_route(hook, emulator, numeric_first):
    hook.upsert_users([{"external_id": "cust-9f4b21", "email": "jane@example.com"}])
    before = emulator.stats()
    contact = hook.update_user_subscriptions("cust-9f4b21", [{"subscription_id": SUBSCRIPTION, "state": 1}])
    assert contact.external_id == "cust-9f4b21"
    after = emulator.stats()
    assert after["requests_total"] - before["requests_total"] == 1  # one PATCH, no search, no batch

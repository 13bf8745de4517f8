"""How a path ``{userId}`` made of digits is read: external_id first (the default) or numeric id first
(``numeric_user_ids_first``), in ``GET /users/{userId}`` and ``PATCH /users/{userId}/subscriptions``."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_spotzee.testing import EmulatorConfig
from airflow_provider_spotzee.testing.__main__ import build_parser, config_from_args
from tests.emulator.helpers import assert_problem

TOGGLE = [{"subscription_id": 7, "state": 1}]


def _two_contacts(client: httpx.Client) -> tuple[dict, dict]:
    """Contact 1 has external_id "first"; contact 2 has external_id "1" (so "1" names both)."""
    out = client.post("/users/batch", json=[{"external_id": "first"}, {"external_id": 1}]).json()
    first, second = (r["contact"] for r in out["results"])
    assert (first["id"], first["external_id"], second["id"], second["external_id"]) == (1, "first", 2, "1")
    return first, second


def test_default_reads_an_all_digit_user_id_as_an_external_id_first(client, emulator):
    assert emulator.config()["numeric_user_ids_first"] is False
    _first, second = _two_contacts(client)
    assert client.get("/users/1").json()["id"] == second["id"]
    toggled = client.patch("/users/1/subscriptions", json=TOGGLE).json()
    assert (toggled["id"], toggled["subscriptions"]) == (second["id"], {"7": 1})
    # no contact has external_id "2": the numeric id is the fallback
    assert client.get("/users/2").json()["external_id"] == "1"


def test_numeric_first_reads_an_all_digit_user_id_as_a_contact_id_first(client, emulator):
    emulator.configure(numeric_user_ids_first=True)
    assert emulator.config()["numeric_user_ids_first"] is True
    first, second = _two_contacts(client)
    assert client.get("/users/1").json()["id"] == first["id"]
    toggled = client.patch("/users/1/subscriptions", json=TOGGLE).json()
    assert (toggled["id"], toggled["subscriptions"]) == (first["id"], {"7": 1})
    assert client.get("/users/first").json()["subscriptions"] == {"7": 1}
    assert client.get("/users/2").json()["subscriptions"] == {}
    # no contact has id 123: the external_id is the fallback
    third = client.post("/users/batch", json=[{"external_id": "123"}]).json()["results"][0]["contact"]
    assert third["id"] == 3
    assert client.get("/users/123").json()["id"] == third["id"]
    assert client.patch("/users/123/subscriptions", json=TOGGLE).json()["id"] == third["id"]
    # neither reading finds anything
    assert_problem(client.get("/users/999"), 404, "resource_missing")
    assert_problem(client.patch("/users/999/subscriptions", json=TOGGLE), 404, "resource_missing")
    # the switch can be turned off again at run time
    emulator.configure(numeric_user_ids_first=False)
    assert client.get("/users/1").json()["id"] == second["id"]


@pytest.mark.parametrize("numeric_first", [False, True])
def test_only_ascii_digits_are_a_numeric_id(client, emulator, numeric_first):
    """Other Unicode digits are an external_id only: "١" (Arabic-Indic one) and "²" are not contact 1 or 2."""
    emulator.configure(numeric_user_ids_first=numeric_first)
    _two_contacts(client)
    for text in ("١", "²", " 1", "+1", "1.0"):
        assert_problem(client.get("/users/" + quote(text, safe="")), 404, "resource_missing")
    client.post("/users/batch", json=[{"external_id": "²"}])
    assert client.get("/users/%C2%B2").json()["external_id"] == "²"


def test_a_long_digit_string_is_only_an_external_id(client, emulator):
    emulator.configure(numeric_user_ids_first=True)
    long_id = "9" * 40
    client.post("/users/batch", json=[{"external_id": long_id}])
    assert client.get(f"/users/{long_id}").json()["external_id"] == long_id


def test_the_switch_in_config_cli_and_json():
    assert EmulatorConfig().numeric_user_ids_first is False
    config = EmulatorConfig(numeric_user_ids_first=True)
    assert config.to_dict()["numeric_user_ids_first"] is True
    assert EmulatorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.public_dict()["numeric_user_ids_first"] is True
    with pytest.raises(ValueError, match="numeric_user_ids_first must be a boolean"):
        EmulatorConfig(numeric_user_ids_first="yes")  # type: ignore[arg-type]
    assert config_from_args(build_parser().parse_args([])).numeric_user_ids_first is False
    flagged = config_from_args(build_parser().parse_args(["--numeric-user-ids-first"]))
    assert flagged == dataclasses.replace(config_from_args(build_parser().parse_args([])),
                                          numeric_user_ids_first=True)


def test_the_admin_config_endpoint_refuses_a_non_boolean(emulator):
    with httpx.Client(base_url=emulator.root_url, trust_env=False) as admin:
        response = admin.post("/__emulator/config", json={"numeric_user_ids_first": "yes"})
    assert response.status_code == 400
    assert emulator.config()["numeric_user_ids_first"] is False

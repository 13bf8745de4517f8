"""Row → payload mapping (pure)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_spotzee.exceptions import SpotzeeConfigError
from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING, build_mapper, check_columns, json_value


def test_guide_mapping():
    mapper = build_mapper(CRM_GUIDE_MAPPING)
    row = {
        "id": 7,
        "email_address": "a@example.com",
        "phone_e164": None,
        "locale": "en-AU",
        "timezone": "Australia/Sydney",
        "first_name": "Ann",
        "last_name": "Lee",
        "secret_col": "x",
    }
    assert mapper(row) == {
        "external_id": 7,
        "email": "a@example.com",
        "locale": "en-AU",
        "timezone": "Australia/Sydney",
        "data": {"first_name": "Ann", "last_name": "Lee"},
    }


def test_value_conversion():
    assert json_value(Decimal("12.50")) == 12.5
    assert json_value(Decimal(3)) == 3
    assert json_value(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert json_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert json_value(Decimal("NaN")) != json_value(Decimal("NaN"))  # NaN stays NaN: validation reports it


def test_wrong_columns_fail_before_sending():
    mapper = build_mapper({"id": "external_id", "emial": "email"})
    with pytest.raises(SpotzeeConfigError, match="emial"):
        check_columns(mapper, ["id", "email"])


@pytest.mark.parametrize("mapping", [{}, {"id": ""}, {"id": "data."}, 42])
def test_bad_mappings(mapping):
    with pytest.raises(SpotzeeConfigError):
        build_mapper(mapping)

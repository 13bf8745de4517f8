"""``api_facts`` is the one home of the API's facts: it agrees with docs/api-contract.md, and every copy
the emulator keeps under its own name is built from it.

The page is parsed, not trusted by eye: the facts table under "Where the facts live", the version line in
"Basics", the plan table in "Rate limits" and the transient-codes sentence in "Errors".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_spotzee import api_facts
from airflow_provider_spotzee import validation as v

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "api-contract.md"


@pytest.fixture(scope="module")
def page() -> str:
    return CONTRACT.read_text(encoding="utf-8")


def _section(page: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.MULTILINE | re.DOTALL)
    assert match, f"docs/api-contract.md has no '## {title}' section"
    return match.group(1)


def _table(text: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table in ``text``, header and rule excluded."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [row for row in rows[1:] if not set("".join(row)) <= set("-: ")]


def _codes(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", text))


def _facts_table(page: str) -> dict[str, str]:
    """``api_facts`` name -> the value cell, from the table under "Where the facts live"."""
    table = {}
    for _fact, value, name in _table(_section(page, "Where the facts live")):
        table[name.strip("`").removesuffix("()")] = value
    return table


def test_the_facts_table_names_every_fact_and_only_real_ones(page):
    table = _facts_table(page)
    assert set(table) == {
        "CURRENT_API_VERSION", "MAX_BATCH_SIZE", "RATE_WINDOW_SECONDS", "TRANSIENT_ITEM_CODES",
        "IDEMPOTENCY_TTL_SECONDS", "MAX_IDEMPOTENCY_KEY_LEN", "PLANS", "is_api_version",
    }
    for name in table:
        assert hasattr(api_facts, name), name


def test_version(page):
    table = _facts_table(page)
    assert table["CURRENT_API_VERSION"] == f"`{api_facts.CURRENT_API_VERSION}`"
    basics = _section(page, "Basics")
    current = re.search(r"`(\d{4}-\d{2}-\d{2})` \(current, the default\)", basics)
    assert current and current.group(1) == api_facts.CURRENT_API_VERSION
    assert api_facts.is_api_version(api_facts.CURRENT_API_VERSION)


def test_batch_cap(page):
    assert _facts_table(page)["MAX_BATCH_SIZE"] == str(api_facts.MAX_BATCH_SIZE)
    bodies = re.search(r"every write takes a bare JSON array of 1–(\d+) items", page)
    assert bodies and int(bodies.group(1)) == api_facts.MAX_BATCH_SIZE
    pages = re.search(r"`limit` \(1–(\d+), default 25\)", page)
    assert pages and int(pages.group(1)) == api_facts.MAX_BATCH_SIZE


def test_rate_window(page):
    assert _facts_table(page)["RATE_WINDOW_SECONDS"] == f"{api_facts.RATE_WINDOW_SECONDS:g} s"
    stated = re.search(r"over a sliding (\d+) s\s+window", _section(page, "Rate limits"))
    assert stated and float(stated.group(1)) == api_facts.RATE_WINDOW_SECONDS


def test_transient_item_codes(page):
    assert _codes(_facts_table(page)["TRANSIENT_ITEM_CODES"]) == api_facts.TRANSIENT_ITEM_CODES
    sentence = re.search(r"((?:`[a-z_]+`(?:, | and ))+`[a-z_]+`) are transient", _section(page, "Errors"))
    assert sentence and _codes(sentence.group(1)) == api_facts.TRANSIENT_ITEM_CODES


def test_idempotency_limits(page):
    table = _facts_table(page)
    assert table["IDEMPOTENCY_TTL_SECONDS"] == f"{api_facts.IDEMPOTENCY_TTL_SECONDS / 3600:g} h"
    assert table["MAX_IDEMPOTENCY_KEY_LEN"] == f"1–{api_facts.MAX_IDEMPOTENCY_KEY_LEN} characters"
    idempotency = _section(page, "Idempotency")
    assert f"remembered for {api_facts.IDEMPOTENCY_TTL_SECONDS / 3600:g} h" in idempotency
    assert f"> {api_facts.MAX_IDEMPOTENCY_KEY_LEN} → 400 `idempotency_key_invalid`" in idempotency


def _number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("×"))


def test_plans(page):
    rows = _table(_section(page, "Rate limits"))
    stated = {}
    for name, read, write, burst, limits in rows:
        stated[name.strip("`")] = (_number(read), _number(write), _number(burst))
        window = api_facts.RATE_WINDOW_SECONDS
        assert limits == f"{_number(read) * window:.0f} / {_number(write) * window:.0f}", name
    assert stated == {
        name: (plan.read_rps, plan.write_rps, plan.burst) for name, plan in api_facts.PLANS.items()
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2026-04-28", True), ("2024-02-29", True), ("2025-02-29", False), ("2026-13-01", False),
     ("26-04-28", False), ("2026-04-28\n", False), ("２０２６-04-28", False), ("latest", False), ("", False)],
)
def test_is_api_version(value, expected):
    assert api_facts.is_api_version(value) is expected


# --------------------------------------------------------------- the emulator's names are built from api_facts


def test_the_emulator_takes_its_facts_from_api_facts():
    from airflow_provider_spotzee import testing
    from airflow_provider_spotzee.testing import endpoints, idempotency, items, problems, ratelimit
    from airflow_provider_spotzee.testing.config import EmulatorConfig

    assert testing.CURRENT_VERSION == api_facts.CURRENT_API_VERSION
    assert api_facts.CURRENT_API_VERSION in testing.SUPPORTED_VERSIONS
    assert all(api_facts.is_api_version(version) for version in testing.SUPPORTED_VERSIONS)
    assert problems.TRANSIENT_ITEM_CODES is api_facts.TRANSIENT_ITEM_CODES
    assert api_facts.TRANSIENT_ITEM_CODES <= set(problems.CATALOGUE)
    assert ratelimit.WINDOW_SECONDS == api_facts.RATE_WINDOW_SECONDS
    assert items.MAX_ITEMS == endpoints.MAX_LIMIT == api_facts.MAX_BATCH_SIZE
    assert idempotency.MAX_KEY_LENGTH == api_facts.MAX_IDEMPOTENCY_KEY_LEN
    assert EmulatorConfig().idempotency_ttl_seconds == api_facts.IDEMPOTENCY_TTL_SECONDS
    # the emulator's Plan type (read/write/burst) is a view of the one table, and its default plans are it
    assert {name: (p.read, p.write, p.burst) for name, p in testing.PLANS.items()} == {
        name: (p.read_rps, p.write_rps, p.burst) for name, p in api_facts.PLANS.items()
    }
    assert EmulatorConfig().plans == testing.PLANS


def test_the_client_takes_its_facts_from_api_facts():
    from airflow_provider_spotzee import config, send

    # the modules' own bindings (they import the names; they do not re-export them)
    assert vars(config)["CURRENT_API_VERSION"] is api_facts.CURRENT_API_VERSION
    assert vars(config)["PLANS"] is api_facts.PLANS
    assert vars(send)["TRANSIENT_ITEM_CODES"] is api_facts.TRANSIENT_ITEM_CODES
    assert config.ClientConfig("http://127.0.0.1:1/api/client", "sk_x").api_version == api_facts.CURRENT_API_VERSION


_ECHO_VALUES = [
    "cust-1", " padded ", "", "x" * 300, 42, 0, -7, True, False, None, 1.5, b"bytes", ["a"], {"a": 1}, "😀",
]


@pytest.mark.parametrize("value", _ECHO_VALUES, ids=range(len(_ECHO_VALUES)))
def test_one_echo_rule_for_failed_items(value):
    """The emulator echoes a failed item's ids by ``validation.echo_identifier``; the client's own failure
    reports (``send._raw_id``, a copy in a file this test does not own) name records the same way."""
    from airflow_provider_spotzee import send
    from airflow_provider_spotzee.testing import items

    expected = v.echo_identifier(value)
    assert items.echo_identity({"external_id": value, "anonymous_id": value}) == (expected, expected)
    assert send._raw_id({"external_id": value}, "external_id") == expected
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        assert expected == str(value)[: v.MAX_IDENTIFIER_LEN]
    else:
        assert expected is None

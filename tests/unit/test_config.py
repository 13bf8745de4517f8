"""Connection → ClientConfig rules (pure)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_spotzee.config import (
    CURRENT_API_VERSION,
    DEFAULT_BASE_URL,
    check_api_key,
    client_config_from_connection,
    resolve_base_url,
)
from airflow_provider_spotzee.exceptions import SpotzeeConfigError


class Conn:
    def __init__(self, host=None, password="sk_test_abc", port=None, schema=None, extra=None):
        self.host, self.password, self.port, self.schema = host, password, port, schema
        self.extra = json.dumps(extra or {})

    @property
    def extra_dejson(self):
        return json.loads(self.extra)


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        (None, None, None, DEFAULT_BASE_URL),
        ("", None, None, DEFAULT_BASE_URL),
        ("http://127.0.0.1:8089/api/client", None, None, "http://127.0.0.1:8089/api/client"),
        ("https://eu.example.com/api/client/", None, None, "https://eu.example.com/api/client"),
        ("apix.spotzee.com", None, None, "https://apix.spotzee.com/api/client"),
        ("127.0.0.1", 8089, None, "http://127.0.0.1:8089/api/client"),
        ("localhost", 9000, "v2/client", "http://localhost:9000/v2/client"),
    ],
)
def test_base_url_rules(host, port, schema, expected):
    assert resolve_base_url(host, port, schema) == expected


@pytest.mark.parametrize(
    "host", ["http://example.com/api/client", "http://10.0.0.5:8089", "ftp://x", "https://u:p@x.com"]
)
def test_insecure_or_odd_urls_refused(host):
    with pytest.raises(SpotzeeConfigError):
        resolve_base_url(host)


def test_api_key_rules_never_echo_the_key():
    assert check_api_key(" sk_live_123 ") == "sk_live_123"
    for bad in (None, "", "pk_live_SECRETVALUE"):
        with pytest.raises(SpotzeeConfigError) as info:
            check_api_key(bad)
        assert "SECRETVALUE" not in str(info.value)


def test_extras_and_defaults():
    config = client_config_from_connection(
        Conn(extra={"plan": "professional", "timeout": "5", "max_in_flight": 4})
    )
    assert config.plan == "professional" and config.requests_per_second == 500
    assert config.timeout == 5.0 and config.max_in_flight == 4 and config.api_version == CURRENT_API_VERSION
    assert "sk_test_abc" not in repr(config)
    override = client_config_from_connection(
        Conn(extra={"requests_per_second": 42, "api_version": "2026-01-20"})
    )
    assert override.requests_per_second == 42 and override.api_version == "2026-01-20"


def test_unknown_extras_ignored_not_sent(caplog):
    config = client_config_from_connection(Conn(extra={"X-Secret-Header": "hunter2"}))
    assert "ignoring unknown" in caplog.text.lower()
    assert "hunter2" not in caplog.text and "hunter2" not in repr(config)


@pytest.mark.parametrize("extra", [{"plan": "gold"}, {"timeout": "soon"}, {"max_in_flight": 0}])
def test_bad_extras_fail_clearly(extra):
    with pytest.raises(SpotzeeConfigError):
        client_config_from_connection(Conn(extra=extra))


@pytest.mark.parametrize("version", ["2026-02-30", "yesterday", "2026-4-28", "20260428"])
def test_api_version_must_be_a_real_date(version):
    with pytest.raises(SpotzeeConfigError, match="api_version"):
        client_config_from_connection(Conn(extra={"api_version": version}))


def test_transport_extra_is_httpx_or_asyncio():
    from airflow_provider_spotzee.config import client_config_from_connection
    from airflow_provider_spotzee.exceptions import SpotzeeConfigError

    def conn(extra):
        from airflow.models.connection import Connection

        return Connection(conn_id="s", conn_type="spotzee", host="http://127.0.0.1:8089/api/client",
                          password="sk_test_x", extra=extra)

    assert client_config_from_connection(conn('{"transport": "asyncio"}')).transport == "asyncio"
    assert client_config_from_connection(conn("{}")).transport is None
    with pytest.raises(SpotzeeConfigError, match="'transport' must be one of"):
        client_config_from_connection(conn('{"transport": "curl"}'))

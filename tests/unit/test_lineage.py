"""lineage.py: Spotzee asset URIs and alias names, OpenLineage facets of a sync, and the optional import.

The facets are built from a SQLite connection given as an ``AIRFLOW_CONN_*`` variable (no metadata
database needed); the PostgreSQL naming is tested against a real server in tests/integration/test_history.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_spotzee.lineage import (
    asset_alias_name,
    asset_object,
    openlineage_facets,
    spotzee_asset_uri,
)
from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("endpoint", "obj"), [
    ("users_batch", "users"), ("users_async", "users"), ("events", "events"),
    ("subscriptions_batch", "subscriptions"),
])
def test_asset_object(endpoint: str, obj: str) -> None:
    assert asset_object(endpoint) == obj


def test_an_unknown_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Spotzee endpoint 'contacts'"):
        asset_object("contacts")


@pytest.mark.parametrize(("base_url", "uri"), [
    ("https://apix.spotzee.com/api/client", "spotzee://apix.spotzee.com/users"),
    ("https://APIX.Spotzee.com:443/api/client/", "spotzee://apix.spotzee.com:443/users"),
    ("http://127.0.0.1:8089/api/client", "spotzee://127.0.0.1:8089/users"),
    ("http://[::1]:8089/api/client", "spotzee://[::1]:8089/users"),
    ("apix.spotzee.com", "spotzee://apix.spotzee.com/users"),
])
def test_spotzee_asset_uri(base_url: str, uri: str) -> None:
    assert spotzee_asset_uri(base_url, "users_batch") == uri


def test_asset_uri_is_per_object_and_needs_a_host() -> None:
    url = "https://apix.spotzee.com/api/client"
    assert {spotzee_asset_uri(url, e) for e in ("users_batch", "users_async")} == {"spotzee://apix.spotzee.com/users"}
    assert spotzee_asset_uri(url, "subscriptions_batch") == "spotzee://apix.spotzee.com/subscriptions"
    with pytest.raises(ValueError, match="no host"):
        spotzee_asset_uri("https:///api/client", "events")


def test_asset_uri_is_a_valid_airflow_asset() -> None:
    from airflow.sdk import Asset, AssetAlias

    asset = Asset(spotzee_asset_uri("http://127.0.0.1:8089/api/client", "events"))
    assert asset.uri == "spotzee://127.0.0.1:8089/events"
    alias = AssetAlias(asset_alias_name("spotzee_default", "users_batch"))
    assert alias.name == "spotzee:spotzee_default/users"
    assert asset_alias_name("spotzee_default", "users_async") == alias.name != asset_alias_name("other", "users_batch")


@pytest.fixture
def sqlite_crm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    path = tmp_path / "crm.db"
    monkeypatch.setenv("AIRFLOW_CONN_UNIT_CRM", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return str(path)


def test_facets_of_a_table_sync(sqlite_crm: str) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    lineage = openlineage_facets(source_conn_id="unit_crm", table="customers", sql=None, mapping=CRM_GUIDE_MAPPING,
                                 endpoint_name="users_batch", base_url="http://127.0.0.1:8089/api/client",
                                 summary={"sent_ok": 1990, "invalid": 10})
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(f"sqlite://{sqlite_crm}", "customers")]
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("spotzee://127.0.0.1:8089", "users")
    assert output.outputFacets["outputStatistics"].rowCount == 1990
    fields = output.facets["columnLineage"].fields
    assert set(fields) == set(CRM_GUIDE_MAPPING.values())
    assert [(f.namespace, f.name, f.field) for f in fields["data.first_name"].inputFields] == [
        (f"sqlite://{sqlite_crm}", "customers", "first_name")]
    assert fields["external_id"].inputFields[0].field == "id"
    assert lineage.run_facets == {} and lineage.job_facets == {}


def test_facets_of_a_sql_sync_name_every_table_it_reads(sqlite_crm: str) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    sql = "SELECT c.id, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 0"
    lineage = openlineage_facets(source_conn_id="unit_crm", table=None, sql=sql, mapping={"id": "external_id"},
                                 endpoint_name="events", base_url="https://apix.spotzee.com/api/client",
                                 summary=None)
    assert sorted(d.name for d in lineage.inputs) == ["customers", "orders"]
    assert lineage.job_facets["sql"].query == sql
    (output,) = lineage.outputs
    assert output.outputFacets == {}  # no summary (the task failed before it had one): no statistics
    assert {f.name for f in output.facets["columnLineage"].fields["external_id"].inputFields} == {"customers", "orders"}


def test_facets_of_records_and_of_a_failure() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    try:
        raise RuntimeError("Spotzee kept failing")
    except RuntimeError as exc:
        error = exc
    lineage = openlineage_facets(source_conn_id=None, table=None, sql=None, mapping=lambda row: row,
                                 endpoint_name="subscriptions_batch", base_url="https://apix.spotzee.com/api/client",
                                 summary={"sent_ok": 0}, error=error)
    assert lineage.inputs == []
    (output,) = lineage.outputs
    assert output.name == "subscriptions" and "columnLineage" not in output.facets  # a callable names no columns
    facet = lineage.run_facets["errorMessage"]
    assert facet.message == "RuntimeError: Spotzee kept failing" and facet.programmingLanguage == "python"
    assert "test_facets_of_records_and_of_a_failure" in facet.stackTrace


def test_without_the_openlineage_provider_nothing_is_imported_and_none_is_returned() -> None:
    """Run in a fresh interpreter where the OpenLineage client (``openlineage``) and the provider's modules
    cannot be found, as when they are not installed. (Only the provider's metadata, ``get_provider_info``,
    stays findable: Airflow's own provider discovery reads it from the installed distribution, which this
    test cannot uninstall.) The module and the operators import, the asset helpers work, the facets are
    ``None``, and nothing of OpenLineage was loaded on the way."""
    code = """
import sys
from importlib.abc import MetaPathFinder
class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("openlineage", "airflow.providers.openlineage.")) and not name.endswith(".get_provider_info"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
from airflow_provider_spotzee import lineage
from airflow_provider_spotzee.operators.users import UpsertUsersOperator  # the operators import too
assert lineage.spotzee_asset_uri("https://apix.spotzee.com/api/client", "events") == "spotzee://apix.spotzee.com/events"
assert lineage.openlineage_facets(source_conn_id=None, table=None, sql=None, mapping=None,
                                  endpoint_name="events", base_url="https://apix.spotzee.com/api/client",
                                  summary={"sent_ok": 1}) is None
loaded = sorted(m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openlineage.")))
assert loaded in ([], ["airflow.providers.openlineage.get_provider_info"]), loaded
print("OK")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout[-2000:] + done.stderr[-3000:]

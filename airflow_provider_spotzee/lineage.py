"""Where a sync's data goes, for Airflow's Assets and for OpenLineage (docs/observability.md).

- **Assets.** Every sync writes to one Spotzee object, ``spotzee://<host[:port]>/<object>`` (``users``,
  ``events`` or ``subscriptions``). An operator does not know the host when the DAG is parsed (it is in the
  connection), so it declares an ``AssetAlias`` named by :func:`asset_alias_name` and, when it runs, adds
  an event for the Asset :func:`spotzee_asset_uri` with the summary counts as ``extra``.
- **OpenLineage.** :func:`openlineage_facets` builds the ``OperatorLineage`` of a sync: the SQL source as
  input (named as common.sql's own OpenLineage helpers name it), the Spotzee object as output with the
  rows sent and a column-lineage facet from the mapping, and an error facet when the task failed.
  ``apache-airflow-providers-openlineage`` is optional: it is imported inside the function only, and
  without it the function returns ``None``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

__all__ = ["ASSET_SCHEME", "asset_alias_name", "asset_object", "openlineage_facets", "spotzee_asset_uri"]

ASSET_SCHEME = "spotzee"
#: Endpoint name → the Spotzee object it writes.
OBJECTS = {
    "users_batch": "users",
    "users_async": "users",
    "users": "users",
    "events": "events",
    "subscriptions_batch": "subscriptions",
    "subscriptions": "subscriptions",
}


def asset_object(endpoint_name: str) -> str:
    """The Spotzee object an endpoint writes: ``users``, ``events`` or ``subscriptions``."""
    try:
        return OBJECTS[endpoint_name]
    except KeyError:
        raise ValueError(f"unknown Spotzee endpoint {endpoint_name!r}; expected one of {', '.join(OBJECTS)}") from None


def spotzee_asset_uri(base_url: str, endpoint_name: str) -> str:
    """``spotzee://<host[:port]>/<object>`` for a connection's base URL (``https://apix.spotzee.com/api/client``
    → ``spotzee://apix.spotzee.com/users``). The host is lower case; the port only when the URL names one."""
    parts = urlsplit(base_url if "://" in base_url else f"https://{base_url}")
    if not parts.hostname:
        raise ValueError(f"no host in Spotzee base URL {base_url!r}")
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    authority = f"{host}:{parts.port}" if parts.port else host
    return f"{ASSET_SCHEME}://{authority}/{asset_object(endpoint_name)}"


def asset_alias_name(conn_id: str, endpoint_name: str) -> str:
    """The ``AssetAlias`` an operator on ``conn_id`` declares at parse time: ``spotzee:<conn_id>/<object>``.
    Every sync to the same object through the same connection shares it."""
    return f"{ASSET_SCHEME}:{conn_id}/{asset_object(endpoint_name)}"


def openlineage_facets(*, source_conn_id: str | None, table: str | None, sql: str | None, mapping: Any,
                       endpoint_name: str, base_url: str | None, summary: Mapping[str, Any] | None,
                       error: BaseException | None = None) -> Any:
    """The ``OperatorLineage`` of one sync, or ``None`` without ``apache-airflow-providers-openlineage``.

    - inputs: the SQL source (``table=``, or every table ``sql=`` reads); none for ``records=``;
    - outputs: ``spotzee://<host>`` / ``users|events|subscriptions``, with ``outputStatistics`` (rowCount:
      the records Spotzee accepted) and ``columnLineage`` (each mapped source column → its Spotzee field,
      custom attributes as ``data.<name>``);
    - run facets: ``errorMessage`` when ``error`` is given;
    - job facets: ``sql`` for ``sql=``.
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.facet_v2 import (
            column_lineage_dataset,
            error_message_run,
            output_statistics_output_dataset,
        )
    except ImportError:
        return None

    inputs: list[Any] = []
    job_facets: dict[str, Any] = {}
    if source_conn_id is not None and (table or sql):
        inputs, job_facets = _source_datasets(source_conn_id, table, sql)

    outputs: list[Any] = []
    if base_url:
        uri = spotzee_asset_uri(base_url, endpoint_name)
        namespace, name = uri.rsplit("/", 1)
        facets: dict[str, Any] = {}
        lineage = _column_lineage(mapping, inputs, column_lineage_dataset)
        if lineage is not None:
            facets["columnLineage"] = lineage
        output_facets: dict[str, Any] = {}
        if summary is not None:
            output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=int(summary.get("sent_ok") or 0))
        outputs.append(OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets))

    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}", programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error)))
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets, job_facets=job_facets)


def _source_datasets(conn_id: str, table: str | None, sql: str | None) -> tuple[list[Any], dict[str, Any]]:
    """The input datasets of a SQL source, and the ``sql`` job facet for ``sql=``.

    A hook with OpenLineage database info (PostgreSQL, MySQL, Snowflake, ...) goes through common.sql's own
    helper, so the names are the ones a ``SQLExecuteQueryOperator`` on the same tables reports
    (``postgres://host:5432`` / ``db.schema.table``). A hook without (SQLite) is named from the connection:
    namespace ``sqlite://<path>`` (``<scheme>://<host>`` for others), name the table."""
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.openlineage.sqlparser import SQLParser, get_openlineage_facets_with_sql
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import sql_job

    query = sql if sql is not None else f"SELECT * FROM {table}"
    job_facets: dict[str, Any] = {"sql": sql_job.SQLJobFacet(query=SQLParser.normalize_sql(sql))} if sql else {}
    connection = BaseHook.get_connection(conn_id)
    hook = connection.get_hook()
    try:
        info = hook.get_openlineage_database_info(connection)
    except Exception:  # a hook that cannot say (e.g. a missing optional provider): named from the connection
        log.debug("no OpenLineage database info for %s", conn_id, exc_info=True)
        info = None
    if info is not None:
        found = get_openlineage_facets_with_sql(hook, query, conn_id, None, use_connection=False,
                                                connection=connection, database_info=info)
        if found is not None and found.inputs:
            return list(found.inputs), job_facets
    scheme = str(connection.conn_type or "sql")
    namespace = f"{scheme}://{connection.host or ''}"
    if table is not None:
        names = [table]
    else:
        parsed = SQLParser(dialect=scheme if scheme in ("sqlite", "mysql", "postgres") else "generic").parse(
            SQLParser.split_sql_string(query))
        names = [meta.qualified_name for meta in (parsed.in_tables if parsed else [])]
    return [Dataset(namespace=namespace, name=name) for name in dict.fromkeys(names)], job_facets


def _column_lineage(mapping: Any, inputs: list[Any], module: Any) -> Any:
    """``columnLineage`` from a ``{column: field}`` mapping (a callable mapping says nothing about columns).
    With several input tables (a join) each field lists the column in every one of them."""
    if not isinstance(mapping, Mapping) or not mapping or not inputs:
        return None
    fields = {}
    for column, target in mapping.items():
        fields[str(target)] = module.Fields(
            inputFields=[
                module.InputField(namespace=source.namespace, name=source.name, field=str(column),
                                  transformations=[module.Transformation(type="DIRECT", subtype="IDENTITY")])
                for source in inputs
            ],
            transformationDescription="copied by the Spotzee mapping",
            transformationType="IDENTITY",
        )
    return module.ColumnLineageDatasetFacet(fields=fields)

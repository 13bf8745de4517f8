"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-spotzee",
        "name": "Spotzee",
        "description": "Sync contacts, events and subscriptions to Spotzee: idempotent, paced and resumable.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Spotzee",
                "external-doc-url": "https://docs.spotzee.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Spotzee", "python-modules": ["airflow_provider_spotzee.hooks.spotzee"]}],
        "operators": [
            {
                "integration-name": "Spotzee",
                "python-modules": [
                    "airflow_provider_spotzee.operators.users",
                    "airflow_provider_spotzee.operators.events",
                    "airflow_provider_spotzee.operators.subscriptions",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Spotzee", "python-modules": ["airflow_provider_spotzee.sensors.contacts"]}
        ],
        "triggers": [
            {"integration-name": "Spotzee", "python-modules": ["airflow_provider_spotzee.triggers.contacts"]}
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_spotzee.hooks.spotzee.SpotzeeHook",
                "hook-name": "Spotzee",
                "connection-type": "spotzee",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "API key (sk_…)"},
                    "placeholders": {
                        "host": "https://apix.spotzee.com/api/client",
                        "password": "sk_…",
                    },
                },
                "conn-fields": {
                    "api_version": {
                        "label": "API version",
                        "description": "Pins the Spotzee-Version header (YYYY-MM-DD). Empty: 2026-04-28.",
                        "schema": {"type": ["string", "null"], "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                    },
                    "plan": {
                        "label": "Plan",
                        "description": "Sets the rate budget: starter 100, professional 500, enterprise 2,500 write req/s.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["starter", "professional", "enterprise", None],
                            "default": "starter",
                        },
                    },
                    "requests_per_second": {
                        "label": "Write requests per second",
                        "description": "Overrides the plan's write budget (e.g. a share of it when several DAGs use one key).",
                        "schema": {"type": ["number", "null"], "minimum": 0.1},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Per-request timeout. Default 30.",
                        "schema": {"type": ["number", "null"], "minimum": 0.1, "default": 30},
                    },
                    "max_in_flight": {
                        "label": "Batches in flight",
                        "description": "Concurrent requests per task. Default 16.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 16},
                    },
                    "transport": {
                        "label": "HTTP client",
                        "description": "httpx (default) or asyncio: the provider's own HTTP/1.1 client, less CPU per request.",
                        "schema": {"type": ["string", "null"], "enum": ["httpx", "asyncio", None], "default": "httpx"},
                    },
                },
            }
        ],
    }

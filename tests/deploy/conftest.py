"""A real distributed deployment for the tests in this directory: PostgreSQL metadata database, Redis
broker, api-server, dag-processor, scheduler with the CeleryExecutor and two Celery workers, each with its
own local disk (see ``benchmarks/celery.py``, which the ``celery`` benchmark runs too)."""

from __future__ import annotations

import pytest

from benchmarks.celery import missing


@pytest.fixture(scope="session")
def celery_ready() -> None:
    """Skip (with the reason) where the deployment's parts are not installed: PostgreSQL and redis-server
    (Debian packages ``postgresql``, ``redis-server``) and ``apache-airflow-providers-celery``."""
    reason = missing()
    if reason:
        pytest.skip(f"Celery deployment test: {reason}")

"""The DAG tests' real-Airflow fixtures (a migrated AIRFLOW_HOME, the CLI wired to the emulator and a
SQLite CRM), shared with the documentation tests rather than copied."""

from tests.dags.conftest import airflow, airflow_home  # noqa: F401 - fixtures, used by name

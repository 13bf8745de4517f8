"""The sync engine: extract → (diff) → map → send → commit → report, with no Airflow imports.

The operators (``airflow_provider_spotzee.operators``) hold arguments and the Airflow context (namespace,
window, stores, XCom, thresholds) and hand the engine plain objects: a row stream, a mapper, a store with
``get``/``set``, a failure file path, and a ``send`` callable (the hook's). See docs/architecture.md.
"""

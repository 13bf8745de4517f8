"""Benchmarks for airflow-provider-spotzee: ``python -m benchmarks`` (or ``./run bench``).

Every figure is printed next to a baseline measured in the same run, as a ratio, because the 2-core
development machine is noisy. Nothing here asserts on time. See ``docs/performance.md`` for the results
and what limits each figure.
"""

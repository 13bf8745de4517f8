"""Duplicates within one run: every record of a contact but its last is ``unchanged`` (not sent)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Dedupe:
    """In-memory records: the superseded positions are known up front. SQL sources: the values that occur
    more than once in the window are counted by one query; rows come in cursor order, so the last one of a
    value is its latest state. A resumed run counts only the rows after its checkpoint."""

    def __init__(self, *, positions: set[int] | None = None, column: str | None = None,
                 remaining: dict[Any, int] | None = None) -> None:
        self.positions, self.column, self.remaining = positions, column, remaining

    @classmethod
    def for_records(cls, records: Iterable[Any], mapper: Callable[[Any], dict[str, Any]], key: str) -> Dedupe:
        last: dict[Any, int] = {}
        positions: set[int] = set()
        for position, row in enumerate(records):
            try:
                ident = mapper(row).get(key) if isinstance(row, Mapping) else getattr(row, key, None)
            except Exception:  # noqa: BLE001 - the same row is reported invalid when it is mapped
                ident = None
            if blank(ident):  # no identity: reported invalid, never "superseded"
                continue
            if ident in last:
                positions.add(last[ident])
            last[ident] = position
        return cls(positions=positions)

    def superseded(self, index: int, row: Any) -> bool:
        if self.positions is not None:
            return index in self.positions
        if not self.remaining or not isinstance(row, Mapping) or self.column is None:
            return False
        value = row.get(self.column)
        if blank(value) or value not in self.remaining:
            return False
        self.remaining[value] -= 1
        return self.remaining[value] > 0

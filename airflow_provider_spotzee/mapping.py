"""Map source rows to Spotzee payloads.

A mapping is either a callable ``row -> payload`` or a dict ``{column: target}`` where a target is a
payload field (``external_id``, ``email``, …) or a dotted path (``data.first_name``,
``user.email`` for events). Columns not named in the mapping are not sent. Values are converted to
JSON the way a DAG author expects: ``Decimal`` → number, ``datetime``/``date`` → ISO 8601,
``bytes`` → left as is (then reported invalid, never sent).
"""

from __future__ import annotations

import datetime as dt
import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from airflow_provider_spotzee.exceptions import SpotzeeConfigError

Row = Mapping[str, Any]
Mapper = Callable[[Row], dict[str, Any]]

#: The sync guide's CRM table (docs: "Map your fields to Spotzee's schema").
CRM_GUIDE_MAPPING: dict[str, str] = {
    "id": "external_id",
    "email_address": "email",
    "phone_e164": "phone",
    "locale": "locale",
    "timezone": "timezone",
    "first_name": "data.first_name",
    "last_name": "data.last_name",
}


def json_value(value: Any) -> Any:
    """A database value as JSON. Non-finite numbers stay floats so validation reports them."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return float("nan")
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


#: Types :func:`json_value` returns unchanged (exactly these; subclasses go through it).
_AS_IS = frozenset({str, int, float, bool})


def _assign(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = payload
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def build_mapper(mapping: Mapping[str, str] | Mapper | None) -> Mapper:
    """A function ``row -> payload``. ``None`` means rows already are payloads (values still converted)."""
    if mapping is None:
        return lambda row: {key: json_value(value) for key, value in row.items()}
    if callable(mapping):
        return mapping
    if not isinstance(mapping, Mapping) or not mapping:
        raise SpotzeeConfigError("mapping must be a non-empty {column: field} dict or a callable row -> payload")
    # (column, target path, the target's name when it is a top-level field, else None)
    plan: list[tuple[str, tuple[str, ...], str | None]] = []
    for column, target in mapping.items():
        if not isinstance(target, str) or not target or any(not part for part in target.split(".")):
            raise SpotzeeConfigError(f"mapping target for column {column!r} must be a field such as 'email' or 'data.plan'")
        path = tuple(target.split("."))
        plan.append((column, path, path[0] if len(path) == 1 else None))

    def mapper(row: Row) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for column, path, field in plan:
            value = row.get(column)
            if value is None:
                continue
            if type(value) not in _AS_IS:
                value = json_value(value)
            if field is not None:
                payload[field] = value
            else:
                _assign(payload, path, value)
        return payload

    mapper.columns = [column for column, _, _ in plan]  # type: ignore[attr-defined]
    return mapper


def check_columns(mapper: Mapper, columns: Iterable[str]) -> None:
    """Fail fast (before anything is sent) when a dict mapping names a column the source does not have."""
    wanted = getattr(mapper, "columns", None)
    if not wanted:
        return
    present = set(columns)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise SpotzeeConfigError(f"mapping names columns the source does not have: {missing} (source columns: {sorted(present)})")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``UserProfile | None`` → ``UserProfile``), if any."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or \
        typing.get_origin(annotation) is typing.Union else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_object(annotation: Any) -> bool:
    """Whether a field holds a free-form JSON object (``data``): any key below it is the user's."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return any(candidate is dict or typing.get_origin(candidate) is dict for candidate in candidates)


def check_targets(mapping: Mapping[str, str], model: type[BaseModel]) -> None:
    """Refuse, when the DAG is parsed, a dict mapping whose target is not a field of the payload ``model``:
    a misspelled target would otherwise make every record invalid. Names the nearest valid field."""
    for column, target in mapping.items():
        if not isinstance(target, str):
            continue  # build_mapper words this one
        current: type[BaseModel] | None = model
        walked: list[str] = []
        for part in target.split("."):
            if current is None:
                break
            fields = current.model_fields
            if part not in fields:
                where = ".".join(walked)
                valid = sorted(f"{where}.{name}" if where else name for name in fields)
                near = difflib.get_close_matches(".".join([*walked, part]), valid, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise SpotzeeConfigError(
                    f"mapping target {target!r} (column {column!r}) is not a field of {model.__name__}{hint} "
                    f"Valid targets: {', '.join(valid)}" + (f" or {where + '.' if where else ''}data.<name>"
                                                            if "data" in fields else ""))
            walked.append(part)
            annotation = fields[part].annotation
            if _is_object(annotation):
                break  # data.<anything>
            current = _model_of(annotation)
            if current is None and part != target.split(".")[-1]:
                raise SpotzeeConfigError(f"mapping target {target!r} (column {column!r}): {'.'.join(walked)} "
                                         f"is a single value in {model.__name__}, it has no sub-fields")

"""`{$param: NAME}` substitution by walking the parsed stages: no string templating, no eval."""

import datetime as dt
from typing import Any

BUILTIN_PARAMETERS = ("as_of", "window_start")  # of a feature definition
LABEL_PARAMETERS = ("as_of", "horizon_end")  # of a label definition


def as_utc_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    """BSON has no date-only type: a date means its UTC midnight; naive datetimes are UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)


def parameter_values(*, as_of: dt.datetime, window_days: int, declared: dict[str, Any]) -> dict[str, Any]:
    """The typed values of one partition: the built-ins plus the definition's parameters."""
    values = {name: _bson_value(value) for name, value in declared.items()}
    values["as_of"] = as_of
    values["window_start"] = as_of - dt.timedelta(days=window_days)
    return values


def label_parameter_values(*, as_of: dt.datetime, horizon_days: int, declared: dict[str, Any]) -> dict[str, Any]:
    """The typed values of one label partition: [as_of, horizon_end) plus the definition's parameters."""
    values = {name: _bson_value(value) for name, value in declared.items()}
    values["as_of"] = as_of
    values["horizon_end"] = as_of + dt.timedelta(days=horizon_days)
    return values


def substitute(template: Any, values: dict[str, Any]) -> Any:
    """A copy of `template` with every `{$param: NAME}` replaced by `values[NAME]`.

    YAML dates elsewhere in the stages become UTC datetimes, which is what BSON can hold.
    """
    if isinstance(template, dict):
        if set(template) == {"$param"}:
            name = template["$param"]
            if name not in values:
                raise KeyError(f"unknown $param {name!r} (known: {', '.join(sorted(values))})")
            return values[name]
        return {key: substitute(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [substitute(item, values) for item in template]
    return _bson_value(template)


def _bson_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return as_utc_datetime(value)
    return value

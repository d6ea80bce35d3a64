"""OpenAI attribute filters (ComparisonFilter / CompoundFilter) evaluated against a file's attributes."""

from __future__ import annotations

from typing import Any

COMPARISONS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
COMPOUNDS = frozenset({"and", "or"})


class FilterError(ValueError):
    pass


def validate_filter(f: Any, *, _depth: int = 0) -> None:
    """Raise FilterError (a ValueError; map it to HTTP 400) when `f` is not a well-formed filter."""
    if _depth > 16:
        raise FilterError("filters are nested too deeply")
    if not isinstance(f, dict):
        raise FilterError("a filter must be an object")
    kind = f.get("type")
    if kind in COMPOUNDS:
        subs = f.get("filters")
        if not isinstance(subs, list) or not subs:
            raise FilterError(f"'{kind}' filter needs a non-empty 'filters' array")
        for sub in subs:
            validate_filter(sub, _depth=_depth + 1)
        return
    if kind not in COMPARISONS:
        raise FilterError(f"unknown filter type {kind!r}")
    if not isinstance(f.get("key"), str):
        raise FilterError("comparison filter needs a string 'key'")
    if "value" not in f:
        raise FilterError("comparison filter needs a 'value'")
    value = f["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise FilterError(f"'{kind}' filter needs an array of strings, numbers or booleans")
    elif not _scalar(value):
        raise FilterError("filter 'value' must be a string, number or boolean")


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool)


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def matches(f: dict, attributes: dict | None) -> bool:
    """True when `attributes` satisfy filter `f`. A missing key fails every comparison except ne / nin."""
    kind = f["type"]
    if kind == "and":
        return all(matches(sub, attributes) for sub in f["filters"])
    if kind == "or":
        return any(matches(sub, attributes) for sub in f["filters"])
    attrs = attributes or {}
    key, value = f["key"], f["value"]
    if key not in attrs:
        return kind in ("ne", "nin")
    actual = attrs[key]
    if kind == "eq":
        return _equal(actual, value)
    if kind == "ne":
        return not _equal(actual, value)
    if kind == "in":
        return any(_equal(actual, v) for v in value)
    if kind == "nin":
        return not any(_equal(actual, v) for v in value)
    if not _same_kind(actual, value) or isinstance(actual, bool):
        return False
    if kind == "gt":
        return actual > value
    if kind == "gte":
        return actual >= value
    if kind == "lt":
        return actual < value
    return actual <= value

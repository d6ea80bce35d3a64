"""OpenAI attribute filters (ComparisonFilter / CompoundFilter) evaluated against a file's attributes."""

from __future__ import annotations

from typing import Any

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
MAX_FILTER_DEPTH = 16  # levels of filters, the outermost one included


class FilterError(ValueError):
    """A malformed filter. `path` (keys and indexes below the filter's own field) says where; `reason` says what.

    The API's validation error handler reports it as `Invalid '<field><path>': <reason>` (a 400).
    """

    def __init__(self, reason: str, path: tuple[str | int, ...] = (), code: str | None = "invalid_value") -> None:
        super().__init__(reason if not path else f"{_dotted(path)}: {reason}")
        self.reason = reason
        self.path = path
        self.code = code


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def validate_filter(f: Any, path: tuple[str | int, ...] = ()) -> None:
    """Check that `f` is a well-formed ComparisonFilter / CompoundFilter (OpenAI's schema, at most
    MAX_FILTER_DEPTH levels deep); raise FilterError (a ValueError; an HTTP 400) at the first problem."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(f, path, 1)]
    while stack:
        node, where, depth = stack.pop()
        if not isinstance(node, dict):
            raise FilterError(f"expected an object, but got {_json_type(node)} instead.", where, "invalid_type")
        kind = node.get("type")
        if kind not in COMPARISONS and kind not in COMPOUNDS:
            supported = ", ".join(f"'{k}'" for k in COMPARISONS + COMPOUNDS)
            shown = f"'{kind}'" if isinstance(kind, str) else _json_type(kind)
            raise FilterError(f"expected one of {supported}, but got {shown} instead.", (*where, "type"))
        allowed = ("type", "filters") if kind in COMPOUNDS else ("type", "key", "value")
        for name in node:
            if name not in allowed:
                raise FilterError(f"unknown parameter '{name}' in a '{kind}' filter.", where, "unknown_parameter")
        for name in allowed:
            if name not in node:
                raise FilterError(f"missing required parameter '{name}'.", where, "missing_required_parameter")
        if kind in COMPOUNDS:
            subs = node["filters"]
            if not isinstance(subs, list):
                raise FilterError(
                    f"expected an array, but got {_json_type(subs)} instead.", (*where, "filters"), "invalid_type"
                )
            if not subs:
                raise FilterError(f"an '{kind}' filter needs at least one filter.", (*where, "filters"))
            if depth >= MAX_FILTER_DEPTH:
                raise FilterError(
                    f"filters are nested too deeply. Expected at most {MAX_FILTER_DEPTH} levels of filters.",
                    (*where, "filters"),
                )
            stack.extend(reversed([(sub, (*where, "filters", i), depth + 1) for i, sub in enumerate(subs)]))
            continue
        if not isinstance(node["key"], str):
            raise FilterError(
                f"expected a string, but got {_json_type(node['key'])} instead.", (*where, "key"), "invalid_type"
            )
        value = node["value"]
        if kind in ("in", "nin"):
            if not isinstance(value, list) or not all(_scalar(v) for v in value):
                raise FilterError(
                    f"an '{kind}' filter needs an array of strings, numbers or booleans, but got "
                    f"{_json_type(value)} instead.",
                    (*where, "value"),
                )
        elif not _scalar(value):
            raise FilterError(
                f"an '{kind}' filter needs a string, number or boolean, but got {_json_type(value)} instead.",
                (*where, "value"),
            )


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

"""Validated field types shared by the wire models of every API (routers' request models and the Responses
item shapes the services validate): free-form JSON bounded in depth, metadata, strict models."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

MAX_JSON_DEPTH = 64  # levels of nesting inside one free-form field; stored objects add a few levels around it


class FieldError(ValueError):
    """A problem at `path` (keys and indexes) inside the field being validated. The validation error handler
    reports it as `Invalid '<field><path>': <reason>` with that parameter."""

    def __init__(self, reason: str, path: tuple[str | int, ...] = (), code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.code = code


def json_depth(value: Any) -> int:
    """Levels of nesting of a parsed JSON value: 0 for a scalar, 1 for a flat object or array."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def check_free_json(value: Any) -> Any:
    """The check every free-form JSON field goes through: at most MAX_JSON_DEPTH levels deep (FieldError if not).

    Strings need no check here: `parse_body` already refused anything the encoder cannot write back.
    """
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise FieldError(
            f"object is nested too deeply. Expected at most {MAX_JSON_DEPTH} levels of nesting, but got {depth} "
            "levels instead.",
            code="invalid_value",
        )
    return value


JSONObject = Annotated[dict[str, Any], AfterValidator(check_free_json)]


FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def check_metadata(value: dict[str, Any] | None, param: str = "metadata") -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > 16:
        raise ValueError(
            f"Invalid '{param}': too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(value)} properties instead."
        )
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(
                f"Invalid '{param}': metadata keys must be at most 64 characters, but got a key with length "
                f"{len(key)} instead."
            )
        if not isinstance(item, str):
            raise ValueError(f"Invalid type for '{param}.{key}': expected a string, but got a non-string instead.")
        if len(item) > 512:
            raise ValueError(
                f"Invalid '{param}.{key}': string too long. Expected a string with maximum length 512, but got a "
                f"string with length {len(item)} instead."
            )
    return value


Metadata = Annotated[dict[str, Any] | None, Field(default=None)]


class WithMetadata(Strict):
    metadata: Metadata = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_metadata(value)

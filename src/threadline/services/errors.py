"""Domain errors raised by services; api/errors.py maps each to its OpenAI-style HTTP error."""

from __future__ import annotations

from ..ids import PREFIXES, has_prefix


class ServiceError(Exception):
    """Base of the errors a service raises for a request it cannot carry out."""


class InvalidRequest(ServiceError):
    """The request cannot be carried out as asked (HTTP 400 `invalid_request_error`)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class NotFound(ServiceError):
    """An object the request names does not exist (HTTP 404); `kind` as worded in the message ("run step")."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"No {kind} found with id '{object_id}'.")
        self.kind = kind
        self.object_id = object_id


class InvalidId(ServiceError):
    """An id parameter does not have its kind's prefix (HTTP 400 naming `param`)."""

    def __init__(self, param: str, value: str, prefix: str) -> None:
        super().__init__(f"Invalid '{param}': '{value}'.")
        self.param = param
        self.value = value
        self.prefix = prefix


def check_id(kind: str, value: str, param: str) -> str:
    """`value` if it is an id of `kind` (its prefix, no NUL: PostgreSQL rejects NUL in text); else InvalidId."""
    if not has_prefix(kind, value) or "\x00" in value:
        raise InvalidId(param, value, PREFIXES[kind])
    return value

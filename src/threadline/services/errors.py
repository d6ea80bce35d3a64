"""Domain errors. api/errors.py maps them to OpenAI's error envelope: NotFound is a 404, RateLimited a 429, the
others are 400s."""

from __future__ import annotations

from ..ids import PREFIXES, has_prefix


class DomainError(Exception):
    """A request the domain refuses; `message` is the client-facing text, `param` the request field it concerns."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class NotFound(DomainError):
    """No object of `kind` (e.g. "vector store file") with `object_id`."""

    def __init__(self, kind: str, object_id: str, message: str | None = None) -> None:
        super().__init__(message or f"No {kind} found with id '{object_id}'.")
        self.kind = kind
        self.object_id = object_id


class Invalid(DomainError):
    """A value the client sent is not acceptable (named by `param` when it is one field)."""


class Conflict(DomainError):
    """The object's current state does not allow the operation (e.g. an upload no longer pending)."""


class RateLimited(DomainError):
    """A rate limit is reached: answered 429 `rate_limit_exceeded` with `retry-after` (seconds) and OpenAI's
    x-ratelimit-* headers of `limit_type` ("requests" or "tokens")."""

    def __init__(self, message: str, *, limit_type: str, limit: int, remaining: int, retry_after_s: int) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.limit_type = limit_type
        self.limit = limit
        self.remaining = remaining
        self.retry_after_s = retry_after_s


class ThreadLocked(Conflict):
    """A thread has an active run, which blocks adding messages to it."""


def size_text(n: int) -> str:
    """A byte count for messages: `512 MB` when it is a whole number of GB/MB/KB, else `1234 bytes`."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def invalid_id(param: str, value: str, prefix: str) -> Invalid:
    return Invalid(
        f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix.rstrip('_-')}'.", param=param
    )


def check_id(kind: str, value: str, param: str) -> str:
    """`value` when it is an id of `kind` (see ids.PREFIXES); raises Invalid naming `param` otherwise."""
    # A NUL can never be part of an id, and PostgreSQL rejects it in text comparisons (a 500 otherwise).
    if not has_prefix(kind, value) or "\x00" in value:
        raise invalid_id(param, value, PREFIXES[kind])
    return value

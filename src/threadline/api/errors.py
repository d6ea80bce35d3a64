"""The OpenAI error envelope and the translation of validation failures into OpenAI's wording."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..services.errors import DomainError, NotFound, RateLimited
from ..store.blobs_s3 import BlobStoreError
from ..store.storage import is_disk_full

log = logging.getLogger("threadline")

INVALID_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BodyError(StarletteHTTPException):
    """An APIError raised while the request body is read or parsed. FastAPI's body reader lets HTTPExceptions
    through unchanged (any other exception becomes a generic 400), so the error keeps its status and wording."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.status, error.message, error.headers)
        self.error = error


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


STORAGE_FULL = (
    "The server's storage is full, so this request could not be saved. Deleting files, vector stores, threads, "
    "assistants and messages still works and frees space; or ask the server's operator to add disk space."
)


def storage_full() -> APIError:
    """507 insufficient_storage: the data volume (blobs or the SQLite database) has no space left.

    Sent with `x-should-retry: false`: the SDK's automatic retries a moment later would fail the same way.
    """
    return APIError(
        507,
        STORAGE_FULL,
        type="insufficient_storage",
        code="insufficient_storage",
        headers={"x-should-retry": "false"},
    )


def blobs_unavailable() -> APIError:
    """503 server_error: the file storage (an S3 bucket) could not be reached or refused the request; the SDK's
    automatic retries may succeed."""
    return APIError(503, "The server's file storage is unavailable right now; please try again.", type="server_error")


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached, rather than that a statement was wrong: a lost
    connection (SQLAlchemy has invalidated it, or PostgreSQL's SQLSTATE says so), a failed connect (psycopg's plain
    OperationalError), or SQLite still locked by another writer after its busy timeout. `exc` may be SQLAlchemy's
    wrapper or the driver's error (raw connections, as the key checks use, raise the latter)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig  # the driver's own error
    kind = type(exc)
    if kind.__name__ == "OperationalError" and kind.__module__.startswith("psycopg"):  # a failed connect
        return True
    # PostgreSQL's connection exceptions (class 08) and operator interventions (57P: admin or crash shutdown,
    # cannot connect now), as a raw connection raises them when the server ended it
    if (getattr(exc, "sqlstate", None) or "").startswith(("08", "57P")):
        return True
    return kind.__name__ == "OperationalError" and "database is locked" in str(exc)


def database_unavailable() -> APIError:
    """503 server_error: the database could not be reached (restarted, connection lost, or SQLite busy beyond its
    timeout). The transaction was rolled back, so nothing changed; the SDK's own retries (on 5xx) try again, and a
    lost pooled connection has invalidated the pool by then, so the retry reconnects."""
    return APIError(503, "The server's database is unavailable right now; please try again.", type="server_error")


def not_found(kind: str, object_id: str) -> APIError:
    return APIError(404, f"No {kind} found with id '{object_id}'.")


def invalid_id(param: str, value: str, prefix: str) -> APIError:
    return APIError(
        400, f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix.rstrip('_-')}'.", param=param
    )


_TYPE_NAMES = {
    "string": "a string",
    "int": "an integer",
    "float": "a decimal",
    "bool": "a boolean",
    "dict": "an object",
    "list": "an array",
    "model": "an object",
    "model_attributes": "an object",
    "literal": "one of the allowed values",
}


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unknown type"


_NO_BODY = object()


def join_param(param: str, part: str | int) -> str:
    """`param` extended by one object key or array index, in OpenAI's notation (`a.b[0].c`)."""
    if isinstance(part, int):
        return f"{param}[{part}]"
    return f"{param}.{part}" if param else part


def _param(loc: tuple[Any, ...], body: Any = _NO_BODY, *, missing: bool = False) -> str:
    """The request field an error location points at, e.g. `messages[0].content`.

    Pydantic locations also hold the labels of union branches and validators (`constrained-str`, `ModelName`,
    `function-after[...]`, discriminator tags); walking the request body alongside keeps only the parts that are
    keys or indexes the client sent. For a missing field the last part is the name the client left out.
    """
    where = loc[0] if loc else None
    parts = list(loc[1:]) if where in ("body", "query", "path", "header") else list(loc)
    if where != "body" or body is _NO_BODY:
        out = ""
        for part in parts:
            if isinstance(part, str) and ("[" in part or "function-" in part or part.startswith("tagged-union")):
                continue
            out = join_param(out, part)
        return out
    out = ""
    node = body
    for i, part in enumerate(parts):
        child = _child(node, part)
        if child is not _NO_BODY:
            node = child
        elif not (missing and i == len(parts) - 1):
            continue  # a label pydantic added, not something the client sent
        out = join_param(out, part)
    return out


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part, _NO_BODY)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _NO_BODY


def validation_error(err: dict[str, Any], body: Any = _NO_BODY) -> APIError:
    """Turn one pydantic error into an OpenAI-worded 400. `body` (the parsed request body) lets the error name
    the field the client sent rather than pydantic's internal labels."""
    kind = err.get("type", "")
    loc = tuple(err.get("loc", ()))
    param = _param(loc, body, missing=kind == "missing")
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "json_invalid":
        return APIError(400, INVALID_JSON)
    reason = getattr(ctx.get("error"), "reason", None)
    if kind == "value_error" and isinstance(reason, str):
        # A check that knows where inside the field the problem is (free-form JSON, search filters).
        full = param
        for part in getattr(ctx["error"], "path", ()):
            full = join_param(full, part)
        return APIError(
            400, f"Invalid '{full}': {reason}", param=full or None, code=getattr(ctx["error"], "code", None)
        )
    if kind == "extra_forbidden":
        name = param.rsplit(".", 1)[-1]
        if "." in param or "[" in param:
            return APIError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
        return APIError(400, f"Unrecognized request argument supplied: {name}", param=param)
    if kind == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type", "list_type"):
        expected = _TYPE_NAMES.get(kind.removesuffix("_type"), kind.removesuffix("_type"))
        if not param:  # the body itself: JSON that is not an object, or a body not sent as application/json
            got = "a body that is not application/json" if isinstance(value, bytes) else _json_type_name(value)
            return APIError(400, f"Invalid body: expected a JSON object, but got {got} instead.", code="invalid_type")
        return APIError(
            400,
            f"Invalid type for '{param}': expected {expected}, but got {_json_type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if kind == "string_too_long":
        return APIError(
            400,
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {len(value or '')} instead.",
            param=param,
            code="string_above_max_length",
        )
    if kind == "string_too_short":
        return APIError(
            400,
            f"Invalid '{param}': string too short. Expected a string with minimum length "
            f"{ctx.get('min_length')}, but got a string with length {len(value or '')} instead.",
            param=param,
            code="string_below_min_length",
        )
    if kind == "too_long":
        return APIError(
            400,
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{ctx.get('max_length')}, but got an array with length {ctx.get('actual_length')} instead.",
            param=param,
            code="array_above_max_length",
        )
    if kind == "too_short":
        return APIError(
            400,
            f"Invalid '{param}': array too short. Expected an array with minimum length "
            f"{ctx.get('min_length')}, but got an array with length {ctx.get('actual_length')} instead.",
            param=param,
            code="array_below_min_length",
        )
    if kind in ("less_than_equal", "less_than"):
        return APIError(
            400,
            f"Invalid '{param}': number above maximum value. Expected a value <= {ctx.get('le', ctx.get('lt'))}, "
            f"but got {value} instead.",
            param=param,
            code="decimal_above_max_value" if isinstance(value, float) else "integer_above_max_value",
        )
    if kind in ("greater_than_equal", "greater_than"):
        return APIError(
            400,
            f"Invalid '{param}': number below minimum value. Expected a value >= {ctx.get('ge', ctx.get('gt'))}, "
            f"but got {value} instead.",
            param=param,
            code="decimal_below_min_value" if isinstance(value, float) else "integer_below_min_value",
        )
    if kind in ("literal_error", "enum"):
        return APIError(
            400,
            f"Invalid value: '{value}'. Supported values are: {ctx.get('expected')}.",
            param=param,
            code="invalid_value",
        )
    if kind == "union_tag_not_found" and not isinstance(value, dict):  # an item that is not an object
        return APIError(
            400,
            f"Invalid type for '{param}': expected an object, but got {_json_type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if kind == "union_tag_invalid":  # a `type` no branch of a tagged union has
        full = join_param(param, "type")
        return APIError(
            400,
            f"Invalid value: '{ctx.get('tag')}'. Supported values are: {ctx.get('expected_tags')}.",
            param=full,
            code="invalid_value",
        )
    if kind == "value_error":
        message = str(ctx.get("error") or err.get("msg", "Invalid value."))
        return APIError(400, message, param=param or None)
    return APIError(400, f"Invalid '{param}': {err.get('msg', 'invalid value')}.", param=param or None)


def domain_error(exc: DomainError) -> APIError:
    """The wire form of a service's error: 404 for NotFound, 429 for RateLimited (with OpenAI's retry-after and
    x-ratelimit-* headers), 400 for the rest (Invalid, Conflict, ThreadLocked)."""
    if isinstance(exc, RateLimited):
        kind = exc.limit_type
        headers = {
            "retry-after": str(exc.retry_after_s),
            f"x-ratelimit-limit-{kind}": str(exc.limit),
            f"x-ratelimit-remaining-{kind}": str(exc.remaining),
            f"x-ratelimit-reset-{kind}": f"{exc.retry_after_s}s",
        }
        return APIError(429, exc.message, type=kind, code=exc.code, headers=headers)
    return APIError(404 if isinstance(exc, NotFound) else 400, exc.message, param=exc.param, code=exc.code)


def _most_specific(errors: list[Any]) -> dict[str, Any]:
    """The error to report: the first field's deepest one. A value that fits no branch of a union gets one error
    per branch; the deepest is from the branch the value was meant for (e.g. `response_format.json_schema.schema`
    rather than "not 'auto'")."""
    field = tuple(errors[0].get("loc", ()))[:2]
    same = [e for e in errors if tuple(e.get("loc", ()))[:2] == field]
    return max(same, key=lambda e: len(e.get("loc", ())))


def _encodable(value: Any) -> Any:
    return value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) else value


def _respond(err: APIError) -> Response:
    try:
        body = orjson.dumps(err.body())
    except TypeError:  # a message quoting client input that is not valid Unicode (e.g. a lone surrogate)
        body = orjson.dumps({"error": {k: _encodable(v) for k, v in err.body()["error"].items()}})
    return Response(body, status_code=err.status, media_type="application/json", headers=err.headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        return _respond(exc)

    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> Response:
        return _respond(domain_error(exc))

    @app.exception_handler(BodyError)
    async def _body_error(_: Request, exc: BodyError) -> Response:
        return _respond(exc.error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        err = validation_error(_most_specific(errors), exc.body) if errors else APIError(400, "Invalid request.")
        return _respond(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            err = APIError(404, f"Invalid URL ({request.method} {request.url.path})")
        elif exc.status_code == 405:
            err = APIError(405, f"Invalid method for URL ({request.method} {request.url.path})")
        else:
            err = APIError(exc.status_code, str(exc.detail))
        return _respond(err)

    # Registered per class, not only under Exception: handlers for Exception run in the outermost middleware, which
    # re-raises after responding (the connection is then closed under a keep-alive client).
    @app.exception_handler(OSError)
    @app.exception_handler(SQLAlchemyError)
    async def _storage(_: Request, exc: Exception) -> Response:
        if is_disk_full(exc):
            log.warning("storage full: %s", exc)
            return _respond(storage_full())
        if isinstance(exc, BlobStoreError):
            log.warning("file storage unavailable: %s", exc)
            return _respond(blobs_unavailable())
        if database_unreachable(exc):
            log.warning("database unavailable: %s", exc)
            return _respond(database_unavailable())
        raise exc

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        if is_disk_full(exc):
            log.warning("storage full: %s", exc)
            return _respond(storage_full())
        log.exception("unhandled error", exc_info=exc)
        err = APIError(500, "The server had an error while processing your request.", type="server_error")
        return _respond(err)

"""Helpers shared by the routers: JSON responses, list parameters, id checks, object lookups."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
import orjson
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from ..services import errors as services_errors
from ..store import Page, Store
from ..store.sql import ListParams
from .errors import APIError, BodyError, bad_request, not_found

if TYPE_CHECKING:
    from ..app import Runtime


def json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = obj.encode() if isinstance(obj, str) else orjson.dumps(obj)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def list_response(data: list[dict[str, Any]], has_more: bool) -> Response:
    """OpenAI's list envelope around one page of objects (each with an `id`)."""
    return json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


def page_response(page: Page) -> Response:
    return Response(page.to_json(), media_type="application/json")


def poll_headers(request: Request) -> dict[str, str]:
    """`openai-poll-after-ms` for responses the SDKs' poll helpers read (runs, vector store files and batches,
    files): without it they sleep 1 s (Python) or 5 s (Node) between polls."""
    return {"openai-poll-after-ms": str(request.app.state.runtime.settings.poll_after_ms)}


def runtime(request: Request) -> Runtime:
    """The app's Runtime (its settings, store, blobs, run engine ...)."""
    return request.app.state.runtime


Handler = TypeVar("Handler", bound=Callable[..., Response])


def frees_storage(handler: Handler) -> Handler:
    """Decorate a (sync) DELETE-like handler so it works on a full disk.

    On a nearly full disk the storage reserve is released first (store/storage.py), giving the delete the room the
    database needs; it is re-taken afterwards. The handler must take `request` as a keyword (FastAPI passes all).
    """

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        with runtime(kwargs["request"]).reserve.freeing():
            return handler(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def store(request: Request) -> Store:
    return request.app.state.runtime.store


T = TypeVar("T")


async def short_read(request: Request, fn: Callable[[], T]) -> T:
    """The result of `fn()`, a short read-only use of the store (one small query, no other I/O).

    With SQLite it runs on the event loop: a read never waits for a writer there (WAL), takes 10-50 µs, and the
    hop to the threadpool and back would cost about 170 µs of CPU. With PostgreSQL (a network round trip) it runs
    in the threadpool like any blocking handler.
    """
    if store(request).dialect == "sqlite":
        return fn()
    return await anyio.to_thread.run_sync(fn)


async def read_form(request: Request, max_fields: int) -> FormData:
    """The request's multipart form (at most one file part); a body over its size cap stays a 413, a malformed one
    is a 400 saying why."""
    try:
        return await request.form(max_files=1, max_fields=max_fields)
    except BodyError:
        raise
    except Exception as exc:  # malformed multipart bodies
        raise bad_request(f"Could not parse multipart form: {exc}") from None


def check_id(kind: str, value: str, param: str) -> str:
    """`value` when it is an id of `kind`; raises services' Invalid (a 400 naming `param`) otherwise."""
    return services_errors.check_id(kind, value, param)


def check_no_nul(param: str, value: str | None) -> str | None:
    """Query values compared against text columns: PostgreSQL cannot hold NUL, so reject it as a bad value."""
    if value is not None and "\x00" in value:
        raise bad_request(f"Invalid '{param}': the value must not contain NUL characters.", param=param)
    return value


def _list_params(
    limit: str | None, order: str | None, after: str | None, before: str | None, max_limit: int, default_limit: int
) -> ListParams:
    if limit is None:
        value = default_limit
    else:
        try:
            value = int(limit)
        except ValueError:
            raise APIError(
                400,
                "Invalid type for 'limit': expected an integer, but got a string instead.",
                param="limit",
                code="invalid_type",
            ) from None
        if value < 1:
            raise bad_request(
                f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                param="limit",
                code="integer_below_min_value",
            )
        if value > max_limit:
            raise bad_request(
                f"Invalid 'limit': integer above maximum value. Expected a value <= {max_limit}, but got {value} "
                "instead.",
                param="limit",
                code="integer_above_max_value",
            )
    order = order or "desc"
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order", code="invalid_value"
        )
    return ListParams(value, order, check_no_nul("after", after) or None, check_no_nul("before", before) or None)


async def list_params(request: Request) -> ListParams:
    """limit (1-100, 20), order (default desc), after, before; a 400 naming the bad one.

    The list dependencies are `async def` although they never wait: FastAPI runs a sync dependency in the
    threadpool, a hop that costs more than the parsing itself."""
    q = request.query_params
    return _list_params(q.get("limit"), q.get("order"), q.get("after"), q.get("before"), 100, 20)


async def file_list_params(request: Request) -> ListParams:
    q = request.query_params
    return _list_params(q.get("limit"), q.get("order"), q.get("after"), None, 10000, 10000)


def load(conn: sa.Connection, table: sa.Table, object_id: str, kind: str, *, lock: bool = False) -> dict:
    obj = Store.fetch(conn, table, object_id, lock=lock)
    if obj is None:
        raise not_found(kind, object_id)
    return obj


def deleted(object_id: str, object_name: str) -> Response:
    return json({"id": object_id, "object": object_name, "deleted": True})

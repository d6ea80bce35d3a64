"""/v1/organization: admin keys, usage and costs (OpenAI's administration API; an admin key is required, checked
by the middleware). Extensions: `group_by=assistant_id|thread_id`, `assistant_ids` / `thread_ids` filters, and
`GET /v1/organization/usage/runs/{run_id}` and `GET /v1/organization/usage/responses/{response_id}` (what each
model call's prompt was made of, priced)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import Field

from ..fields import Strict
from ..ids import thread_row_id
from ..services import usage as usage_service
from ..services.prices import Prices
from ..store import admin_keys, audit
from .common import check_no_nul, json, list_response, runtime
from .errors import APIError, bad_request
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/organization", tags=["organization"], route_class=JSONRoute)


class AdminKeyCreate(Strict):
    name: Annotated[str, Field(max_length=256)]
    expires_in_seconds: Annotated[int, Field(ge=1, le=31536000)] | None = None


TRUE, FALSE = ("true", "1"), ("false", "0")


def _values(request: Request, name: str) -> list[str]:
    """A query array, as the SDKs send it (`name[]=a&name[]=b`) or repeated plain (`name=a&name=b`)."""
    q = request.query_params
    values = q.getlist(f"{name}[]") + q.getlist(name)
    for value in values:
        check_no_nul(name, value)
    return values


def _int(request: Request, name: str, *, required: bool = False, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise bad_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(
            f"Invalid type for '{name}': expected an integer, but got a string instead.",
            param=name,
            code="invalid_type",
        ) from None
    if value < minimum or value > 2**53:
        raise bad_request(f"Invalid '{name}': {value} is out of range.", param=name, code="invalid_value")
    return value


def _page_limit(request: Request) -> int:
    """The `limit` of an admin list request: between 1 and 100, 20 by default."""
    limit = _int(request, "limit", minimum=-(2**53))
    limit = 20 if limit is None else limit
    if not 1 <= limit <= 100:
        raise bad_request(f"Invalid 'limit': {limit} is not between 1 and 100.", param="limit", code="invalid_value")
    return limit


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        shown = ", ".join(f"'{a}'" for a in allowed)
        raise bad_request(f"Invalid value: '{value}'. Supported values are: {shown}.", param=name, code="invalid_value")
    return value


def _query(request: Request, group_by: tuple[str, ...], widths: tuple[str, ...]) -> usage_service.UsageQuery:
    q = request.query_params
    start = _int(request, "start_time", required=True)
    assert start is not None
    width = _choice("bucket_width", q.get("bucket_width") or "1d", widths)
    groups = [_choice("group_by", g, group_by) for g in _values(request, "group_by")]
    filters = {}
    for param, column in usage_service.FILTERS.items():
        values = _values(request, param)
        if column == "thread_id":  # a conversation's usage is recorded on its threads row
            values = [thread_row_id(v) for v in values]
        if values:
            filters[column] = values
    batch = q.get("batch")
    if batch is not None and batch.lower() not in TRUE + FALSE:
        raise bad_request(
            f"Invalid type for 'batch': expected a boolean, but got '{batch}' instead.",
            param="batch",
            code="invalid_type",
        )
    return usage_service.UsageQuery(
        start_time=start,
        end_time=_int(request, "end_time"),
        bucket_width=width,
        group_by=list(dict.fromkeys(groups)),
        filters=filters,
        user_ids=_values(request, "user_ids") or None,
        batch=None if batch is None else batch.lower() in TRUE,
        limit=_int(request, "limit", minimum=-(2**53)),
        page=check_no_nul("page", request.query_params.get("page")),
    )


def _prices(request: Request) -> Prices:
    return runtime(request).prices


async def _usage(request: Request, endpoint: str) -> Response:
    spec = usage_service.ENDPOINTS[endpoint]
    query = _query(request, spec.group_by, tuple(usage_service.WIDTHS))
    rt = runtime(request)

    def read() -> dict:
        with rt.store.read() as conn:
            return usage_service.usage(conn, endpoint, query, rt.clock.now())

    return json(await anyio.to_thread.run_sync(read))


@router.get("/usage/completions")
async def usage_completions(request: Request) -> Response:
    return await _usage(request, "completions")


@router.get("/usage/embeddings")
async def usage_embeddings(request: Request) -> Response:
    return await _usage(request, "embeddings")


@router.get("/usage/code_interpreter_sessions")
async def usage_code_interpreter_sessions(request: Request) -> Response:
    return await _usage(request, "code_interpreter_sessions")


@router.get("/usage/vector_stores")
async def usage_vector_stores(request: Request) -> Response:
    return await _usage(request, "vector_stores")


@router.get("/usage/file_search_calls")
async def usage_file_search_calls(request: Request) -> Response:
    return await _usage(request, "file_search_calls")


@router.get("/usage/runs/{run_id}")
async def usage_run(run_id: str, request: Request) -> Response:
    """Extension: a run's turns, what each prompt was made of and what it cost."""
    rt = runtime(request)
    check_no_nul("run_id", run_id)

    def read() -> dict:
        with rt.store.read() as conn:
            return usage_service.run_usage(conn, run_id, rt.prices)

    return json(await anyio.to_thread.run_sync(read))


@router.get("/usage/responses/{response_id}")
async def usage_response(response_id: str, request: Request) -> Response:
    """Extension: a response's model calls (or a compaction's), what each prompt was made of, its tool use and
    what it all cost."""
    rt = runtime(request)
    check_no_nul("response_id", response_id)

    def read() -> dict:
        with rt.store.read() as conn:
            return usage_service.response_usage(conn, response_id, rt.prices)

    return json(await anyio.to_thread.run_sync(read))


@router.get("/costs")
async def costs(request: Request) -> Response:
    query = _query(request, usage_service.COSTS_GROUP_BY, ("1d",))
    rt = runtime(request)

    def read() -> dict:
        with rt.store.read() as conn:
            return usage_service.costs(conn, query, rt.clock.now(), rt.prices)

    return json(await anyio.to_thread.run_sync(read))


# -- admin keys -------------------------------------------------------------------------------------------------------


# What an admin key may do, as the audit log shows it.
ADMIN_SCOPES = ["api.management.read", "api.management.write"]


def _admin_key_not_found(key_id: str) -> APIError:
    return APIError(404, f"No admin API key found with id '{key_id}'.", code="not_found")


@router.get("/admin_api_keys")
async def list_admin_keys(request: Request) -> Response:
    q = request.query_params
    order = _choice("order", q.get("order") or "asc", ("asc", "desc"))
    limit = _page_limit(request)
    after = check_no_nul("after", q.get("after")) or None
    rt = runtime(request)

    def read() -> tuple[list, bool]:
        with rt.store.read() as conn:
            return admin_keys.listed(conn, after=after, order=order, limit=limit)

    data, has_more = await anyio.to_thread.run_sync(read)
    return json(
        {
            "object": "list",
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@router.post("/admin_api_keys")
async def create_admin_key(request: Request, body: AdminKeyCreate = Body(...)) -> Response:
    name, expires = body.name, body.expires_in_seconds
    check_no_nul("name", name)
    rt = runtime(request)

    def create() -> dict:
        with rt.store.write() as conn:
            created = admin_keys.create(conn, name, expires_in_s=expires)
            assert created is not None  # a fresh random key
            audit.record(conn, "api_key.created", details={"id": created["id"], "data": {"scopes": ADMIN_SCOPES}})
            return created

    return json(await anyio.to_thread.run_sync(create))


@router.get("/admin_api_keys/{key_id}")
async def get_admin_key(key_id: str, request: Request) -> Response:
    rt = runtime(request)
    check_no_nul("key_id", key_id)

    def read() -> dict | None:
        with rt.store.read() as conn:
            return admin_keys.get(conn, key_id)

    found = await anyio.to_thread.run_sync(read)
    if found is None:
        raise _admin_key_not_found(key_id)
    return json(found)


@router.delete("/admin_api_keys/{key_id}")
async def delete_admin_key(key_id: str, request: Request) -> Response:
    rt = runtime(request)
    check_no_nul("key_id", key_id)

    def delete() -> bool:
        with rt.store.write() as conn:
            if not admin_keys.delete(conn, key_id):
                return False
            audit.record(conn, "api_key.deleted", details={"id": key_id})
            return True

    if not await anyio.to_thread.run_sync(delete):
        raise _admin_key_not_found(key_id)
    return json({"id": key_id, "object": "organization.admin_api_key.deleted", "deleted": True})


# -- audit log --------------------------------------------------------------------------------------------------------

_BOUNDS = ("gt", "gte", "lt", "lte")


@router.get("/audit_logs")
async def list_audit_logs(request: Request) -> Response:
    """OpenAI's audit log list: newest first, `effective_at[gt|gte|lt|lte]`, the `event_types[]`,
    `project_ids[]`, `actor_ids[]`, `actor_emails[]` and `resource_ids[]` filters, `limit`, `after`, `before`."""
    q = request.query_params
    bounds = {}
    for bound in _BOUNDS:
        value = _int(request, f"effective_at[{bound}]")
        if value is not None:
            bounds[bound] = value
    limit = _page_limit(request)
    after = check_no_nul("after", q.get("after")) or None
    before = check_no_nul("before", q.get("before")) or None
    if after and before:
        raise bad_request("Only one of 'after' and 'before' may be given.", param="before", code="invalid_value")
    emails = _values(request, "actor_emails")
    filters = {name: _values(request, name) for name in ("event_types", "project_ids", "actor_ids", "resource_ids")}
    rt = runtime(request)

    def read() -> tuple[list, bool]:
        if emails and admin_keys.OPERATOR["email"] not in emails:
            return [], False  # every change here is the operator's
        with rt.store.read() as conn:
            return audit.listed(conn, effective_at=bounds, after=after, before=before, limit=limit, **filters)

    data, has_more = await anyio.to_thread.run_sync(read)
    return list_response(data, has_more)

"""/v1/organization limits, in OpenAI's administration shapes (an admin key is required, checked by the
middleware): a project's rate limits per model (`/projects/{id}/rate_limits`), hard spend limits of the
organization and of projects (`/spend_limit`), and spend alerts (`/spend_alerts`). Enforcement: limits.py.

A rate limit's id is `rl-<model>`; every model the server knows (GET /v1/models) is listed, with `0` in a field
meaning "no limit" (the default)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import Field

from ..fields import Strict
from ..ids import new_id
from ..store import audit, now, projects
from ..store import limits as records
from .common import check_no_nul, json, list_response, runtime
from .errors import APIError, bad_request
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/organization", tags=["organization"], route_class=JSONRoute)

RATE_PREFIX = "rl-"
# Enforced: requests and tokens per minute. The others are OpenAI's too; they are kept and shown, not enforced.
RATE_FIELDS = (
    "max_requests_per_1_minute",
    "max_tokens_per_1_minute",
    "max_images_per_1_minute",
    "max_audio_megabytes_per_1_minute",
    "max_requests_per_1_day",
    "batch_1_day_max_input_tokens",
)
ORGANIZATION = records.ORGANIZATION
AUDIT_ORGANIZATION_ID = "org-threadline"  # the one organization of a server, as its audit log names it
Count = Annotated[int, Field(ge=0, le=2**53)]


class RateLimitUpdate(Strict):
    max_requests_per_1_minute: Count | None = None
    max_tokens_per_1_minute: Count | None = None
    max_images_per_1_minute: Count | None = None
    max_audio_megabytes_per_1_minute: Count | None = None
    max_requests_per_1_day: Count | None = None
    batch_1_day_max_input_tokens: Count | None = None


class SpendLimitBody(Strict):
    threshold_amount: Annotated[int, Field(ge=1, le=2**53)]
    currency: Literal["USD"]
    interval: Literal["month"]


class NotificationChannel(Strict):
    type: Literal["email"]
    recipients: Annotated[list[Annotated[str, Field(max_length=320)]], Field(max_length=100)]
    subject_prefix: Annotated[str, Field(max_length=256)] | None = None


class SpendAlertBody(Strict):
    threshold_amount: Annotated[int, Field(ge=0, le=2**53)]
    currency: Literal["USD"]
    interval: Literal["month"]
    notification_channel: NotificationChannel


def _project_exists(conn: sa.Connection, project_id: str) -> bool:
    return projects.get_project(conn, project_id) is not None


async def _in_project(request: Request, project_id: str, fn: Any, *, write: bool = True) -> Any:
    """`fn(conn)` in a transaction (a read one unless `write`), once `project_id` is known to exist (404
    otherwise)."""
    check_no_nul("project_id", project_id)
    rt = runtime(request)

    def run() -> Any:
        with rt.store.write() if write else rt.store.read() as conn:
            if not _project_exists(conn, project_id):
                raise APIError(404, f"No project found with id '{project_id}'.", code="not_found")
            return fn(conn)

    return await anyio.to_thread.run_sync(run)


# -- rate limits ------------------------------------------------------------------------------------------------------


def _rate_object(model: str, fields: dict[str, int] | None) -> dict[str, Any]:
    fields = fields or {}
    obj: dict[str, Any] = {
        "object": "project.rate_limit",
        "id": RATE_PREFIX + model,
        "model": model,
        "max_requests_per_1_minute": fields.get("max_requests_per_1_minute", 0),
        "max_tokens_per_1_minute": fields.get("max_tokens_per_1_minute", 0),
    }
    for name in RATE_FIELDS[2:]:
        if fields.get(name):  # "only present for relevant models": here, when set
            obj[name] = fields[name]
    return obj


def _limit_param(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(
            "Invalid type for 'limit': expected an integer, but got a string instead.", "limit", "invalid_type"
        ) from None
    if not 1 <= value <= maximum:
        raise bad_request(f"Invalid 'limit': {value} is not between 1 and {maximum}.", "limit", "invalid_value")
    return value


@router.get("/projects/{project_id}/rate_limits")
async def list_rate_limits(project_id: str, request: Request) -> Response:
    q = request.query_params
    limit = _limit_param(request, 100, 100)
    after, before = check_no_nul("after", q.get("after")), check_no_nul("before", q.get("before"))
    stored = await _in_project(request, project_id, lambda conn: records.rate_limits(conn, project_id), write=False)
    models = {m["id"] for m in await runtime(request).model_lister.list()} | set(stored)
    ids = [RATE_PREFIX + m for m in sorted(models)]
    start, end = 0, len(ids)
    if after:
        start = ids.index(after) + 1 if after in ids else end
    if before:
        end = ids.index(before) if before in ids else 0
    window = ids[start:end]
    page = window[-limit:] if before and not after else window[:limit]
    data = [_rate_object(i[len(RATE_PREFIX) :], stored.get(i[len(RATE_PREFIX) :])) for i in page]
    return list_response(data, len(window) > len(page))


@router.post("/projects/{project_id}/rate_limits/{rate_limit_id:path}")
async def update_rate_limit(
    project_id: str, rate_limit_id: str, request: Request, body: RateLimitUpdate = Body(...)
) -> Response:
    check_no_nul("rate_limit_id", rate_limit_id)
    rt = runtime(request)
    model = rate_limit_id[len(RATE_PREFIX) :] if rate_limit_id.startswith(RATE_PREFIX) else ""
    if not model or await rt.model_lister.get(model) is None:
        raise APIError(404, f"No rate limit found with id '{rate_limit_id}'.", code="not_found")
    given = body.model_dump(exclude_none=True)

    def update(conn: sa.Connection) -> dict[str, Any]:
        fields = {**records.rate_limits(conn, project_id).get(model, {}), **given}
        fields = {k: v for k, v in fields.items() if v}
        records.set_rate_limit(conn, project_id, model, fields, now())
        audit.record(
            conn, "rate_limit.updated", project_id=project_id, details={"id": rate_limit_id, "changes_requested": given}
        )
        return _rate_object(model, fields)

    return json(await _in_project(request, project_id, update))


# -- spend limits -----------------------------------------------------------------------------------------------------


def _spend_limit_object(kind: str, stored: dict[str, Any]) -> dict[str, Any]:
    return {"object": f"{kind}.spend_limit", **stored, "enforcement": {"status": "enforcing"}}


def _no_spend_limit(scope: str) -> APIError:
    who = "the organization" if scope == ORGANIZATION else f"project '{scope}'"
    return APIError(404, f"No spend limit is set for {who}.", code="not_found")


async def _get_spend_limit(request: Request, scope: str, kind: str) -> Response:
    def read(conn: sa.Connection) -> dict[str, Any] | None:
        return records.spend_limit(conn, scope)

    stored = await _scoped(request, scope, read, write=False)
    if stored is None:
        raise _no_spend_limit(scope)
    return json(_spend_limit_object(kind, stored))


async def _put_spend_limit(request: Request, scope: str, kind: str, body: SpendLimitBody) -> Response:
    def put(conn: sa.Connection) -> dict[str, Any]:
        records.put_spend_limit(conn, scope, body.threshold_amount, body.currency, body.interval, now())
        _audit_setting(conn, scope, {"spend_limit": body.model_dump()})
        return records.spend_limit(conn, scope) or {}

    return json(_spend_limit_object(kind, await _scoped(request, scope, put)))


async def _delete_spend_limit(request: Request, scope: str, kind: str) -> Response:
    def delete(conn: sa.Connection) -> bool:
        gone = records.delete_spend_limit(conn, scope)
        if gone:
            _audit_setting(conn, scope, {"spend_limit": None})
        return gone

    if not await _scoped(request, scope, delete):
        raise _no_spend_limit(scope)
    return json({"object": f"{kind}.spend_limit.deleted", "deleted": True})


async def _scoped(request: Request, scope: str, fn: Any, *, write: bool = True) -> Any:
    """`fn(conn)` for the organization, or in the project `scope` (404 when it does not exist)."""
    if scope != ORGANIZATION:
        return await _in_project(request, scope, fn, write=write)
    rt = runtime(request)

    def run() -> Any:
        with rt.store.write() if write else rt.store.read() as conn:
            return fn(conn)

    return await anyio.to_thread.run_sync(run)


@router.get("/spend_limit")
async def get_organization_spend_limit(request: Request) -> Response:
    return await _get_spend_limit(request, ORGANIZATION, "organization")


@router.post("/spend_limit")
async def put_organization_spend_limit(request: Request, body: SpendLimitBody = Body(...)) -> Response:
    return await _put_spend_limit(request, ORGANIZATION, "organization", body)


@router.delete("/spend_limit")
async def delete_organization_spend_limit(request: Request) -> Response:
    return await _delete_spend_limit(request, ORGANIZATION, "organization")


@router.get("/projects/{project_id}/spend_limit")
async def get_project_spend_limit(project_id: str, request: Request) -> Response:
    return await _get_spend_limit(request, project_id, "project")


@router.post("/projects/{project_id}/spend_limit")
async def put_project_spend_limit(project_id: str, request: Request, body: SpendLimitBody = Body(...)) -> Response:
    return await _put_spend_limit(request, project_id, "project", body)


@router.delete("/projects/{project_id}/spend_limit")
async def delete_project_spend_limit(project_id: str, request: Request) -> Response:
    return await _delete_spend_limit(request, project_id, "project")


# -- spend alerts -----------------------------------------------------------------------------------------------------


def _alert_object(kind: str, alert_id: str, body: SpendAlertBody) -> dict[str, Any]:
    return {"id": alert_id, "object": f"{kind}.spend_alert", **body.model_dump()}


def _no_alert(alert_id: str) -> APIError:
    return APIError(404, f"No spend alert found with id '{alert_id}'.", code="not_found")


async def _list_alerts(request: Request, scope: str) -> Response:
    q = request.query_params
    limit = _limit_param(request, 20, 100)
    order = q.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", "order", "invalid_value"
        )
    after, before = check_no_nul("after", q.get("after")) or None, check_no_nul("before", q.get("before")) or None

    def read(conn: sa.Connection) -> tuple[list, bool]:
        return records.list_alerts(conn, scope, limit=limit, order=order, after=after, before=before)

    data, has_more = await _scoped(request, scope, read, write=False)
    return list_response(data, has_more)


async def _create_alert(request: Request, scope: str, kind: str, body: SpendAlertBody) -> Response:
    def create(conn: sa.Connection) -> dict[str, Any]:
        alert = _alert_object(kind, new_id("spend_alert"), body)
        records.insert_alert(conn, scope, alert, now())
        _audit_setting(conn, scope, {"spend_alert": {"action": "created", **alert}})
        return alert

    return json(await _scoped(request, scope, create))


async def _get_alert(request: Request, scope: str, alert_id: str) -> Response:
    check_no_nul("alert_id", alert_id)
    found = await _scoped(request, scope, lambda conn: records.get_alert(conn, scope, alert_id), write=False)
    if found is None:
        raise _no_alert(alert_id)
    return json(found)


async def _update_alert(request: Request, scope: str, kind: str, alert_id: str, body: SpendAlertBody) -> Response:
    check_no_nul("alert_id", alert_id)

    def update(conn: sa.Connection) -> dict[str, Any] | None:
        alert = _alert_object(kind, alert_id, body)
        if not records.update_alert(conn, scope, alert):
            return None
        _audit_setting(conn, scope, {"spend_alert": {"action": "updated", **alert}})
        return alert

    found = await _scoped(request, scope, update)
    if found is None:
        raise _no_alert(alert_id)
    return json(found)


async def _delete_alert(request: Request, scope: str, kind: str, alert_id: str) -> Response:
    check_no_nul("alert_id", alert_id)

    def delete(conn: sa.Connection) -> bool:
        gone = records.delete_alert(conn, scope, alert_id)
        if gone:
            _audit_setting(conn, scope, {"spend_alert": {"action": "deleted", "id": alert_id}})
        return gone

    if not await _scoped(request, scope, delete):
        raise _no_alert(alert_id)
    return json({"id": alert_id, "object": f"{kind}.spend_alert.deleted", "deleted": True})


@router.get("/spend_alerts")
async def list_organization_spend_alerts(request: Request) -> Response:
    return await _list_alerts(request, ORGANIZATION)


@router.post("/spend_alerts")
async def create_organization_spend_alert(request: Request, body: SpendAlertBody = Body(...)) -> Response:
    return await _create_alert(request, ORGANIZATION, "organization", body)


@router.get("/spend_alerts/{alert_id}")
async def get_organization_spend_alert(alert_id: str, request: Request) -> Response:
    return await _get_alert(request, ORGANIZATION, alert_id)


@router.post("/spend_alerts/{alert_id}")
async def update_organization_spend_alert(
    alert_id: str, request: Request, body: SpendAlertBody = Body(...)
) -> Response:
    return await _update_alert(request, ORGANIZATION, "organization", alert_id, body)


@router.delete("/spend_alerts/{alert_id}")
async def delete_organization_spend_alert(alert_id: str, request: Request) -> Response:
    return await _delete_alert(request, ORGANIZATION, "organization", alert_id)


@router.get("/projects/{project_id}/spend_alerts")
async def list_project_spend_alerts(project_id: str, request: Request) -> Response:
    return await _list_alerts(request, project_id)


@router.post("/projects/{project_id}/spend_alerts")
async def create_project_spend_alert(project_id: str, request: Request, body: SpendAlertBody = Body(...)) -> Response:
    return await _create_alert(request, project_id, "project", body)


@router.get("/projects/{project_id}/spend_alerts/{alert_id}")
async def get_project_spend_alert(project_id: str, alert_id: str, request: Request) -> Response:
    return await _get_alert(request, project_id, alert_id)


@router.post("/projects/{project_id}/spend_alerts/{alert_id}")
async def update_project_spend_alert(
    project_id: str, alert_id: str, request: Request, body: SpendAlertBody = Body(...)
) -> Response:
    return await _update_alert(request, project_id, "project", alert_id, body)


@router.delete("/projects/{project_id}/spend_alerts/{alert_id}")
async def delete_project_spend_alert(project_id: str, alert_id: str, request: Request) -> Response:
    return await _delete_alert(request, project_id, "project", alert_id)


# -- audit ------------------------------------------------------------------------------------------------------------


def _audit_setting(conn: sa.Connection, scope: str, changes: dict[str, Any]) -> None:
    """Record a change of a spend limit or alert in the audit log, in the transaction that makes it. OpenAI's event
    types have none for them: they are recorded as what they change, `project.updated` (a project's) or
    `organization.updated` (the organization's), with the change under `changes_requested`."""
    if scope == ORGANIZATION:
        details = {"id": AUDIT_ORGANIZATION_ID, "changes_requested": changes}
        audit.record(conn, "organization.updated", details=details)
    else:
        audit.record(conn, "project.updated", project_id=scope, details={"id": scope, "changes_requested": changes})

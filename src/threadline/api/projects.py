"""/v1/organization/projects: projects, their service accounts, API keys and users (OpenAI's administration API;
an admin key is required, checked by the middleware). Every change is recorded in the audit log in its own
transaction; a change to which keys work is announced to every server process in it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import Field

from ..fields import Strict
from ..store import audit, projects
from ..store.projects import OPERATOR
from ..tenancy import DEFAULT_PROJECT_ID
from .common import check_no_nul, json, runtime
from .common import list_response as _list
from .errors import APIError, bad_request
from .jsonbody import JSONRoute
from .organization import TRUE, _page_limit

router = APIRouter(prefix="/v1/organization/projects", tags=["projects"], route_class=JSONRoute)

Name = Annotated[str, Field(min_length=1, max_length=256)]
T = TypeVar("T")


# The spec's PublicProjectResidency; accepted (everything stays in the operator's own database) but checked.
Residency = Literal[
    "GLOBAL",
    "US_STORAGE_PROCESSING",
    "EU_STORAGE_PROCESSING",
    "JP_STORAGE",
    "KR_STORAGE",
    "CA_STORAGE",
    "SG_STORAGE",
    "IN_STORAGE",
    "AU_STORAGE",
    "GB_STORAGE",
    "AE_STORAGE",
    "AE_STORAGE_PROCESSING",
]


class ProjectCreate(Strict):
    name: Name
    residency: Residency | None = None
    external_key_id: str | None = None


class ProjectUpdate(Strict):
    name: Name | None = None
    external_key_id: str | None = None


class ServiceAccountCreate(Strict):
    name: Name
    create_service_account_only: bool | None = None


def _project_not_found(project_id: str) -> APIError:
    return APIError(404, f"No project found with id '{project_id}'.", code="not_found")


def _page(request: Request) -> tuple[str | None, int]:
    """(after, limit) of a list request: `limit` between 1 and 100, 20 by default."""
    limit = _page_limit(request)
    return check_no_nul("after", request.query_params.get("after")) or None, limit


async def _write(request: Request, work: Callable[[sa.Connection], T]) -> T:
    rt = runtime(request)

    def run() -> T:
        with rt.store.write() as conn:
            return work(conn)

    return await anyio.to_thread.run_sync(run)


async def _read(request: Request, work: Callable[[sa.Connection], T]) -> T:
    rt = runtime(request)

    def run() -> T:
        with rt.store.read() as conn:
            return work(conn)

    return await anyio.to_thread.run_sync(run)


def _existing(conn: sa.Connection, project_id: str) -> dict[str, Any]:
    project = projects.get_project(conn, project_id)
    if project is None:
        raise _project_not_found(project_id)
    return project


def _active(conn: sa.Connection, project_id: str) -> dict[str, Any]:
    project = _existing(conn, project_id)
    if project["archived_at"] is not None:
        raise bad_request(f"Project '{project_id}' is archived and cannot be changed.", code="project_archived")
    return project


# -- projects ---------------------------------------------------------------------------------------------------------


@router.post("")
async def create_project(request: Request, body: ProjectCreate = Body(...)) -> Response:
    check_no_nul("name", body.name)

    def create(conn: sa.Connection) -> dict[str, Any]:
        project = projects.create_project(conn, body.name)
        audit.record(
            conn,
            "project.created",
            project_id=project["id"],
            details={"id": project["id"], "data": {"name": body.name, "title": body.name}},
        )
        return project

    return json(await _write(request, create))


@router.get("")
async def list_projects(request: Request) -> Response:
    after, limit = _page(request)
    raw = (request.query_params.get("include_archived") or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_request(
            f"Invalid type for 'include_archived': expected a boolean, but got '{raw[:64]}' instead.",
            param="include_archived",
            code="invalid_type",
        )
    include = raw in TRUE
    page = await _read(
        request, lambda conn: projects.list_projects(conn, after=after, limit=limit, include_archived=include)
    )
    return _list(*page)


@router.get("/{project_id}")
async def get_project(project_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    return json(await _read(request, lambda conn: _existing(conn, project_id)))


@router.post("/{project_id}")
async def modify_project(project_id: str, request: Request, body: ProjectUpdate = Body(...)) -> Response:
    check_no_nul("project_id", project_id)
    if body.name is not None:
        check_no_nul("name", body.name)

    def modify(conn: sa.Connection) -> dict[str, Any]:
        project = _active(conn, project_id)
        if project_id == DEFAULT_PROJECT_ID:
            raise bad_request("The default project cannot be modified.", code="invalid_request")
        if body.name is None or body.name == project["name"]:
            return project
        updated = projects.rename_project(conn, project_id, body.name)
        assert updated is not None
        audit.record(
            conn,
            "project.updated",
            project_id=project_id,
            details={"id": project_id, "changes_requested": {"title": body.name}},
        )
        return updated

    return json(await _write(request, modify))


@router.post("/{project_id}/archive")
async def archive_project(project_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)

    def archive(conn: sa.Connection) -> dict[str, Any]:
        project = _existing(conn, project_id)
        if project_id == DEFAULT_PROJECT_ID:
            raise bad_request("The default project cannot be archived.", code="invalid_request")
        if project["archived_at"] is not None:
            return project
        archived = projects.archive_project(conn, project_id)
        assert archived is not None
        audit.record(conn, "project.archived", project_id=project_id, details={"id": project_id})
        return archived

    return json(await _write(request, archive))


# -- service accounts -------------------------------------------------------------------------------------------------


def _account_not_found(account_id: str) -> APIError:
    return APIError(404, f"No service account found with id '{account_id}'.", code="not_found")


@router.post("/{project_id}/service_accounts")
async def create_service_account(project_id: str, request: Request, body: ServiceAccountCreate = Body(...)) -> Response:
    check_no_nul("project_id", project_id)
    check_no_nul("name", body.name)

    def create(conn: sa.Connection) -> dict[str, Any]:
        _active(conn, project_id)
        created = projects.create_service_account(
            conn, project_id, body.name, with_key=not body.create_service_account_only
        )
        audit.record(
            conn,
            "service_account.created",
            project_id=project_id,
            details={"id": created["id"], "data": {"role": created["role"]}},
        )
        if created["api_key"] is not None:
            audit.record(
                conn,
                "api_key.created",
                project_id=project_id,
                details={"id": created["api_key"]["id"], "data": {"scopes": ["api.all"]}},
            )
        return created

    return json(await _write(request, create))


@router.get("/{project_id}/service_accounts")
async def list_service_accounts(project_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    after, limit = _page(request)

    def read(conn: sa.Connection) -> tuple[list[dict[str, Any]], bool]:
        _existing(conn, project_id)
        return projects.list_service_accounts(conn, project_id, after=after, limit=limit)

    return _list(*await _read(request, read))


@router.get("/{project_id}/service_accounts/{account_id}")
async def get_service_account(project_id: str, account_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    check_no_nul("service_account_id", account_id)

    def read(conn: sa.Connection) -> dict[str, Any]:
        _existing(conn, project_id)
        found = projects.get_service_account(conn, project_id, account_id)
        if found is None:
            raise _account_not_found(account_id)
        return found

    return json(await _read(request, read))


@router.delete("/{project_id}/service_accounts/{account_id}")
async def delete_service_account(project_id: str, account_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    check_no_nul("service_account_id", account_id)

    def delete(conn: sa.Connection) -> None:
        _existing(conn, project_id)
        key_ids = projects.delete_service_account(conn, project_id, account_id)
        if key_ids is None:
            raise _account_not_found(account_id)
        for key_id in key_ids:
            audit.record(conn, "api_key.deleted", project_id=project_id, details={"id": key_id})
        audit.record(conn, "service_account.deleted", project_id=project_id, details={"id": account_id})

    await _write(request, delete)
    return json({"object": "organization.project.service_account.deleted", "id": account_id, "deleted": True})


# -- project API keys -------------------------------------------------------------------------------------------------


def _key_not_found(key_id: str) -> APIError:
    return APIError(404, f"No API key found with id '{key_id}'.", code="not_found")


@router.get("/{project_id}/api_keys")
async def list_api_keys(project_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    after, limit = _page(request)
    access = request.query_params.get("owner_project_access")
    if access is not None and access not in ("active", "inactive", "any"):
        raise bad_request(
            f"Invalid value: '{access[:64]}'. Supported values are: 'active', 'inactive' and 'any'.",
            param="owner_project_access",
            code="invalid_value",
        )

    def read(conn: sa.Connection) -> tuple[list[dict[str, Any]], bool]:
        _existing(conn, project_id)
        if access == "inactive":  # every owner of a key here has access: a deleted owner's keys are deleted
            return [], False
        return projects.list_api_keys(conn, project_id, after=after, limit=limit)

    return _list(*await _read(request, read))


@router.get("/{project_id}/api_keys/{key_id}")
async def get_api_key(project_id: str, key_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    check_no_nul("api_key_id", key_id)

    def read(conn: sa.Connection) -> dict[str, Any]:
        _existing(conn, project_id)
        found = projects.get_api_key(conn, project_id, key_id)
        if found is None:
            raise _key_not_found(key_id)
        return found

    return json(await _read(request, read))


@router.delete("/{project_id}/api_keys/{key_id}")
async def delete_api_key(project_id: str, key_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    check_no_nul("api_key_id", key_id)

    def delete(conn: sa.Connection) -> None:
        _existing(conn, project_id)
        if not projects.delete_api_key(conn, project_id, key_id):
            raise _key_not_found(key_id)
        audit.record(conn, "api_key.deleted", project_id=project_id, details={"id": key_id})

    await _write(request, delete)
    return json({"object": "organization.project.api_key.deleted", "id": key_id, "deleted": True})


# -- users ------------------------------------------------------------------------------------------------------------


def _operator(project: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "organization.project.user",
        "id": OPERATOR["id"],
        "name": OPERATOR["name"],
        "email": OPERATOR["email"],
        "role": "owner",
        "added_at": project["created_at"],
    }


@router.get("/{project_id}/users")
async def list_users(project_id: str, request: Request) -> Response:
    """A self-hosted server has one user, the operator (who holds the admin keys), owner of every project."""
    check_no_nul("project_id", project_id)
    after, _ = _page(request)
    project = await _read(request, lambda conn: _existing(conn, project_id))
    return _list([] if after is not None else [_operator(project)], False)


@router.get("/{project_id}/users/{user_id}")
async def get_user(project_id: str, user_id: str, request: Request) -> Response:
    check_no_nul("project_id", project_id)
    project = await _read(request, lambda conn: _existing(conn, project_id))
    if user_id != OPERATOR["id"]:
        raise APIError(404, f"No user found with id '{user_id}'.", code="not_found")
    return json(_operator(project))

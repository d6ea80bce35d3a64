"""/v1/containers: code_interpreter sandbox sessions and their /mnt/data files (services/containers.py)."""

from __future__ import annotations

import json as stdlib_json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import Field, ValidationError
from starlette.datastructures import UploadFile

from ..fields import Strict
from ..services import containers as svc
from .common import ListParams, _list_params, check_no_nul, json, page_response, read_form, runtime
from .errors import INVALID_JSON, APIError, bad_request
from .files import _attachment, _stream
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/containers", tags=["containers"], route_class=JSONRoute)


class ExpiresAfter(Strict):
    anchor: Literal["last_active_at"]
    minutes: Annotated[int, Field(ge=1, le=svc.MAX_MINUTES)]


class NetworkPolicy(Strict):
    type: Literal["disabled"]  # the sandbox has no network: an allowlist cannot be honoured


class ContainerCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    file_ids: Annotated[list[str], Field(max_length=svc.MAX_FILE_IDS)] | None = None
    expires_after: ExpiresAfter | None = None
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    network_policy: NetworkPolicy | None = None
    skills: Annotated[list[Any], Field(max_length=0)] | None = None  # not supported: only an empty list


class ContainerFileCreate(Strict):
    file_id: str


async def list_params(request: Request) -> ListParams:
    """limit (1-100, 20), order (default desc), after."""
    q = request.query_params
    return _list_params(q.get("limit"), q.get("order"), q.get("after"), None, 100, 20)


@router.post("")
async def create_container(request: Request, body: ContainerCreate = Body(...)) -> Response:
    cmd = svc.NewContainer(
        name=body.name,
        file_ids=body.file_ids or [],
        minutes=body.expires_after.minutes if body.expires_after else svc.DEFAULT_MINUTES,
        memory_limit=body.memory_limit or "1g",
    )
    return json(await svc.create(runtime(request), cmd))


@router.get("")
async def list_containers(request: Request, params: ListParams = Depends(list_params)) -> Response:
    name = check_no_nul("name", request.query_params.get("name"))
    return page_response(await svc.list_containers(runtime(request), params, name=name))


@router.get("/{container_id}")
async def get_container(container_id: str, request: Request) -> Response:
    return json(await svc.current(runtime(request), container_id))


@router.delete("/{container_id}")
async def delete_container(container_id: str, request: Request) -> Response:
    rt = runtime(request)
    with rt.reserve.freeing():
        await svc.delete(rt, container_id)
    return json({"id": container_id, "object": "container.deleted", "deleted": True})


@router.post("/{container_id}/files")
async def create_container_file(container_id: str, request: Request) -> Response:
    """Either `{file_id}` (copy an uploaded File; JSON, or a form field as openai 1.x sends it) or a multipart body
    with the field `file`."""
    rt = runtime(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await read_form(request, max_fields=16)
        try:
            upload = form.get("file")
            file_id = form.get("file_id")
            if upload is None and isinstance(file_id, str):  # openai 1.x sends `{file_id}` as a form field too
                return json(await svc.add_file(rt, container_id, file_id))
            if not isinstance(upload, UploadFile):
                missing = "Missing required parameter: 'file'."
                raise bad_request(missing, param="file", code="missing_required_parameter")
            return json(await svc.upload_file(rt, container_id, upload.file, upload.filename))
        finally:
            await form.close()
    try:
        body = await request.json()
    except (ValueError, stdlib_json.JSONDecodeError):
        raise APIError(400, INVALID_JSON) from None
    try:
        parsed = ContainerFileCreate.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()], body=body) from None
    return json(await svc.add_file(rt, container_id, parsed.file_id))


@router.get("/{container_id}/files")
async def list_container_files(
    container_id: str, request: Request, params: ListParams = Depends(list_params)
) -> Response:
    return page_response(await svc.list_files(runtime(request), container_id, params))


@router.get("/{container_id}/files/{file_id}")
async def get_container_file(container_id: str, file_id: str, request: Request) -> Response:
    obj, _ = await svc.get_file(runtime(request), container_id, file_id)
    return json(obj)


@router.delete("/{container_id}/files/{file_id}")
async def delete_container_file(container_id: str, file_id: str, request: Request) -> Response:
    rt = runtime(request)
    with rt.reserve.freeing():
        await svc.delete_file(rt, container_id, file_id)
    return json({"id": file_id, "object": "container.file.deleted", "deleted": True})


@router.get("/{container_id}/files/{file_id}/content")
async def container_file_content(container_id: str, file_id: str, request: Request) -> Response:
    rt = runtime(request)
    obj, blob_key = await svc.get_file(rt, container_id, file_id)
    try:
        body, size = await run_in_threadpool(rt.blobs.open_sized, blob_key)
    except FileNotFoundError:
        raise svc.file_not_found(file_id) from None
    name = obj["path"].rsplit("/", 1)[-1]
    return StreamingResponse(
        _stream(body),
        media_type="application/octet-stream",
        headers={"content-length": str(size), "content-disposition": _attachment(name)},
    )

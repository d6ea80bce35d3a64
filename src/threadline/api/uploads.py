"""/v1/uploads: large files in parts (<= 64 MB each), completed into one File."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from ..services import uploads
from . import models
from .common import frees_storage, json, read_form, runtime
from .errors import bad_request
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], route_class=JSONRoute)


@router.post("")
def create_upload(body: models.UploadCreate, request: Request) -> Response:
    return json(uploads.create(runtime(request), filename=body.filename, purpose=body.purpose, size=body.bytes))


@router.post("/{upload_id}/parts")
async def add_part(upload_id: str, request: Request) -> Response:
    rt = runtime(request)
    # The body as a whole is capped by middleware.BodyLimit; a part by the service.
    await run_in_threadpool(uploads.check_pending, rt, upload_id)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Invalid request: expected a multipart/form-data body with a 'data' field.")
    form = await read_form(request, max_fields=4)
    try:
        data = form.get("data")
        if not isinstance(data, UploadFile):
            raise bad_request("Missing required parameter: 'data'.", param="data", code="missing_required_parameter")
        return json(await run_in_threadpool(uploads.add_part, rt, upload_id, data.file))
    finally:
        await form.close()


@router.post("/{upload_id}/complete")
def complete_upload(upload_id: str, body: models.UploadComplete, request: Request) -> Response:
    return json(uploads.complete(runtime(request), upload_id, body.part_ids, body.md5))


@router.post("/{upload_id}/cancel")
@frees_storage
def cancel_upload(upload_id: str, request: Request) -> Response:
    return json(uploads.cancel(runtime(request), upload_id))

"""/v1/files: multipart upload streamed to blob storage, listing, retrieval, deletion, raw content."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from ..services import files
from ..store import now
from ..store.blobs import CHUNK, LocalBlobStore
from .common import (
    ListParams,
    check_no_nul,
    file_list_params,
    frees_storage,
    json,
    page_response,
    poll_headers,
    read_form,
    runtime,
    store,
)
from .errors import bad_request
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/files", tags=["files"], route_class=JSONRoute)


def _expires_at(form: Any) -> int | None:
    anchor = form.get("expires_after[anchor]")
    seconds = form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise bad_request(
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'.", param="expires_after.anchor"
        )
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        raise bad_request(
            "Invalid 'expires_after.seconds': expected an integer.", param="expires_after.seconds"
        ) from None
    if not 3600 <= value <= 2592000:
        raise bad_request(
            f"Invalid 'expires_after.seconds': expected a value between 3600 and 2592000, but got {value} instead.",
            param="expires_after.seconds",
        )
    return now() + value


@router.post("")
async def upload_file(request: Request) -> Response:
    rt = runtime(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request("Invalid request: expected a multipart/form-data body with 'file' and 'purpose' fields.")
    form = await read_form(request, max_fields=16)
    try:
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str) or not purpose:
            raise bad_request(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        if purpose not in files.PURPOSES:
            raise bad_request(
                f"Invalid value: '{purpose}'. Supported values are: "
                + ", ".join(f"'{p}'" for p in files.PURPOSES)
                + ".",
                param="purpose",
                code="invalid_value",
            )
        if not isinstance(upload, UploadFile):
            raise bad_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        filename = files.check_filename(upload.filename)
        expires_at = _expires_at(form)
        source = upload.file
        obj = await run_in_threadpool(
            lambda: files.create(rt, source, filename=filename, purpose=purpose, expires_at=expires_at)
        )
        return json(obj)
    finally:
        await form.close()


@router.get("")
def list_files(
    request: Request, params: ListParams = Depends(file_list_params), purpose: str | None = Query(None)
) -> Response:
    check_no_nul("purpose", purpose)
    return page_response(files.list_files(store(request), params, purpose=purpose))


@router.get("/{file_id}")
def get_file(file_id: str, request: Request) -> Response:
    return json(files.get_raw(store(request), file_id), headers=poll_headers(request))


@router.delete("/{file_id}")
@frees_storage
def delete_file(file_id: str, request: Request) -> Response:
    files.delete(runtime(request), file_id)
    return json({"id": file_id, "object": "file", "deleted": True})


@router.get("/{file_id}/content")
def file_content(file_id: str, request: Request) -> Response:
    rt = runtime(request)
    obj, blob_key = files.content(rt.store, file_id)
    if isinstance(rt.blobs, LocalBlobStore):
        path = rt.blobs.path(blob_key)
        if not path.exists():
            raise files.missing_content(file_id)
        return FileResponse(
            path, media_type="application/octet-stream", filename=obj["filename"], content_disposition_type="attachment"
        )
    try:
        body, size = rt.blobs.open_sized(blob_key)
    except FileNotFoundError:
        raise files.missing_content(file_id) from None
    return StreamingResponse(
        _stream(body),
        media_type="application/octet-stream",
        headers={"content-length": str(size), "content-disposition": _attachment(obj["filename"])},
    )


def _stream(body: BinaryIO) -> Iterator[bytes]:
    """The blob in CHUNK-sized pieces (Starlette iterates a sync generator in a worker thread); closed at the end."""
    with body:
        yield from iter(lambda: body.read(CHUNK), b"")


def _attachment(filename: str) -> str:
    """The Content-Disposition header FileResponse sends for `filename` (RFC 6266 / 5987 for non-ASCII names)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'

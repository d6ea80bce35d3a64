"""/v1/files: multipart upload streamed to blob storage, listing, retrieval, deletion, raw content."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from ..ids import new_id
from ..store import Store, dumps, loads, now, schema
from ..store.blobs import CHUNK, LocalBlobStore, TooLarge, discard_on_error
from .common import (
    ListParams,
    check_id,
    check_no_nul,
    deleted,
    file_list_params,
    frees_storage,
    json,
    load,
    page_response,
    poll_headers,
    runtime,
    store,
)
from .errors import APIError, BodyError, bad_request, not_found, size_text
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/files", tags=["files"], route_class=JSONRoute)

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def check_filename(name: str | None, param: str = "file") -> str:
    if not name or not name.strip():
        raise bad_request(f"Invalid '{param}': the file must have a filename.", param=param)
    if len(name.encode()) > 255:
        raise bad_request(f"Invalid '{param}': filename is longer than 255 bytes.", param=param)
    if "/" in name or "\\" in name or name in (".", "..") or any(unicodedata.category(c) == "Cc" for c in name):
        raise bad_request(
            f"Invalid '{param}': filename '{name}' contains a path separator or control characters.", param=param
        )
    return name


def file_object(file_id: str, filename: str, size: int, purpose: str, expires_at: int | None = None) -> dict:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": now(),
        "expires_at": expires_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


def save_file(rt: Any, conn: sa.Connection, obj: dict, blob_key: str) -> None:
    rt.store.insert(conn, schema.files, obj, purpose=obj["purpose"], blob_key=blob_key)


def create_file_from_stream(rt: Any, filename: str, source: BinaryIO, purpose: str) -> dict:
    """Create a File (e.g. a code_interpreter output) by copying ``source`` to the blob store in chunks.

    Blocking. Raises TooLarge past the server's file size limit (THREADLINE_MAX_FILE_BYTES), or whatever ``source``
    or the blob store raise; no File row or blob is left behind then.
    """
    file_id = new_id("file")
    size, _ = rt.blobs.put(file_id, source, max_bytes=rt.settings.max_file_bytes)
    obj = file_object(file_id, filename, size, purpose)
    with discard_on_error(rt.blobs, [file_id]), rt.store.write() as conn:
        save_file(rt, conn, obj, file_id)
    return obj


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
    max_bytes = rt.settings.max_file_bytes  # the body as a whole is capped by middleware.BodyLimit
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request("Invalid request: expected a multipart/form-data body with 'file' and 'purpose' fields.")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except BodyError:
        raise
    except Exception as exc:  # malformed multipart bodies
        raise bad_request(f"Could not parse multipart form: {exc}") from None
    try:
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str) or not purpose:
            raise bad_request(
                "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        if purpose not in UPLOAD_PURPOSES:
            raise bad_request(
                f"Invalid value: '{purpose}'. Supported values are: "
                + ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
                + ".",
                param="purpose",
                code="invalid_value",
            )
        if not isinstance(upload, UploadFile):
            raise bad_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        filename = check_filename(upload.filename)
        expires_at = _expires_at(form)
        file_id = new_id("file")
        try:
            size, _ = await run_in_threadpool(rt.blobs.put, file_id, upload.file, max_bytes=max_bytes)
        except TooLarge:
            raise bad_request(
                f"File is too large. The maximum file size is {size_text(max_bytes)}.", param="file"
            ) from None
        if size == 0:
            await run_in_threadpool(rt.blobs.delete, file_id)  # a network call when the bytes live in S3
            raise bad_request("The file is empty. Please upload a file with content.", param="file")
        obj = file_object(file_id, filename, size, purpose, expires_at)

        def commit() -> None:
            # The clean-up runs in the worker thread too: deleting an S3 object must not block the event loop.
            with discard_on_error(rt.blobs, [file_id]), rt.store.write() as conn:
                save_file(rt, conn, obj, file_id)

        await run_in_threadpool(commit)
        return json(obj)
    finally:
        await form.close()


@router.get("")
def list_files(
    request: Request, params: ListParams = Depends(file_list_params), purpose: str | None = Query(None)
) -> Response:
    check_no_nul("purpose", purpose)
    t = schema.files
    where = (t.c.purpose == purpose) if purpose else None
    return page_response(store(request).page(t, where=where, **params.__dict__))


@router.get("/{file_id}")
def get_file(file_id: str, request: Request) -> Response:
    check_id("file", file_id, "file_id")
    raw = store(request).get_raw(schema.files, file_id)
    if raw is None:
        raise not_found("file", file_id)
    return json(raw, headers=poll_headers(request))


def _strip_file_from(conn: sa.Connection, table: sa.Table, file_id: str) -> None:
    query = sa.select(table.c.id, table.c.data).where(table.c.data.contains(file_id)).with_for_update()
    rows = conn.execute(query).all()
    for object_id, raw in rows:
        obj = loads(raw)
        ci = (obj.get("tool_resources") or {}).get("code_interpreter")
        if ci and file_id in ci.get("file_ids", []):
            ci["file_ids"] = [f for f in ci["file_ids"] if f != file_id]
            conn.execute(table.update().where(table.c.id == object_id).values(data=dumps(obj)))


@router.delete("/{file_id}")
@frees_storage
def delete_file(file_id: str, request: Request) -> Response:
    check_id("file", file_id, "file_id")
    rt = runtime(request)
    with rt.store.write() as conn:
        row = conn.execute(sa.select(schema.files.c.blob_key).where(schema.files.c.id == file_id)).first()
        if row is None:
            raise not_found("file", file_id)
        Store.delete(conn, schema.files, file_id)
        _strip_file_from(conn, schema.assistants, file_id)
        _strip_file_from(conn, schema.threads, file_id)
        hook = getattr(rt, "on_file_deleted", None)
        after_commit = hook(conn, file_id) if hook is not None else None
    rt.blobs.delete(row[0])  # first: on a full disk this is the space the index clean-up below may need
    if after_commit is not None:
        after_commit()
    return json({"id": file_id, "object": "file", "deleted": True})


@router.get("/{file_id}/content")
def file_content(file_id: str, request: Request) -> Response:
    check_id("file", file_id, "file_id")
    rt = runtime(request)
    with rt.store.read() as conn:
        obj = load(conn, schema.files, file_id, "file")
        blob_key = conn.execute(sa.select(schema.files.c.blob_key).where(schema.files.c.id == file_id)).scalar()
    missing = APIError(404, f"No content found for file '{file_id}'.")
    if isinstance(rt.blobs, LocalBlobStore):
        path = rt.blobs.path(blob_key)
        if not path.exists():
            raise missing
        return FileResponse(
            path, media_type="application/octet-stream", filename=obj["filename"], content_disposition_type="attachment"
        )
    try:
        body, size = rt.blobs.open_sized(blob_key)
    except FileNotFoundError:
        raise missing from None
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


__all__ = ["create_file_from_stream", "deleted", "router"]

"""/v1/uploads: large files in parts (<= 64 MB each), completed into one File."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from ..ids import new_id
from ..store import now, schema
from ..store.blobs import TooLarge, discard_on_error
from . import models
from .common import check_id, frees_storage, json, load, runtime
from .errors import BodyError, bad_request, size_text
from .files import check_filename, file_object, save_file
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], route_class=JSONRoute)


def _current(upload: dict, now_s: int) -> dict:
    if upload["status"] == "pending" and now_s >= upload["expires_at"]:
        upload["status"] = "expired"
    return upload


def _require_pending(upload: dict, now_s: int) -> None:
    status = _current(upload, now_s)["status"]
    if status != "pending":
        raise bad_request(f"Upload {upload['id']} is {status}; it no longer accepts this operation.")


@router.post("")
def create_upload(body: models.UploadCreate, request: Request) -> Response:
    rt = runtime(request)
    check_filename(body.filename, "filename")
    ts = rt.clock.now()
    upload = {
        "id": new_id("upload"),
        "object": "upload",
        "bytes": body.bytes,
        "created_at": ts,
        "filename": body.filename,
        "purpose": body.purpose,
        "status": "pending",
        "expires_at": ts + rt.settings.upload_expires_after_s,
        "file": None,
    }
    with rt.store.write() as conn:
        rt.store.insert(conn, schema.uploads, upload, status="pending", expires_at=upload["expires_at"])
    return json(upload)


@router.post("/{upload_id}/parts")
async def add_part(upload_id: str, request: Request) -> Response:
    check_id("upload", upload_id, "upload_id")
    rt = runtime(request)
    max_bytes = rt.settings.max_part_bytes  # the body as a whole is capped by middleware.BodyLimit
    with rt.store.read() as conn:
        _require_pending(load(conn, schema.uploads, upload_id, "upload"), rt.clock.now())
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Invalid request: expected a multipart/form-data body with a 'data' field.")
    try:
        form = await request.form(max_files=1, max_fields=4)
    except BodyError:
        raise
    except Exception as exc:
        raise bad_request(f"Could not parse multipart form: {exc}") from None
    try:
        data = form.get("data")
        if not isinstance(data, UploadFile):
            raise bad_request("Missing required parameter: 'data'.", param="data", code="missing_required_parameter")
        part_id = new_id("part")
        try:
            size, _ = await run_in_threadpool(rt.blobs.put, part_id, data.file, max_bytes=max_bytes)
        except TooLarge:
            raise bad_request(f"Upload parts may be at most {size_text(max_bytes)}.", param="data") from None
        part = {"id": part_id, "object": "upload.part", "created_at": now(), "upload_id": upload_id}

        def commit() -> None:
            # The clean-up runs in the worker thread too: deleting an S3 object must not block the event loop.
            with discard_on_error(rt.blobs, [part_id]), rt.store.write() as conn:
                _require_pending(load(conn, schema.uploads, upload_id, "upload", lock=True), rt.clock.now())
                rt.store.insert(conn, schema.upload_parts, part, upload_id=upload_id, bytes=size, blob_key=part_id)

        await run_in_threadpool(commit)
        return json(part)
    finally:
        await form.close()


@router.post("/{upload_id}/complete")
def complete_upload(upload_id: str, body: models.UploadComplete, request: Request) -> Response:
    check_id("upload", upload_id, "upload_id")
    rt = runtime(request)
    t = schema.upload_parts
    with rt.store.read() as conn:
        upload = load(conn, schema.uploads, upload_id, "upload")
        _require_pending(upload, rt.clock.now())
        rows = conn.execute(sa.select(t.c.id, t.c.bytes, t.c.blob_key).where(t.c.upload_id == upload_id)).all()
    parts = {r[0]: r for r in rows}
    if len(set(body.part_ids)) != len(body.part_ids):
        raise bad_request("Invalid 'part_ids': each part may be listed only once.", param="part_ids")
    for i, part_id in enumerate(body.part_ids):
        if part_id not in parts:
            raise bad_request(
                f"Invalid 'part_ids[{i}]': no part '{part_id}' in upload {upload_id}.", param=f"part_ids[{i}]"
            )
    total = sum(parts[p][1] for p in body.part_ids)
    if total != upload["bytes"]:
        raise bad_request(
            f"The uploaded parts add up to {total} bytes, but the upload was created with bytes={upload['bytes']}.",
            param="part_ids",
        )
    file_id = new_id("file")
    try:
        _, md5 = rt.blobs.concat(file_id, [parts[p][2] for p in body.part_ids])
    except FileNotFoundError:
        # A concurrent cancel or complete removed the parts: report the state it left.
        with rt.store.read() as conn:
            _require_pending(load(conn, schema.uploads, upload_id, "upload"), rt.clock.now())
        raise
    with discard_on_error(rt.blobs, [file_id]):
        if body.md5 and body.md5.lower() != md5:
            raise bad_request(f"The md5 checksum of the uploaded bytes is {md5}, not {body.md5}.", param="md5")
        file_obj = file_object(file_id, upload["filename"], total, upload["purpose"])
        with rt.store.write() as conn:
            upload = load(conn, schema.uploads, upload_id, "upload", lock=True)
            # a concurrent complete or cancel won: this file's bytes are discarded
            _require_pending(upload, rt.clock.now())
            save_file(rt, conn, file_obj, file_id)
            upload.update(status="completed", file=file_obj)
            rt.store.update(conn, schema.uploads, upload, status="completed")
            # Every part of the upload goes, including any added since the read above.
            part_keys = list(conn.execute(sa.select(t.c.blob_key).where(t.c.upload_id == upload_id)).scalars())
            conn.execute(t.delete().where(t.c.upload_id == upload_id))
    for key in part_keys:
        rt.blobs.delete(key)
    return json(upload)


@router.post("/{upload_id}/cancel")
@frees_storage
def cancel_upload(upload_id: str, request: Request) -> Response:
    check_id("upload", upload_id, "upload_id")
    rt = runtime(request)
    t = schema.upload_parts
    with rt.store.write() as conn:
        upload = load(conn, schema.uploads, upload_id, "upload", lock=True)
        _require_pending(upload, rt.clock.now())
        upload["status"] = "cancelled"
        rt.store.update(conn, schema.uploads, upload, status="cancelled")
        keys = [r[0] for r in conn.execute(sa.select(t.c.blob_key).where(t.c.upload_id == upload_id))]
        conn.execute(t.delete().where(t.c.upload_id == upload_id))
    for key in keys:
        rt.blobs.delete(key)
    return json(upload)


def expire_stale_uploads(rt: Any) -> int:
    """Mark pending uploads past `expires_at` as `expired` and delete their parts' bytes; returns how many.

    An abandoned upload would otherwise keep its parts on disk forever. Called periodically by the runtime.
    """
    t, p = schema.uploads, schema.upload_parts
    cond = (t.c.status == "pending") & (t.c.expires_at <= rt.clock.now())
    with rt.store.read() as conn:
        ids = list(conn.execute(sa.select(t.c.id).where(cond)).scalars())
    for upload_id in ids:
        with rt.store.write() as conn:
            upload = load(conn, t, upload_id, "upload", lock=True)
            if _current(upload, rt.clock.now())["status"] != "expired":
                continue
            rt.store.update(conn, t, upload, status="expired")
            keys = list(conn.execute(sa.select(p.c.blob_key).where(p.c.upload_id == upload_id)).scalars())
            conn.execute(p.delete().where(p.c.upload_id == upload_id))
        for key in keys:
            rt.blobs.delete(key)
    return len(ids)

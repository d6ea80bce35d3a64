"""Uploads: large files sent in parts (each stored as a blob) and completed into one File; cancel and expiry."""

from __future__ import annotations

from typing import Any, BinaryIO

import sqlalchemy as sa

from ..ids import new_id
from ..store import now
from ..store import uploads as repo
from ..store.blobs import TooLarge, discard_on_error
from . import files
from .deps import Deps
from .errors import Conflict, Invalid, NotFound, check_id, size_text


def _current(upload: dict, now_s: int) -> dict:
    if upload["status"] == "pending" and now_s >= upload["expires_at"]:
        upload["status"] = "expired"
    return upload


def _require_pending(upload: dict, now_s: int) -> None:
    status = _current(upload, now_s)["status"]
    if status != "pending":
        raise Conflict(f"Upload {upload['id']} is {status}; it no longer accepts this operation.")


def _load(conn: sa.Connection, upload_id: str, *, lock: bool = False) -> dict[str, Any]:
    upload = repo.get(conn, upload_id, lock=lock)
    if upload is None:
        raise NotFound("upload", upload_id)
    return upload


def create(deps: Deps, *, filename: str, purpose: str, size: int) -> dict[str, Any]:
    """Start an upload of `size` bytes; it expires `settings.upload_expires_after_s` later unless completed."""
    files.check_filename(filename, "filename")
    ts = deps.clock.now()
    upload = {
        "id": new_id("upload"),
        "object": "upload",
        "bytes": size,
        "created_at": ts,
        "filename": filename,
        "purpose": purpose,
        "status": "pending",
        "expires_at": ts + deps.settings.upload_expires_after_s,
        "file": None,
    }
    with deps.store.write() as conn:
        repo.insert(conn, upload)
    return upload


def check_pending(deps: Deps, upload_id: str) -> None:
    """Raises Invalid / NotFound, or Conflict when the upload no longer accepts parts (before reading a part)."""
    check_id("upload", upload_id, "upload_id")
    with deps.store.read() as conn:
        _require_pending(_load(conn, upload_id), deps.clock.now())


def add_part(deps: Deps, upload_id: str, data: BinaryIO) -> dict[str, Any]:
    """Store one part (at most settings.max_part_bytes: Invalid past it, param `data`). Blocking; raises Conflict when
    the upload stopped being pending meanwhile (the part's bytes are discarded then)."""
    max_bytes = deps.settings.max_part_bytes
    part_id = new_id("part")
    try:
        size, _ = deps.blobs.put(part_id, data, max_bytes=max_bytes)
    except TooLarge:
        raise Invalid(f"Upload parts may be at most {size_text(max_bytes)}.", param="data") from None
    part = {"id": part_id, "object": "upload.part", "created_at": now(), "upload_id": upload_id}
    with discard_on_error(deps.blobs, [part_id]), deps.store.write() as conn:
        _require_pending(_load(conn, upload_id, lock=True), deps.clock.now())
        repo.insert_part(conn, part, size, part_id)
    return part


def complete(deps: Deps, upload_id: str, part_ids: list[str], md5: str | None) -> dict[str, Any]:
    """Join the listed parts, in order, into a new File (the upload's `file`); the parts' bytes are deleted. Raises
    Invalid for a repeated or unknown part, a size other than the upload's `bytes` or a wrong md5; Conflict when the
    upload is no longer pending (also when a concurrent complete or cancel wins)."""
    check_id("upload", upload_id, "upload_id")
    with deps.store.read() as conn:
        upload = _load(conn, upload_id)
        _require_pending(upload, deps.clock.now())
        parts = repo.parts(conn, upload_id)
    if len(set(part_ids)) != len(part_ids):
        raise Invalid("Invalid 'part_ids': each part may be listed only once.", param="part_ids")
    for i, part_id in enumerate(part_ids):
        if part_id not in parts:
            raise Invalid(
                f"Invalid 'part_ids[{i}]': no part '{part_id}' in upload {upload_id}.", param=f"part_ids[{i}]"
            )
    total = sum(parts[p][0] for p in part_ids)
    if total != upload["bytes"]:
        raise Invalid(
            f"The uploaded parts add up to {total} bytes, but the upload was created with bytes={upload['bytes']}.",
            param="part_ids",
        )
    file_id = new_id("file")
    try:
        _, digest = deps.blobs.concat(file_id, [parts[p][1] for p in part_ids])
    except FileNotFoundError:
        # A concurrent cancel or complete removed the parts: report the state it left.
        with deps.store.read() as conn:
            _require_pending(_load(conn, upload_id), deps.clock.now())
        raise
    with discard_on_error(deps.blobs, [file_id]):
        if md5 and md5.lower() != digest:
            raise Invalid(f"The md5 checksum of the uploaded bytes is {digest}, not {md5}.", param="md5")
        file_obj = files.file_object(file_id, upload["filename"], total, upload["purpose"])
        with deps.store.write() as conn:
            upload = _load(conn, upload_id, lock=True)
            # a concurrent complete or cancel won: this file's bytes are discarded
            _require_pending(upload, deps.clock.now())
            files.save(conn, file_obj, file_id)
            upload.update(status="completed", file=file_obj)
            repo.update(conn, upload)
            # Every part of the upload goes, including any added since the read above.
            part_keys = repo.delete_parts(conn, upload_id)
    for key in part_keys:
        deps.blobs.delete(key)
    return upload


def cancel(deps: Deps, upload_id: str) -> dict[str, Any]:
    """Cancel a pending upload and delete its parts' bytes; raises Invalid / NotFound / Conflict."""
    check_id("upload", upload_id, "upload_id")
    with deps.store.write() as conn:
        upload = _load(conn, upload_id, lock=True)
        _require_pending(upload, deps.clock.now())
        upload["status"] = "cancelled"
        repo.update(conn, upload)
        keys = repo.delete_parts(conn, upload_id)
    for key in keys:
        deps.blobs.delete(key)
    return upload


def expire_stale(deps: Deps) -> int:
    """Mark pending uploads past `expires_at` as `expired` and delete their parts' bytes; returns how many.

    An abandoned upload would otherwise keep its parts on disk forever. Called periodically by the runtime."""
    with deps.store.read() as conn:
        ids = repo.expired_ids(conn, deps.clock.now())
    for upload_id in ids:
        with deps.store.write() as conn:
            upload = repo.get(conn, upload_id, lock=True)
            if upload is None or _current(upload, deps.clock.now())["status"] != "expired":
                continue
            repo.update(conn, upload)
            keys = repo.delete_parts(conn, upload_id)
        for key in keys:
            deps.blobs.delete(key)
    return len(ids)

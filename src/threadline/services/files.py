"""Files: creating a File from a byte stream, listing, reading and deleting (which removes it everywhere)."""

from __future__ import annotations

import unicodedata
from typing import BinaryIO

import sqlalchemy as sa

from ..ids import new_id
from ..store import Page, Store, now, schema
from ..store import files as repo
from ..store import vector_stores as vs_repo
from ..store.blobs import TooLarge, discard_on_error
from ..store.sql import ListParams
from .deps import Deps
from .errors import Invalid, NotFound, check_id, size_text

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def check_filename(name: str | None, param: str = "file") -> str:
    """`name` when it is usable as a filename (non-blank, <= 255 bytes, no path separator or control character);
    raises Invalid naming `param` otherwise."""
    if not name or not name.strip():
        raise Invalid(f"Invalid '{param}': the file must have a filename.", param=param)
    if len(name.encode()) > 255:
        raise Invalid(f"Invalid '{param}': filename is longer than 255 bytes.", param=param)
    if "/" in name or "\\" in name or name in (".", "..") or any(unicodedata.category(c) == "Cc" for c in name):
        raise Invalid(
            f"Invalid '{param}': filename '{name}' contains a path separator or control characters.", param=param
        )
    return name


def file_object(file_id: str, filename: str, size: int, purpose: str, expires_at: int | None = None) -> dict:
    """The File wire object (status `processed`: files are usable as soon as they are stored)."""
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


def save(conn: sa.Connection, obj: dict, blob_key: str) -> None:
    """Store the row of a File whose bytes are already at `blob_key`."""
    repo.insert(conn, obj, blob_key)


def require(conn: sa.Connection, file_id: str, param: str) -> dict:
    """The File `file_id` sent as `param`; raises Invalid (not a file id) or NotFound."""
    check_id("file", file_id, param)
    obj = repo.get(conn, file_id)
    if obj is None:
        raise NotFound("file", file_id)
    return obj


def create(
    deps: Deps, source: BinaryIO, *, filename: str, purpose: str, expires_at: int | None = None, check_size: bool = True
) -> dict:
    """Create a File by copying `source` to the blob store in chunks, then saving its row. Blocking.

    With `check_size` (uploads through the API), raises Invalid (param `file`) for a file past the server's size limit
    (settings.max_file_bytes) or an empty one; without, TooLarge propagates. Whatever `source` or the stores raise
    propagates too; no File row or blob is left behind on any error.
    """
    max_bytes = deps.settings.max_file_bytes
    file_id = new_id("file")
    try:
        size, _ = deps.blobs.put(file_id, source, max_bytes=max_bytes)
    except TooLarge:
        if not check_size:
            raise
        raise Invalid(f"File is too large. The maximum file size is {size_text(max_bytes)}.", param="file") from None
    if check_size and size == 0:
        deps.blobs.delete(file_id)
        raise Invalid("The file is empty. Please upload a file with content.", param="file")
    obj = file_object(file_id, filename, size, purpose, expires_at)
    with discard_on_error(deps.blobs, [file_id]), deps.store.write() as conn:
        save(conn, obj, file_id)
    return obj


def get_raw(store: Store, file_id: str) -> str:
    """The stored File as JSON text; raises Invalid / NotFound."""
    check_id("file", file_id, "file_id")
    with store.read() as conn:
        raw = repo.get_raw(conn, file_id)
    if raw is None:
        raise NotFound("file", file_id)
    return raw


def list_files(store: Store, params: ListParams, *, purpose: str | None) -> Page:
    return repo.page(store, params, purpose=purpose)


def content(store: Store, file_id: str) -> tuple[dict, str]:
    """The File and the key of its bytes in the blob store; raises Invalid / NotFound."""
    check_id("file", file_id, "file_id")
    with store.read() as conn:
        obj = repo.get(conn, file_id)
        key = repo.blob_key(conn, file_id)
    if obj is None or key is None:
        raise NotFound("file", file_id)
    return obj, key


def missing_content(file_id: str) -> NotFound:
    """The error for a File whose bytes are gone from the blob store."""
    return NotFound("file", file_id, f"No content found for file '{file_id}'.")


def delete(deps: Deps, file_id: str) -> None:
    """Delete a File: its row, its place in assistants' and threads' code_interpreter files and in every vector store
    (with its chunks), and its bytes. Raises Invalid / NotFound."""
    check_id("file", file_id, "file_id")
    with deps.store.write() as conn:
        key = repo.blob_key(conn, file_id)
        if key is None:
            raise NotFound("file", file_id)
        repo.delete(conn, file_id)
        repo.strip_code_interpreter_file(conn, schema.assistants, file_id)
        repo.strip_code_interpreter_file(conn, schema.threads, file_id)
        stores = vs_repo.remove_file_everywhere(conn, file_id)
    deps.blobs.delete(key)  # first: on a full disk this is the space the index clean-up below may need
    for vs_id in stores:
        deps.retrieval.delete_file(vs_id, file_id)

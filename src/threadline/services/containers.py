"""Containers: code_interpreter sandbox sessions exposed as `/v1/containers`.

A container is the sandbox session keyed by its id (`cntr_…`); its files are the files of that session's
/mnt/data, each a container file (`cfile_…`, `path` `/mnt/data/<name>`, `source` `user` for files added through the
API, `assistant` for files the code wrote). The store is the source of truth: each file's bytes are in the blob store
(so listing, retrieval and downloads survive a restart and a recycled session), and they are placed in the session
when it is live and again whenever a fresh session starts (`ensure_session`).

Expiry: `expires_after.minutes` (default 20) after `last_active_at` on the runtime's Clock. Creating the container,
adding or deleting a file and running code in it (`touch`) make it active. An expired container keeps its row with
`status: "expired"`; its files and its session are gone, and it takes no new files. Expiry is applied when the
container is next read and by the periodic sweep (`expire_due`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from ..ids import new_id
from ..store import Page
from ..store import containers as repo
from ..store import files as files_repo
from ..store.blobs import TooLarge, discard_on_error
from ..store.sql import ListParams
from .deps import Deps
from .errors import Invalid, NotFound, check_id, size_text
from .files import check_filename

log = logging.getLogger("threadline.containers")

DATA_DIR = "/mnt/data/"
DEFAULT_MINUTES = 20
MAX_MINUTES = 7 * 24 * 60
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
MAX_FILE_IDS = 50  # as code_interpreter's `container: {type: "auto", file_ids}`


@dataclass
class NewContainer:
    """POST /v1/containers, parsed: `minutes` of inactivity before expiry, `memory_limit` one of MEMORY_LIMITS."""

    name: str
    file_ids: list[str] = field(default_factory=list)
    minutes: int = DEFAULT_MINUTES
    memory_limit: str = "1g"


def not_found(container_id: str) -> NotFound:
    return NotFound("container", container_id, f"Container with id '{container_id}' not found.")


def file_not_found(file_id: str) -> NotFound:
    return NotFound("container file", file_id, f"Container file with id '{file_id}' not found.")


def _expires_at(obj: dict[str, Any]) -> int:
    return int(obj["last_active_at"]) + 60 * int(obj["expires_after"]["minutes"])


def _container_object(deps: Deps, cmd: NewContainer) -> dict[str, Any]:
    now = deps.clock.now()
    return {
        "id": new_id("container"),
        "object": "container",
        "name": cmd.name,
        "created_at": now,
        "status": repo.RUNNING,
        "last_active_at": now,
        "expires_after": {"anchor": "last_active_at", "minutes": cmd.minutes},
        "memory_limit": cmd.memory_limit,
        "network_policy": {"type": "disabled"},  # the sandbox has no network
    }


def _file_object(container_id: str, file_id: str, path: str, size: int, source: str, now: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "container.file",
        "container_id": container_id,
        "created_at": now,
        "bytes": size,
        "path": path,
        "source": source,
    }


def _free_path(taken: set[str], name: str, file_id: str) -> str:
    """`/mnt/data/<name>`, or `/mnt/data/<stem>-<file id><suffix>` when that path is taken (code_interpreter's rule)."""
    path = DATA_DIR + name
    if path in taken:
        p = PurePosixPath(name)
        path = f"{DATA_DIR}{p.stem}-{file_id}{p.suffix}"
    return path


# -- reading, with expiry applied ----------------------------------------------------------------------------------


def _expire_in_tx(deps: Deps, container_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """Mark the container expired if it is due (row locked); (its object or None, blob keys to delete). Reads
    take no write transaction unless the container is due."""
    with deps.store.read() as conn:
        obj = repo.get(conn, container_id)
    if obj is None or obj["status"] != repo.RUNNING or _expires_at(obj) > deps.clock.now():
        return obj, []
    with deps.store.write() as conn:
        obj = repo.get(conn, container_id, lock=True)
        if obj is None or obj["status"] != repo.RUNNING or _expires_at(obj) > deps.clock.now():
            return obj, []
        obj["status"] = repo.EXPIRED
        repo.update(conn, obj, None)
        return obj, repo.delete_files(conn, container_id)


async def _drop_session_and_blobs(deps: Deps, container_id: str, keys: list[str]) -> None:
    await deps.sandbox.close_session(container_id)
    for key in keys:
        await asyncio.to_thread(deps.blobs.delete, key)


async def current(deps: Deps, container_id: str) -> dict[str, Any]:
    """The container, expired first if it is due. Raises Invalid (not a container id) / NotFound."""
    check_id("container", container_id, "container_id")
    obj, keys = await asyncio.to_thread(_expire_in_tx, deps, container_id)
    if obj is None:
        raise not_found(container_id)
    if keys or (obj["status"] == repo.EXPIRED and deps.sandbox.has_session(container_id)):
        await _drop_session_and_blobs(deps, container_id, keys)
    return obj


async def running(deps: Deps, container_id: str) -> dict[str, Any]:
    """The container if it is running; raises Invalid (expired), NotFound."""
    obj = await current(deps, container_id)
    if obj["status"] != repo.RUNNING:
        raise Invalid(f"Container '{container_id}' is expired and can no longer be used.", param="container_id")
    return obj


async def expire_due(deps: Deps) -> int:
    """Expire every running container past its `expires_at` (the periodic sweep); how many were expired."""

    def due() -> list[str]:
        with deps.store.read() as conn:
            return repo.due(conn, deps.clock.now())

    count = 0
    for container_id in await asyncio.to_thread(due):
        obj, keys = await asyncio.to_thread(_expire_in_tx, deps, container_id)
        if obj is not None and obj["status"] == repo.EXPIRED:
            await _drop_session_and_blobs(deps, container_id, keys)
            count += 1
    return count


def touch(deps: Deps, container_id: str) -> None:
    """Mark a running container active now (pushes its expiry back). Blocking."""
    with deps.store.write() as conn:
        obj = repo.get(conn, container_id, lock=True)
        if obj is None or obj["status"] != repo.RUNNING:
            return
        obj["last_active_at"] = deps.clock.now()
        repo.update(conn, obj, _expires_at(obj))


# -- the sandbox session -------------------------------------------------------------------------------------------


def session_inputs(deps: Deps, container_id: str) -> dict[str, Callable[[], BinaryIO]]:
    """Every file of the container as sandbox input files ({name under /mnt/data: opener of its bytes}). Blocking."""
    with deps.store.read() as conn:
        stored = repo.files(conn, container_id)
    return {obj["path"].removeprefix(DATA_DIR): functools.partial(deps.blobs.open, key) for obj, key in stored}


async def _place(deps: Deps, container_id: str, inputs: dict[str, Callable[[], BinaryIO]]) -> None:
    """Write files into the live session's /mnt/data (starting the session when there is none, with all of the
    container's files). Without a working sandbox the files stay in the store and are placed when one starts."""
    from ..sandbox import SandboxUnavailable

    if not deps.sandbox.has_session(container_id):
        inputs = await asyncio.to_thread(session_inputs, deps, container_id)
    try:
        result = await deps.sandbox.execute(container_id, "pass", input_files=inputs or None)
    except SandboxUnavailable as exc:
        log.warning("container %s: files not placed in a sandbox session: %s", container_id, exc)
        return
    if result.error:
        log.warning("container %s: placing files failed: %s", container_id, result.error)


async def ensure_session(deps: Deps, container_id: str) -> bool:
    """Before running code in the container: start its session with every file when it has none. True when the
    session was (re)started. Raises SandboxUnavailable."""
    if deps.sandbox.has_session(container_id):
        return False
    inputs = await asyncio.to_thread(session_inputs, deps, container_id)
    await deps.sandbox.execute(container_id, "pass", input_files=inputs or None)
    return True


def output_sink(deps: Deps, container_id: str) -> Callable[[str, BinaryIO], dict[str, Any]]:
    """An OutputSink for code run in the container: each new or changed file of /mnt/data becomes a container file
    (`source: "assistant"`), replacing the one at the same path. The sink returns the ContainerFile."""

    def sink(name: str, stream: BinaryIO) -> dict[str, Any]:
        file_id = new_id("container_file")
        size, _ = deps.blobs.put(file_id, stream, max_bytes=deps.settings.max_file_bytes)
        path = DATA_DIR + name
        obj = _file_object(container_id, file_id, path, size, "assistant", deps.clock.now())
        with discard_on_error(deps.blobs, [file_id]), deps.store.write() as conn:
            old = repo.file_at(conn, container_id, path)
            if old is not None:
                repo.delete_file(conn, container_id, old[0]["id"])
            repo.insert_file(conn, obj, file_id)
        if old is not None:
            deps.blobs.delete(old[1])
        return obj

    return sink


# -- containers ----------------------------------------------------------------------------------------------------


def _copy_file(deps: Deps, container_id: str, file_id: str, param: str) -> dict[str, Any]:
    """Copy an uploaded File's bytes into a new container file (`source: "user"`). Blocking."""
    check_id("file", file_id, param)
    with deps.store.read() as conn:
        found = files_repo.with_blob_keys(conn, [file_id]).get(file_id)
    if found is None:
        raise NotFound("file", file_id, f"File with id '{file_id}' not found.")
    file_obj, key = found
    with deps.blobs.open(key) as source:
        return _save_upload(deps, container_id, source, file_obj["filename"], check_size=False)


def _save_upload(deps: Deps, container_id: str, source: BinaryIO, filename: str, *, check_size: bool) -> dict:
    max_bytes = deps.settings.max_file_bytes
    file_id = new_id("container_file")
    try:
        size, _ = deps.blobs.put(file_id, source, max_bytes=max_bytes)
    except TooLarge:
        raise Invalid(f"File is too large. The maximum file size is {size_text(max_bytes)}.", param="file") from None
    if check_size and size == 0:
        deps.blobs.delete(file_id)
        raise Invalid("The file is empty. Please upload a file with content.", param="file")
    with discard_on_error(deps.blobs, [file_id]), deps.store.write() as conn:
        obj = repo.get(conn, container_id, lock=True)
        if obj is None:
            raise not_found(container_id)
        if obj["status"] != repo.RUNNING:
            raise Invalid(f"Container '{container_id}' is expired and can no longer be used.", param="container_id")
        path = _free_path(repo.paths(conn, container_id), PurePosixPath(filename).name or file_id, file_id)
        cfile = _file_object(container_id, file_id, path, size, "user", deps.clock.now())
        repo.insert_file(conn, cfile, file_id)
        obj["last_active_at"] = deps.clock.now()
        repo.update(conn, obj, _expires_at(obj))
    return cfile


async def create(deps: Deps, cmd: NewContainer) -> dict[str, Any]:
    """Create a container with copies of `cmd.file_ids`, and start its session with them. Raises Invalid (a bad
    file id), NotFound (no such File): then nothing is left behind."""
    for i, file_id in enumerate(cmd.file_ids):
        check_id("file", file_id, f"file_ids[{i}]")
    obj = _container_object(deps, cmd)

    def insert() -> None:
        with deps.store.write() as conn:
            missing = [f for f in cmd.file_ids if f not in files_repo.with_blob_keys(conn, [f])]
            if missing:
                raise NotFound("file", missing[0], f"File with id '{missing[0]}' not found.")
            repo.insert(conn, obj, _expires_at(obj))

    await asyncio.to_thread(insert)
    try:
        for i, file_id in enumerate(dict.fromkeys(cmd.file_ids)):
            await asyncio.to_thread(_copy_file, deps, obj["id"], file_id, f"file_ids[{i}]")
    except BaseException:
        await delete(deps, obj["id"])
        raise
    if cmd.file_ids:
        await _place(deps, obj["id"], await asyncio.to_thread(session_inputs, deps, obj["id"]))
    return await current(deps, obj["id"])


async def list_containers(deps: Deps, params: ListParams, *, name: str | None) -> Page:
    """A page of containers (newest first by default), optionally only those called `name`; those past their
    expiry are expired first."""
    await expire_due(deps)
    return await asyncio.to_thread(repo.page, deps.store, params, name=name)


async def delete(deps: Deps, container_id: str) -> None:
    """Delete a container: its row, its files and their bytes, and its sandbox session. Raises Invalid / NotFound."""
    check_id("container", container_id, "container_id")

    def remove() -> list[str] | None:
        with deps.store.write() as conn:
            if repo.get(conn, container_id, lock=True) is None:
                return None
            return repo.delete(conn, container_id)

    keys = await asyncio.to_thread(remove)
    if keys is None:
        raise not_found(container_id)
    await _drop_session_and_blobs(deps, container_id, keys)


# -- container files -----------------------------------------------------------------------------------------------


async def add_file(deps: Deps, container_id: str, file_id: str) -> dict[str, Any]:
    """Copy the uploaded File `file_id` into the container (`POST /containers/{id}/files` with `{file_id}`)."""
    await running(deps, container_id)
    cfile = await asyncio.to_thread(_copy_file, deps, container_id, file_id, "file_id")
    await _place(deps, container_id, {cfile["path"].removeprefix(DATA_DIR): _opener(deps, cfile["id"])})
    return cfile


async def upload_file(deps: Deps, container_id: str, source: BinaryIO, filename: str | None) -> dict[str, Any]:
    """Store an uploaded stream as a container file (multipart `file`). Raises Invalid (bad name, empty, too large,
    expired container) / NotFound."""
    name = check_filename(filename)
    await running(deps, container_id)
    cfile = await asyncio.to_thread(_save_upload, deps, container_id, source, name, check_size=True)
    await _place(deps, container_id, {cfile["path"].removeprefix(DATA_DIR): _opener(deps, cfile["id"])})
    return cfile


def _opener(deps: Deps, blob_key: str) -> Callable[[], BinaryIO]:
    return functools.partial(deps.blobs.open, blob_key)


async def list_files(deps: Deps, container_id: str, params: ListParams) -> Page:
    await current(deps, container_id)
    return repo.page_files(deps.store, container_id, params)


async def get_file(deps: Deps, container_id: str, file_id: str) -> tuple[dict[str, Any], str]:
    """The ContainerFile and the key of its bytes. Raises Invalid / NotFound."""
    await current(deps, container_id)
    check_id("container_file", file_id, "file_id")

    def fetch() -> tuple[dict, str] | None:
        with deps.store.read() as conn:
            return repo.get_file(conn, container_id, file_id)

    found = await asyncio.to_thread(fetch)
    if found is None:
        raise file_not_found(file_id)
    return found


async def delete_file(deps: Deps, container_id: str, file_id: str) -> None:
    """Delete a container file: its row, its bytes and the file in the live session. Raises Invalid / NotFound."""
    obj, _ = await get_file(deps, container_id, file_id)

    def remove() -> str | None:
        with deps.store.write() as conn:
            key = repo.delete_file(conn, container_id, file_id)
            container = repo.get(conn, container_id, lock=True)
            if key is not None and container is not None and container["status"] == repo.RUNNING:
                container["last_active_at"] = deps.clock.now()
                repo.update(conn, container, _expires_at(container))
            return key

    key = await asyncio.to_thread(remove)
    if key is None:
        raise file_not_found(file_id)
    await asyncio.to_thread(deps.blobs.delete, key)
    if deps.sandbox.has_session(container_id):
        from ..sandbox import SandboxUnavailable

        code = f"(lambda os, p: os.path.lexists(p) and os.unlink(p))(__import__('os'), {obj['path']!r})"
        with contextlib.suppress(SandboxUnavailable):  # then no session is left to hold the file
            await deps.sandbox.execute(container_id, code)

"""A full data volume: writes get 507 insufficient_storage, deletes still work, writes work again once freed.

The server's data dir is a small tmpfs (needs root and mount; skipped with the reason otherwise, run as root in CI).
With SQLite the database lives there too, so every write fails; with PostgreSQL (cluster elsewhere) only the blob
store fills, so only writes of file bytes fail.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from support.blob_files import blob_names
from support.sdk import http_module, raw_http_client, vector_stores
from support.server import ServerFactory, ServerHandle

from .helpers import expect_error

TMPFS_MB = 24
RESERVE_MB = 1
STORAGE_FULL = (
    "The server's storage is full, so this request could not be saved. Deleting files, vector stores, threads, "
    "assistants and messages still works and frees space; or ask the server's operator to add disk space."
)
TEXT = b"Zebras have black and white stripes. The stripes confuse biting flies and help keep zebras cool.\n"


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Filler:
    """Fills the filesystem of `root` with a file of its own, leaving about `leave` bytes."""

    def __init__(self, root: Path) -> None:
        self.path = root / "filler.bin"

    def fill(self, leave: int = 0) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for block in (1 << 20, 1 << 16, 1 << 12):
                while free_bytes(self.path.parent) - block >= leave:
                    try:
                        os.write(fd, b"\0" * block)
                    except OSError:
                        break
        finally:
            os.close(fd)
        assert free_bytes(self.path.parent) < leave + (1 << 12) + 1

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


def _mount_tmpfs(target: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the test mounts a small tmpfs as the server's data dir to fill it")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0755", "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def server(server_factory: ServerFactory, backend: str) -> Iterator[ServerHandle]:
    """A running server whose data dir (blobs; with SQLite also the database) is a 24 MB tmpfs."""
    handle = server_factory.prepare(
        {"THREADLINE_STORAGE_RESERVE_MB": str(RESERVE_MB), "THREADLINE_SANDBOX_WARM_POOL": "0"}, backend
    )
    _mount_tmpfs(handle.data_dir)
    try:
        handle.start()
        yield handle
    finally:
        handle.stop()
        subprocess.run(["umount", "-l", str(handle.data_dir)], check=False)


def expect_full(call) -> None:  # noqa: ANN001
    err = expect_error(openai.InternalServerError, call, STORAGE_FULL)
    assert (err["type"], err["code"], err["param"]) == ("insufficient_storage", "insufficient_storage", None)


def wait_for(predicate, timeout: float = 90.0, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_writes_fail_clearly_and_deletes_work_on_a_full_disk(client: openai.OpenAI, server: ServerHandle) -> None:
    sqlite = server.backend == "sqlite"
    stores = vector_stores(client)
    assistant = client.beta.assistants.create(model="gpt-4o", name="kept until deleted")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "one"}])
    second = client.beta.threads.messages.create(thread.id, role="user", content="two")
    f1 = client.files.create(file=("zebras.txt", TEXT * 200), purpose="assistants")
    f2 = client.files.create(file=("more.bin", os.urandom(300_000)), purpose="assistants")
    store = stores.create(name="kb", file_ids=[f1.id])
    wait_for(lambda: stores.files.retrieve(f1.id, vector_store_id=store.id).status == "completed", what="ingestion")
    assert blob_names(server) == {f1.id, f2.id}

    filler = Filler(server.data_dir)
    filler.fill()
    try:
        # Every write of file bytes fails with the documented error, and leaves no bytes behind.
        expect_full(lambda: client.files.create(file=("new.txt", TEXT), purpose="assistants"))
        expect_full(lambda: client.files.create(file=("big.bin", os.urandom(2_000_000)), purpose="assistants"))
        with raw_http_client(server.base_url) as http:
            response = http.post("/files", files={"file": ("x.txt", TEXT)}, data={"purpose": "assistants"})
        assert response.status_code == 507 and response.headers["x-should-retry"] == "false"
        if sqlite:
            expect_full(lambda: client.uploads.create(filename="u.bin", bytes=3, mime_type="text/plain",
                                                      purpose="assistants"))  # fmt: skip
            # With SQLite the database is on the full disk: every other write fails the same way.
            expect_full(lambda: client.beta.assistants.create(model="gpt-4o"))
            expect_full(lambda: client.beta.threads.create())
            expect_full(lambda: client.beta.threads.messages.create(thread.id, role="user", content="three"))
            expect_full(lambda: client.beta.assistants.update(assistant.id, name="renamed"))
            expect_full(lambda: stores.create(name="another"))
            expect_full(lambda: stores.files.create(vector_store_id=store.id, file_id=f2.id))
            expect_full(lambda: client.beta.threads.runs.create(thread.id, assistant_id=assistant.id))
            expect_full(lambda: client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, stream=True))
            expect_full(lambda: client.beta.threads.create_and_run(assistant_id=assistant.id))
        else:
            upload = client.uploads.create(filename="u.bin", bytes=3, mime_type="text/plain", purpose="assistants")
            expect_full(lambda: client.uploads.parts.create(upload.id, data=b"abc"))
            assert client.uploads.cancel(upload.id).status == "cancelled"
        assert blob_names(server) == {f1.id, f2.id}

        # Reads keep working, including search (which would also note the store's last use).
        assert client.files.content(f1.id).content == TEXT * 200
        found = client.post(f"/vector_stores/{store.id}/search", body={"query": "zebra stripes"},
                            cast_to=http_module().Response)  # fmt: skip
        assert found.status_code == 200 and found.json()["data"][0]["file_id"] == f1.id

        # Deleting works on the full disk: first objects that free no file bytes, then the files themselves.
        assert client.beta.threads.messages.delete(second.id, thread_id=thread.id).deleted
        assert stores.files.delete(f1.id, vector_store_id=store.id).deleted
        assert stores.delete(store.id).deleted
        assert client.beta.assistants.delete(assistant.id).deleted
        assert client.beta.threads.delete(thread.id).deleted
        assert client.files.delete(f1.id).deleted
        assert client.files.delete(f2.id).deleted
        expect_error(openai.NotFoundError, lambda: client.beta.assistants.retrieve(assistant.id))
        expect_error(openai.NotFoundError, lambda: client.beta.threads.retrieve(thread.id))
        expect_error(openai.NotFoundError, lambda: stores.retrieve(store.id))
        expect_error(openai.NotFoundError, lambda: client.files.retrieve(f1.id))
        assert blob_names(server) == set()
    finally:
        filler.free()

    # Room again: writes work.
    f3 = client.files.create(file=("zebras.txt", TEXT * 50), purpose="assistants")
    assert client.files.content(f3.id).content == TEXT * 50
    assert client.beta.assistants.create(model="gpt-4o").id.startswith("asst_")
    again = stores.create(name="again", file_ids=[f3.id])
    wait_for(lambda: stores.files.retrieve(f3.id, vector_store_id=again.id).status == "completed", what="ingestion")
    assert blob_names(server) == {f3.id}


def test_running_out_of_space_mid_write_leaves_no_partial_blob(client: openai.OpenAI, server: ServerHandle) -> None:
    data_dir = server.data_dir
    payload = os.urandom(400_000)
    up = client.uploads.create(
        filename="u.bin", bytes=2 * len(payload), mime_type="application/octet-stream", purpose="assistants"
    )
    filler = Filler(data_dir)
    filler.fill(leave=1_200_000)
    try:
        before = free_bytes(data_dir)
        # Bigger than the room left: the write starts, hits ENOSPC, and its partial file is removed.
        expect_full(lambda: client.files.create(file=("big.bin", os.urandom(3_000_000)), purpose="assistants"))
        expect_full(lambda: client.uploads.parts.create(up.id, data=os.urandom(3_000_000)))
        assert blob_names(server) == set()
        assert free_bytes(data_dir) >= before - 64 * 1024  # what the failed writes took is free again
        # Two parts fit, their concatenation does not: complete fails cleanly and the upload stays usable.
        parts = [client.uploads.parts.create(up.id, data=payload).id for _ in range(2)]
        assert blob_names(server) == set(parts)
        expect_full(lambda: client.uploads.complete(up.id, part_ids=parts))
        assert blob_names(server) == set(parts)  # the upload stays pending: completing works once there is room
    finally:
        filler.free()
    done = client.uploads.complete(up.id, part_ids=parts)
    assert done.status == "completed" and client.files.content(done.file.id).content == payload * 2
    assert blob_names(server) == {done.file.id}


def test_ingestion_waits_for_room_instead_of_failing(client: openai.OpenAI, server: ServerHandle) -> None:
    stores = vector_stores(client)
    text = b"".join(b"Paragraph %d about zebras, stripes, flies and heat.\n\n" % i for i in range(800))
    f = client.files.create(file=("long.txt", text), purpose="assistants")
    store = stores.create(name="kb")
    filler = Filler(server.data_dir)
    filler.fill(leave=64 * 1024)  # room for the attach, not for the chunks (with SQLite)
    try:
        stores.files.create(vector_store_id=store.id, file_id=f.id)
        if server.backend == "sqlite":
            paused = "ingesting 1 file(s) paused: storage full"
            wait_for(lambda: paused in server.log_text(), timeout=180, what="ingestion to hit the full disk")
            assert stores.files.retrieve(f.id, vector_store_id=store.id).status == "in_progress"
    finally:
        filler.free()
    wait_for(
        lambda: stores.files.retrieve(f.id, vector_store_id=store.id).status != "in_progress",
        timeout=240,
        what="ingestion after space was freed",
    )
    vsf = stores.files.retrieve(f.id, vector_store_id=store.id)
    assert vsf.status == "completed" and vsf.last_error is None

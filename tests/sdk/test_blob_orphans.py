"""Nothing left behind: no file bytes without a database row (racing upload completions, failed writes, expired
uploads, the start-up sweep) and no index chunks of a file no longer in its vector store."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from support.blob_files import blob_names
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle

OLD = time.time() - 2 * 3600  # older than the sweep's grace period (1 h)


@pytest.fixture
def server(server_factory: ServerFactory, backend: str) -> Iterator[ServerHandle]:
    handle = server_factory.start({"THREADLINE_SANDBOX_WARM_POOL": "0"}, backend)
    yield handle
    handle.stop()


def all_file_ids(client: openai.OpenAI) -> set[str]:
    return {f.id for f in client.files.list(limit=10000)}


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment from threads; each result is the return value or the SDK error."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except openai.APIStatusError as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racing_complete_and_cancel_leave_no_orphan_blob(client: openai.OpenAI, server: ServerHandle) -> None:
    payload = os.urandom(2_000_000)
    for attempt in range(10):
        up = client.uploads.create(
            filename="race.bin", bytes=len(payload), mime_type="application/octet-stream", purpose="assistants"
        )
        part = client.uploads.parts.create(up.id, data=payload)

        def complete(up=up, part=part) -> Any:  # noqa: ANN001
            return client.uploads.complete(up.id, part_ids=[part.id])

        def cancel(up=up) -> Any:  # noqa: ANN001
            return client.uploads.cancel(up.id)

        results = race(complete, cancel) if attempt % 2 == 0 else race(complete, complete)
        won = [r for r in results if not isinstance(r, Exception)]
        lost = [r for r in results if isinstance(r, Exception)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], openai.BadRequestError), lost[0]
        assert won[0].status in ("completed", "cancelled")
    files = all_file_ids(client)
    assert blob_names(server) == files, "blobs on disk that no File references (or Files without bytes)"
    for file_id in files:
        assert client.files.content(file_id).content == payload


def test_start_up_sweep_deletes_old_orphans_only(client: openai.OpenAI, server: ServerHandle) -> None:
    kept = client.files.create(file=("kept.txt", b"keep me"), purpose="assistants")
    up = client.uploads.create(filename="later.txt", bytes=6, mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(up.id, data=b"abcdef")
    root = server.data_dir / "files"
    server.stop()

    def plant(name: str, age: float | None) -> None:
        path = root / name.removesuffix(".tmp")[-2:] / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1000)
        if age is not None:
            os.utime(path, (age, age))

    plant("file-orphanedbyacrash000000ab", OLD)  # a write that died between the bytes and the row
    plant("file-interruptedwrite00000cd.tmp", OLD)  # a write that died half-way
    plant("file-writtenjustnow000000000ef", None)  # may be a write in flight: too young to judge
    for blob in root.glob("*/*"):
        if blob.name in (kept.id, part.id):
            os.utime(blob, (OLD, OLD))  # old but referenced: must stay
    server.start()

    deadline = time.monotonic() + 60
    while {"file-orphanedbyacrash000000ab", "file-interruptedwrite00000cd.tmp"} & blob_names(server):
        assert time.monotonic() < deadline, blob_names(server)
        time.sleep(0.2)
    assert blob_names(server) == {kept.id, part.id, "file-writtenjustnow000000000ef"}
    assert client.files.content(kept.id).content == b"keep me"
    done = client.uploads.complete(up.id, part_ids=[part.id])
    assert client.files.content(done.file.id).content == b"abcdef"


def test_expired_upload_parts_are_deleted(server_factory: ServerFactory, backend: str) -> None:
    server = server_factory.start(
        {
            "THREADLINE_UPLOAD_EXPIRES_AFTER": "2",
            "THREADLINE_MAINTENANCE_S": "0.5",
            "THREADLINE_SANDBOX_WARM_POOL": "0",
        },
        backend,
    )
    try:
        client = make_client(server.base_url)
        up = client.uploads.create(filename="abandoned.bin", bytes=6, mime_type="text/plain", purpose="assistants")
        part = client.uploads.parts.create(up.id, data=b"abcdef")
        assert blob_names(server) == {part.id}
        deadline = time.monotonic() + 60
        while blob_names(server):
            assert time.monotonic() < deadline, "the expired upload's part is still on disk"
            time.sleep(0.2)
        with pytest.raises(openai.BadRequestError, match="expired"):
            client.uploads.complete(up.id, part_ids=[part.id])
    finally:
        server.stop()


def test_start_up_prunes_chunks_a_failed_delete_left(client: openai.OpenAI, server: ServerHandle) -> None:
    from support.sdk import http_module, vector_stores
    from threadline.store.db import create_engine

    stores = vector_stores(client)
    text = b"Okapis are forest giraffes with striped legs."
    f = client.files.create(file=("okapi.txt", text), purpose="assistants")
    store = stores.create(name="kb", file_ids=[f.id])
    deadline = time.monotonic() + 90
    while stores.files.retrieve(f.id, vector_store_id=store.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    def hits() -> int:
        response = client.post(
            f"/vector_stores/{store.id}/search", body={"query": "okapi"}, cast_to=http_module().Response
        )
        return len(response.json()["data"])

    assert hits() == 1
    server.kill()  # as if the server died between committing the detach and cleaning the index
    engine = create_engine(server.database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM vector_store_files WHERE file_id = '{f.id}'")
    engine.dispose()
    server.start()
    deadline = time.monotonic() + 60
    while hits():
        assert time.monotonic() < deadline, "chunks of a detached file are still searchable"
        time.sleep(0.2)
    assert client.files.content(f.id).content == text

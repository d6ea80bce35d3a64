"""A real server whose file bytes live in an S3 bucket (THREADLINE_BLOB_URL=s3://bucket/prefix on a real
S3-compatible HTTP server), driven by the official SDK: files, uploads, vector store ingestion, code_interpreter input
and output files, deletion. Nothing lands in the local data directory."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.postgres import free_port
from support.schemas import ResponseValidator
from support.sdk import make_client, vector_stores
from support.server import ServerFactory, ServerHandle

from .conftest import S3Server

PREFIX = "tenant-a/files"


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    return s3_server.bucket()


@pytest.fixture(scope="module")
def server(
    server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, s3_server: S3Server, bucket: str
) -> Iterator[ServerHandle]:
    env = {**s3_server.env, "THREADLINE_BLOB_URL": f"s3://{bucket}/{PREFIX}", "THREADLINE_SANDBOX_TIMEOUT_S": "120"}
    yield from llm_server(server_factory, backend, fake_llm, **env)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


def object_key(file_id: str) -> str:
    return f"{PREFIX}/{file_id}"


def local_blobs(server: ServerHandle) -> list[Path]:
    root = server.data_dir / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_download_delete(client: openai.OpenAI, server: ServerHandle, s3_server: S3Server, bucket: str) -> None:
    data = os.urandom(200_000) + b"end"
    f = client.files.create(file=("data.bin", data), purpose="assistants")
    assert f.bytes == len(data)
    assert object_key(f.id) in s3_server.keys(bucket, PREFIX)
    assert local_blobs(server) == []
    response = client.files.with_raw_response.content(f.id)
    assert response.http_response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="data.bin"'
    assert client.files.delete(f.id).deleted
    assert object_key(f.id) not in s3_server.keys(bucket, PREFIX)
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)


def test_file_larger_than_one_s3_part(client: openai.OpenAI, s3_server: S3Server, bucket: str) -> None:
    """17 MiB: written as a multipart upload of 8 MiB parts, read back streamed, byte for byte."""
    data = os.urandom(17 * 2**20 + 7)
    f = client.files.create(file=("big.bin", data), purpose="assistants")
    head = s3_server.client().head_object(Bucket=bucket, Key=object_key(f.id))
    assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-3")  # three parts
    assert hashlib.sha256(client.files.content(f.id).content).digest() == hashlib.sha256(data).digest()


def test_non_ascii_name_header_matches_the_local_store(client: openai.OpenAI) -> None:
    f = client.files.create(file=("résumé.txt", b"bonjour"), purpose="assistants")
    response = client.files.with_raw_response.content(f.id)
    assert response.http_response.content == b"bonjour"
    assert response.headers["content-disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"


def test_object_missing_from_the_bucket_is_a_404(
    client: openai.OpenAI, s3_server: S3Server, bucket: str, http: httpx.Client
) -> None:
    f = client.files.create(file=("gone.txt", b"soon gone"), purpose="assistants")
    s3_server.client().delete_object(Bucket=bucket, Key=object_key(f.id))
    response = http.get(f"/files/{f.id}/content")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"No content found for file '{f.id}'."


def test_uploads_parts_and_complete(client: openai.OpenAI, s3_server: S3Server, bucket: str) -> None:
    parts_data = [os.urandom(150_000), os.urandom(150_000), b"last part"]
    total = sum(len(p) for p in parts_data)
    upload = client.uploads.create(
        bytes=total, filename="big.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    parts = [client.uploads.parts.create(upload_id=upload.id, data=p) for p in parts_data]
    assert len(s3_server.keys(bucket, PREFIX)) >= 3  # the parts are objects too
    done = client.uploads.complete(upload_id=upload.id, part_ids=[p.id for p in parts])
    assert done.status == "completed" and done.file.bytes == total
    assert client.files.content(done.file.id).content == b"".join(parts_data)
    keys = s3_server.keys(bucket, PREFIX)
    assert object_key(done.file.id) in keys
    assert not [k for k in keys if any(p.id in k for p in parts)]  # parts are deleted once assembled


def test_attach_to_vector_store_and_search(
    client: openai.OpenAI, fake_llm: FakeOpenAI, s3_server: S3Server, bucket: str
) -> None:
    text = b"The lighthouse keeper on Skerryvore logs the tides twice a day in a green ledger."
    f = client.files.create(file=("ledger.txt", text), purpose="assistants")
    stores = vector_stores(client)
    store = stores.create(name="s3")
    vsf = stores.files.create_and_poll(vector_store_id=store.id, file_id=f.id, poll_interval_ms=50)
    assert vsf.status == "completed", vsf.last_error
    response = client.post(
        f"/vector_stores/{store.id}/search", body={"query": "who logs the tides?"}, cast_to=httpx.Response
    )
    hits = response.json()["data"]
    assert hits and hits[0]["file_id"] == f.id
    assert "green ledger" in "".join(c["text"] for c in hits[0]["content"])


def test_code_interpreter_input_and_output_files(
    client: openai.OpenAI, fake_llm: FakeOpenAI, server: ServerHandle, s3_server: S3Server, bucket: str
) -> None:
    csv = b"city,visits\noslo,3\nlima,4\n"
    f = client.files.create(file=("visits.csv", csv), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "code_interpreter"}], tool_resources={"code_interpreter": {"file_ids": [f.id]}}
    )
    code = (
        "rows = open('/mnt/data/visits.csv').read().splitlines()[1:]\n"
        "total = sum(int(r.split(',')[1]) for r in rows)\n"
        "print(total)\n"
        "_ = open('/mnt/data/total.txt', 'w').write(f'total={total}\\n' * 50000)\n"
    )
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": code}))]),
        Reply(text="See [the total](sandbox:/mnt/data/total.txt).", chunks=2),
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Add up the visits."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    if run.status == "failed" and "code_interpreter" in str(run.last_error):
        pytest.skip(f"no sandbox here: {run.last_error}")
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data[0]
    logs = step.step_details.tool_calls[0].code_interpreter.outputs[0]
    assert logs.type == "logs" and logs.logs.strip() == "7"
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    annotation = message.content[0].text.annotations[0]
    out_id = annotation.file_path.file_id
    assert client.files.content(out_id).content == b"total=7\n" * 50000
    assert object_key(out_id) in s3_server.keys(bucket, PREFIX)
    assert local_blobs(server) == []


def test_bucket_unreachable_is_a_503_and_nothing_is_saved(
    server_factory: ServerFactory, backend: str, validator: ResponseValidator
) -> None:
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    s3 = S3Server(f"http://127.0.0.1:{port}")
    handle = server_factory.start(env={**s3.env, "THREADLINE_BLOB_URL": f"s3://{s3.bucket()}/x"}, backend=backend)
    try:
        client = make_client(handle.base_url, validator=validator)
        kept = client.files.create(file=("kept.txt", b"kept"), purpose="assistants")
        moto.stop()
        with pytest.raises(openai.InternalServerError) as caught:
            client.files.create(file=("lost.txt", b"never stored"), purpose="assistants")
        assert caught.value.status_code == 503
        assert caught.value.body["message"] == "The server's file storage is unavailable right now; please try again."
        with pytest.raises(openai.InternalServerError):
            client.files.content(kept.id)
        assert [f.filename for f in client.files.list()] == ["kept.txt"]
    finally:
        handle.stop()


def test_ingestion_waits_for_an_unreachable_bucket(
    server_factory: ServerFactory, backend: str, validator: ResponseValidator
) -> None:
    """The file is not at fault: it stays in_progress while the bucket is down and is indexed once it is back."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    s3 = S3Server(f"http://127.0.0.1:{port}")
    handle = server_factory.start(env={**s3.env, "THREADLINE_BLOB_URL": f"s3://{s3.bucket()}/x"}, backend=backend)
    try:
        client = make_client(handle.base_url, validator=validator)
        stores = vector_stores(client)
        text = b"Spring tides follow the new and the full moon."
        f = client.files.create(file=("tides.txt", text), purpose="assistants")
        store = stores.create(name="waits")
        moto.stop()
        stores.files.create(vector_store_id=store.id, file_id=f.id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _server_log(handle).count("storage full or unavailable"):
            time.sleep(0.2)
        assert "storage full or unavailable" in _server_log(handle)
        assert stores.files.retrieve(vector_store_id=store.id, file_id=f.id).status == "in_progress"
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # moto keeps its objects
        moto.start()
        vsf = stores.files.poll(vector_store_id=store.id, file_id=f.id, poll_interval_ms=100)
        assert vsf.status == "completed", vsf.last_error
    finally:
        handle.stop()
        moto.stop()


def _server_log(handle: ServerHandle) -> str:
    return handle.log_path.read_text(errors="replace")

"""The Containers API through the official SDK: containers and their files (JSON `file_id` and multipart uploads),
lists with their filters and cursors, downloads, deletes, errors, a restart, and expiry after idle minutes."""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

import openai

from fakes import Reply, ToolCallSpec
from sdk.helpers import expect_error
from support.gates import require_responses
from support.sdk import make_client
from support.server import ServerHandle

CSV = b"month,amount\njan,10\nfeb,20\n"


def test_create_with_files_retrieve_and_download(client):
    f = client.files.create(file=("sales.csv", CSV), purpose="assistants")
    container = client.containers.create(name="analysis", file_ids=[f.id])
    assert container.id.startswith("cntr_") and container.object == "container"
    assert container.name == "analysis" and container.status == "running"
    assert container.expires_after.anchor == "last_active_at" and container.expires_after.minutes == 20
    assert container.memory_limit == "1g" and container.last_active_at >= container.created_at
    assert client.containers.retrieve(container.id).model_dump() == container.model_dump()

    files = client.containers.files.list(container_id=container.id).data
    assert len(files) == 1
    cfile = files[0]
    assert cfile.id.startswith("cfile_") and cfile.object == "container.file"
    assert (cfile.container_id, cfile.path, cfile.source, cfile.bytes) == (
        container.id,
        "/mnt/data/sales.csv",
        "user",
        len(CSV),
    )
    assert client.containers.files.retrieve(cfile.id, container_id=container.id).model_dump() == cfile.model_dump()
    assert client.containers.files.content.retrieve(cfile.id, container_id=container.id).read() == CSV
    # The container holds a copy: deleting the uploaded File leaves it.
    client.files.delete(f.id)
    assert client.containers.files.content.retrieve(cfile.id, container_id=container.id).read() == CSV


def test_container_files_from_file_id_and_upload(client):
    container = client.containers.create(
        name="uploads",
        expires_after={"anchor": "last_active_at", "minutes": 5},
        extra_body={"memory_limit": "4g"},  # a keyword of newer SDKs only
    )
    assert container.expires_after.minutes == 5
    assert container.memory_limit == "4g"
    assert client.containers.files.list(container_id=container.id).data == []
    f = client.files.create(file=("notes.txt", b"from a file"), purpose="assistants")
    copied = client.containers.files.create(container_id=container.id, file_id=f.id)
    uploaded = client.containers.files.create(container_id=container.id, file=("notes.txt", b"uploaded bytes"))
    big = bytes(range(256)) * 4096  # 1 MiB, streamed in chunks both ways
    binary = client.containers.files.create(container_id=container.id, file=("blob.bin", big))
    assert copied.path == "/mnt/data/notes.txt"
    # A second file of the same name gets its own path rather than replacing the first.
    assert uploaded.path == f"/mnt/data/notes-{uploaded.id}.txt" and uploaded.source == "user"
    content = client.containers.files.content.retrieve
    assert content(copied.id, container_id=container.id).read() == b"from a file"
    assert content(uploaded.id, container_id=container.id).read() == b"uploaded bytes"
    assert content(binary.id, container_id=container.id).read() == big

    listed = client.containers.files.list(container_id=container.id)
    assert [x.id for x in listed.data] == [binary.id, uploaded.id, copied.id]  # newest first
    asc = client.containers.files.list(container_id=container.id, order="asc", limit=1)
    assert [x.id for x in asc] == [copied.id, uploaded.id, binary.id]

    client.containers.files.delete(uploaded.id, container_id=container.id)
    assert [x.id for x in client.containers.files.list(container_id=container.id).data] == [binary.id, copied.id]
    expect_error(
        openai.NotFoundError,
        lambda: client.containers.files.retrieve(uploaded.id, container_id=container.id),
        f"Container file with id '{uploaded.id}' not found.",
    )


def test_list_name_filter_order_and_cursor(client):
    name = f"batch-{time.monotonic_ns()}"
    made = [client.containers.create(name=name) for _ in range(3)]
    other = client.containers.create(name=name + "-other")

    def by_name(**params: Any) -> Any:  # `name` is a keyword of newer SDKs only (openai 1.x: an extra query)
        return client.containers.list(extra_query={"name": name}, **params)

    page = by_name(limit=2)
    assert [c.id for c in page.data] == [made[2].id, made[1].id] and page.has_more
    assert [c.id for c in by_name(limit=2)] == [c.id for c in reversed(made)]
    assert [c.id for c in by_name(order="asc").data] == [c.id for c in made]
    if "name" in inspect.signature(client.containers.list).parameters:
        assert [c.id for c in client.containers.list(name=name).data] == [c.id for c in reversed(made)]
    everything = [c.id for c in client.containers.list(limit=100)]
    assert {c.id for c in [*made, other]} <= set(everything)
    assert client.containers.list(extra_query={"name": "no-such-name-" + name}).data == []


def test_delete_container(client):
    container = client.containers.create(name="short-lived")
    cfile = client.containers.files.create(container_id=container.id, file=("a.txt", b"a"))
    assert client.containers.delete(container.id) is None  # the SDK casts the body to None
    expect_error(
        openai.NotFoundError,
        lambda: client.containers.retrieve(container.id),
        f"Container with id '{container.id}' not found.",
    )
    expect_error(openai.NotFoundError, lambda: client.containers.files.list(container_id=container.id))
    expect_error(
        openai.NotFoundError,
        lambda: client.containers.files.content.retrieve(cfile.id, container_id=container.id),
    )
    expect_error(openai.NotFoundError, lambda: client.containers.delete(container.id))


def test_delete_bodies_and_content_headers(http):
    container = http.post("/containers", json={"name": "raw"}).json()
    cfile = http.post(f"/containers/{container['id']}/files", files={"file": ("r é.txt", b"raw")}).json()
    got = http.get(f"/containers/{container['id']}/files/{cfile['id']}/content")
    assert got.status_code == 200 and got.content == b"raw"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == "attachment; filename*=utf-8''r%20%C3%A9.txt"
    deleted = http.delete(f"/containers/{container['id']}/files/{cfile['id']}").json()
    assert deleted == {"id": cfile["id"], "object": "container.file.deleted", "deleted": True}
    deleted = http.delete(f"/containers/{container['id']}").json()
    assert deleted == {"id": container["id"], "object": "container.deleted", "deleted": True}


def test_errors(client):
    expect_error(
        openai.NotFoundError,
        lambda: client.containers.create(name="x", file_ids=["file-nope"]),
        "File with id 'file-nope' not found.",
    )
    assert "x" not in {c.name for c in client.containers.list(limit=100).data}  # nothing left behind
    expect_error(
        openai.BadRequestError,
        lambda: client.containers.retrieve("asst_123"),
        "Invalid 'container_id': 'asst_123'. Expected an ID that begins with 'cntr'.",
        param="container_id",
    )
    expect_error(
        openai.NotFoundError,
        lambda: client.containers.retrieve("cntr_missing"),
        "Container with id 'cntr_missing' not found.",
    )
    container = client.containers.create(name="errors")
    expect_error(
        openai.NotFoundError,
        lambda: client.containers.files.create(container_id=container.id, file_id="file-missing"),
        "File with id 'file-missing' not found.",
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.containers.files.create(container_id=container.id, file=("empty.txt", b"")),
        "The file is empty. Please upload a file with content.",
        param="file",
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.containers.create(name="x", expires_after={"anchor": "created_at", "minutes": 5}),
        param="expires_after.anchor",
    )


def test_containers_survive_a_restart(server_factory, backend, fake_llm):
    from support.llm import llm_env

    handle: ServerHandle = server_factory.start(env=llm_env(fake_llm), backend=backend)
    try:
        client = make_client(handle.base_url)
        container = client.containers.create(name="durable")
        cfile = client.containers.files.create(container_id=container.id, file=("keep.txt", b"kept"))
        handle.restart()
        assert client.containers.retrieve(container.id).status == "running"
        assert [f.id for f in client.containers.files.list(container_id=container.id).data] == [cfile.id]
        assert client.containers.files.content.retrieve(cfile.id, container_id=container.id).read() == b"kept"
    finally:
        handle.stop()


def test_expires_after_idle_minutes(client):
    container = client.containers.create(name="idle", expires_after={"anchor": "last_active_at", "minutes": 1})
    cfile = client.containers.files.create(container_id=container.id, file=("gone.txt", b"soon gone"))
    refreshed = client.containers.retrieve(container.id)
    assert refreshed.last_active_at >= container.last_active_at  # adding a file makes it active
    deadline = time.monotonic() + 300  # one idle minute, on a loaded machine
    while client.containers.retrieve(container.id).status != "expired":
        assert time.monotonic() < deadline, "the container did not expire"
        time.sleep(2)
    assert client.containers.files.list(container_id=container.id).data == []
    expect_error(
        openai.NotFoundError, lambda: client.containers.files.content.retrieve(cfile.id, container_id=container.id)
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.containers.files.create(container_id=container.id, file=("late.txt", b"late")),
        f"Container '{container.id}' is expired and can no longer be used.",
    )
    client.containers.delete(container.id)  # an expired container can still be deleted


def test_code_interpreter_runs_in_the_container(server, client, fake_llm):
    """Once POST /v1/responses executes code_interpreter: code in `container: cntr_…` sees the container's files and
    what it writes becomes a container file (`source: "assistant"`)."""
    require_responses(server.base_url)
    container = client.containers.create(name="responses")
    client.containers.files.create(container_id=container.id, file=("sales.csv", CSV))
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "print(int(df.amount.sum()))\n"
        "df.to_csv('/mnt/data/copy.csv', index=False)\n"
    )
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": code}))]),
        Reply(text="The total is 30. [copy](sandbox:/mnt/data/copy.csv)"),
    )
    r = client.responses.create(
        model="gpt-4o",
        input="Sum the sales.",
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=["code_interpreter_call.outputs"],
    )
    call = next(item for item in r.output if item.type == "code_interpreter_call")
    assert call.container_id == container.id and call.code == code
    assert any(o.type == "logs" and o.logs.strip() == "30" for o in call.outputs or [])
    made = [f for f in client.containers.files.list(container_id=container.id).data if f.source == "assistant"]
    assert [f.path for f in made] == ["/mnt/data/copy.csv"]
    copied = client.containers.files.content.retrieve(made[0].id, container_id=container.id).read()
    assert copied.decode().splitlines()[0] == "month,amount"

"""Everything written before a restart reads back identical after it (same data dir and database)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.schemas import ResponseValidator
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle


@pytest.fixture
def own_server(server_factory: ServerFactory, backend: str) -> Iterator[ServerHandle]:
    handle = server_factory.start(backend=backend)
    yield handle
    handle.stop()


def snapshot(client, ids: dict[str, list[str]]) -> dict[str, object]:  # noqa: ANN001
    out: dict[str, object] = {}
    for a in ids["assistants"]:
        out[a] = client.beta.assistants.retrieve(a).model_dump()
    out["assistant_list"] = [a.model_dump() for a in client.beta.assistants.list(order="asc")]
    for t in ids["threads"]:
        out[t] = client.beta.threads.retrieve(t).model_dump()
        out[t + "/messages"] = [m.model_dump() for m in client.beta.threads.messages.list(t, order="asc", limit=100)]
    for f in ids["files"]:
        out[f] = client.files.retrieve(f).model_dump()
        out[f + "/content"] = client.files.content(f).content
    out["file_list"] = [f.model_dump() for f in client.files.list(order="asc")]
    return out


def populate(client) -> dict[str, list[str]]:  # noqa: ANN001
    blob = os.urandom(300_000) + bytes(range(256))
    files = [
        client.files.create(file=("blob.bin", blob), purpose="assistants").id,
        client.files.create(file=("pic.png", b"\x89PNG\r\n\x1a\n" + os.urandom(999)), purpose="vision").id,
    ]
    up = client.uploads.upload_file_chunked(
        file=blob[:150_000], filename="chunked.bin", bytes=150_000, mime_type="application/octet-stream",
        purpose="assistants", part_size=40_000,
    )  # fmt: skip
    files.append(up.file.id)
    assistants = [
        client.beta.assistants.create(
            model="gpt-4o",
            name="restart",
            instructions="Persist me.",
            tools=[
                {"type": "code_interpreter"},
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}},
            ],
            tool_resources={"code_interpreter": {"file_ids": [files[0]]}},
            metadata={"k": "v"},
            temperature=0.5,
            response_format={"type": "json_object"},
        ).id,
        client.beta.assistants.create(model="m2").id,
    ]
    t1 = client.beta.threads.create(
        metadata={"t": "1"},
        messages=[
            {"role": "user", "content": "first"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_file", "image_file": {"file_id": files[1]}},
                ],
                "attachments": [{"file_id": files[0], "tools": [{"type": "code_interpreter"}]}],
            },
        ],
    ).id
    client.beta.threads.messages.create(t1, role="assistant", content="reply", metadata={"m": "1"})
    t2 = client.beta.threads.create().id
    for i in range(5):
        client.beta.threads.messages.create(t2, role="user", content=f"n{i}")
    return {"assistants": assistants, "threads": [t1, t2], "files": files}


def test_restart_preserves_everything(own_server: ServerHandle, validator: ResponseValidator) -> None:
    client = make_client(own_server.base_url, validator=validator)
    ids = populate(client)
    before = snapshot(client, ids)
    own_server.restart()
    after = snapshot(client, ids)
    assert after == before
    # And the server keeps working on the same data: new writes land after the old ones.
    t = ids["threads"][1]
    new = client.beta.threads.messages.create(t, role="user", content="after restart")
    assert [m.id for m in client.beta.threads.messages.list(t, limit=1).data] == [new.id]


def test_restart_after_kill(own_server: ServerHandle, validator: ResponseValidator) -> None:
    """SIGKILL (no graceful shutdown): committed writes survive."""
    client = make_client(own_server.base_url, validator=validator)
    ids = populate(client)
    before = snapshot(client, ids)
    own_server.kill()
    own_server.start()
    assert snapshot(client, ids) == before

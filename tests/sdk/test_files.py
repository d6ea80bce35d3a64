"""Files through the official SDK (contract §1.6, §2.10)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import openai

from .helpers import check_pagination, expect_error

ALL_BYTES = bytes(range(256)) * 4 + bytes(range(255, -1, -1))


def content_of(client: openai.OpenAI, file_id: str) -> bytes:
    return client.files.content(file_id).content


def test_upload_retrieve_content(client: openai.OpenAI) -> None:
    f = client.files.create(file=("all-bytes.bin", ALL_BYTES), purpose="assistants")
    assert f.id.startswith("file-") and f.object == "file"
    assert (f.filename, f.bytes, f.purpose, f.status) == ("all-bytes.bin", len(ALL_BYTES), "assistants", "processed")
    assert isinstance(f.created_at, int)
    assert client.files.retrieve(f.id).model_dump() == f.model_dump()
    assert content_of(client, f.id) == ALL_BYTES


def test_content_response_is_raw_bytes(client: openai.OpenAI, http: Any) -> None:
    f = client.files.create(file=("tiny.json", b'{"a": 1}'), purpose="assistants")
    r = http.get(f"/files/{f.id}/content")
    assert r.status_code == 200 and r.content == b'{"a": 1}'
    assert not r.headers["content-type"].startswith("application/json") or r.json() == {"a": 1}


def test_upload_from_path_and_unicode_name(client: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "résumé 2024.pdf"
    path.write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    f = client.files.create(file=path, purpose="user_data")
    assert f.filename == "résumé 2024.pdf" and f.purpose == "user_data"
    assert content_of(client, f.id) == path.read_bytes()


def test_five_megabytes(client: openai.OpenAI) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)
    f = client.files.create(file=("big.bin", data), purpose="assistants")
    assert f.bytes == len(data)
    got = content_of(client, f.id)
    assert len(got) == len(data) and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_purposes(client: openai.OpenAI) -> None:
    for purpose in ("assistants", "vision", "batch", "fine-tune", "user_data"):
        f = client.files.create(file=(f"{purpose}.jsonl", b'{"x": 1}\n'), purpose=purpose)  # type: ignore[arg-type]
        assert f.purpose == purpose


def test_expires_after(client: openai.OpenAI, http: Any) -> None:
    r = http.post(
        "/files",
        files={"file": ("exp.txt", b"x")},
        data={"purpose": "assistants", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expires_at"] == body["created_at"] + 3600 or abs(body["expires_at"] - body["created_at"] - 3600) <= 1


def test_list_filters_and_pagination(client: openai.OpenAI, http: Any) -> None:
    ids = [client.files.create(file=(f"p{i}.txt", b"x"), purpose="batch").id for i in range(25)]
    vision = client.files.create(file=("v.png", b"v"), purpose="vision").id
    listed = [f.id for f in client.files.list(purpose="batch")]
    assert vision not in listed and set(ids) <= set(listed)
    assert all(f.purpose == "vision" for f in client.files.list(purpose="vision"))
    check_pagination(
        lambda **kw: client.files.list(purpose="batch", **kw),
        http,
        "/files",
        ids,
        exact=False,
        before=False,
        query={"purpose": "batch"},
    )
    body = http.get("/files", params={"purpose": "batch", "limit": 2, "order": "asc", "after": ids[-3]}).json()
    assert [f["id"] for f in body["data"]] == ids[-2:]
    # Default order is newest first.
    assert next(iter(client.files.list(purpose="batch"))).id == ids[-1]


def test_delete(client: openai.OpenAI) -> None:
    f = client.files.create(file=("d.txt", b"bye"), purpose="assistants")
    d = client.files.delete(f.id)
    assert (d.id, d.object, d.deleted) == (f.id, "file", True)
    expect_error(openai.NotFoundError, lambda: client.files.retrieve(f.id), f"No file found with id '{f.id}'.")
    expect_error(openai.NotFoundError, lambda: client.files.content(f.id))
    expect_error(openai.NotFoundError, lambda: client.files.delete(f.id))
    assert f.id not in [x.id for x in client.files.list()]


def test_errors(client: openai.OpenAI) -> None:
    expect_error(
        openai.BadRequestError,
        lambda: client.files.retrieve("undefined"),
        "Invalid 'file_id': 'undefined'. Expected an ID that begins with 'file'.",
    )
    expect_error(openai.NotFoundError, lambda: client.files.retrieve("file-x"), "No file found with id 'file-x'.")
    expect_error(
        openai.BadRequestError,
        lambda: client.files.create(file=("x.txt", b"x"), purpose="nonsense"),  # type: ignore[arg-type]
        code="invalid_value",
        param="purpose",
    )
    expect_error(openai.BadRequestError, lambda: client.files.create(file=("empty.txt", b""), purpose="assistants"))
    expect_error(openai.BadRequestError, lambda: client.files.list(limit=0))

"""Uploads (multipart upload of large files) through the official SDK (contract §1.7, §2.11)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import openai

from .helpers import expect_error

PAYLOAD = os.urandom(350_000) + bytes(range(256))


def content_of(client: openai.OpenAI, file_id: str) -> bytes:
    return client.files.content(file_id).content


def test_chunked_helper_with_bytes(client: openai.OpenAI) -> None:
    upload = client.uploads.upload_file_chunked(
        file=PAYLOAD,
        filename="data.bin",
        bytes=len(PAYLOAD),
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=100_000,  # 4 parts
        md5=hashlib.md5(PAYLOAD).hexdigest(),
    )
    assert upload.object == "upload" and upload.status == "completed"
    assert upload.id.startswith("upload_")
    assert (upload.filename, upload.bytes, upload.purpose) == ("data.bin", len(PAYLOAD), "assistants")
    f = upload.file
    assert f is not None and f.id.startswith("file-") and f.object == "file"
    assert (f.bytes, f.filename, f.purpose) == (len(PAYLOAD), "data.bin", "assistants")
    assert client.files.retrieve(f.id).bytes == len(PAYLOAD)
    assert content_of(client, f.id) == PAYLOAD


def test_chunked_helper_with_path(client: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes(b"line of text\n" * 20_000)
    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="text/plain", purpose="assistants", part_size=64 * 1024
    )
    assert upload.status == "completed" and upload.filename == "report.txt"
    assert content_of(client, upload.file.id) == path.read_bytes()


def test_manual_flow_with_md5(client: openai.OpenAI) -> None:
    chunks = [PAYLOAD[:1000], PAYLOAD[1000:200_000], PAYLOAD[200_000:]]
    up = client.uploads.create(
        filename="manual.bin", purpose="assistants", bytes=len(PAYLOAD), mime_type="application/octet-stream"
    )
    assert up.status == "pending" and up.file is None
    assert up.expires_at > up.created_at
    parts = [client.uploads.parts.create(up.id, data=c) for c in chunks]
    for p in parts:
        assert p.id.startswith("part_") and p.object == "upload.part" and p.upload_id == up.id
    # Parts may be uploaded in any order; part_ids gives the order of the bytes.
    done = client.uploads.complete(up.id, part_ids=[p.id for p in parts], md5=hashlib.md5(PAYLOAD).hexdigest())
    assert done.status == "completed" and done.id == up.id
    assert content_of(client, done.file.id) == PAYLOAD


def test_part_order_comes_from_part_ids(client: openai.OpenAI) -> None:
    up = client.uploads.create(filename="order.txt", purpose="assistants", bytes=6, mime_type="text/plain")
    second = client.uploads.parts.create(up.id, data=b"def")
    first = client.uploads.parts.create(up.id, data=b"abc")
    done = client.uploads.complete(up.id, part_ids=[first.id, second.id])
    assert content_of(client, done.file.id) == b"abcdef"


def test_wrong_md5_and_byte_count(client: openai.OpenAI) -> None:
    up = client.uploads.create(filename="x.bin", purpose="assistants", bytes=10, mime_type="application/octet-stream")
    part = client.uploads.parts.create(up.id, data=b"0123456789")
    expect_error(
        openai.BadRequestError, lambda: client.uploads.complete(up.id, part_ids=[part.id], md5="0" * 32), param="md5"
    )
    short = client.uploads.create(
        filename="x.bin", purpose="assistants", bytes=11, mime_type="application/octet-stream"
    )
    p2 = client.uploads.parts.create(short.id, data=b"0123456789")
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(short.id, part_ids=[p2.id]), contains="bytes")
    # A failed completion leaves the upload pending: it can still be completed correctly.
    done = client.uploads.complete(up.id, part_ids=[part.id], md5=hashlib.md5(b"0123456789").hexdigest())
    assert done.status == "completed"


def test_cancel(client: openai.OpenAI) -> None:
    up = client.uploads.create(filename="c.bin", purpose="assistants", bytes=3, mime_type="application/octet-stream")
    part = client.uploads.parts.create(up.id, data=b"abc")
    cancelled = client.uploads.cancel(up.id)
    assert cancelled.status == "cancelled" and cancelled.id == up.id
    expect_error(openai.BadRequestError, lambda: client.uploads.parts.create(up.id, data=b"more"))
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(up.id, part_ids=[part.id]))
    expect_error(openai.BadRequestError, lambda: client.uploads.cancel(up.id))


def test_no_parts_after_complete(client: openai.OpenAI) -> None:
    up = client.uploads.create(filename="a.txt", purpose="assistants", bytes=2, mime_type="text/plain")
    part = client.uploads.parts.create(up.id, data=b"ok")
    client.uploads.complete(up.id, part_ids=[part.id])
    expect_error(openai.BadRequestError, lambda: client.uploads.parts.create(up.id, data=b"late"))
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(up.id, part_ids=[part.id]))
    expect_error(openai.BadRequestError, lambda: client.uploads.cancel(up.id))


def test_unknown_part_ids(client: openai.OpenAI) -> None:
    up = client.uploads.create(filename="u.txt", purpose="assistants", bytes=2, mime_type="text/plain")
    part = client.uploads.parts.create(up.id, data=b"ok")
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(up.id, part_ids=["part_nope"]))
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(up.id, part_ids=[part.id, part.id]))
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(up.id, part_ids=[]))
    other = client.uploads.create(filename="o.txt", purpose="assistants", bytes=2, mime_type="text/plain")
    expect_error(openai.BadRequestError, lambda: client.uploads.complete(other.id, part_ids=[part.id]))


def test_errors(client: openai.OpenAI) -> None:
    expect_error(openai.NotFoundError, lambda: client.uploads.cancel("upload_x"), "No upload found with id 'upload_x'.")
    expect_error(
        openai.BadRequestError,
        lambda: client.uploads.cancel("undefined"),
        "Invalid 'upload_id': 'undefined'. Expected an ID that begins with 'upload'.",
    )
    expect_error(openai.NotFoundError, lambda: client.uploads.parts.create("upload_x", data=b"x"))
    expect_error(
        openai.BadRequestError,
        lambda: client.uploads.create(filename="x", purpose="bogus", bytes=1, mime_type="text/plain"),  # type: ignore[arg-type]
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.uploads.create(filename="x", purpose="assistants", bytes=0, mime_type="text/plain"),
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.uploads.create(filename="../x", purpose="assistants", bytes=1, mime_type="text/plain"),
    )

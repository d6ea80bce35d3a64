"""Request bodies are capped before they are spent: the JSON body cap and the upload limits are settings, a body
over its cap gets a 413 in OpenAI's error shape, and a body without Content-Length stops being read at the cap.

The server here runs with small caps (JSON 256 KB, files 1 MB, upload parts 512 KB) so that a few MB prove it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.schemas import ResponseValidator
from support.server import ServerFactory, ServerHandle

from .helpers import check_error_response, parse_raw_response

KB = 1024
MB = 1024 * KB
JSON_CAP = 256 * KB
FILE_CAP = 1 * MB
PART_CAP = 512 * KB
BOUNDARY = "capboundary"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str) -> Iterator[ServerHandle]:
    env = {
        "THREADLINE_MAX_BODY_BYTES": str(JSON_CAP),
        "THREADLINE_MAX_FILE_BYTES": str(FILE_CAP),
        "THREADLINE_MAX_PART_BYTES": str(PART_CAP),
    }
    handle = server_factory.start(env=env, backend=backend, name=f"body-limits-{backend}")
    yield handle
    handle.stop()


def _head(method: str, path: str, content_type: str, length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"{method} /v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer test\r\n"
        f"OpenAI-Beta: assistants=v2\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


def _chunked(data: bytes, size: int = 64 * KB) -> bytes:
    return b"".join(
        b"%x\r\n" % len(data[i : i + size]) + data[i : i + size] + b"\r\n" for i in range(0, len(data), size)
    )


def _unfinished_request(server: ServerHandle, head: bytes, body: bytes) -> httpx.Response:
    """Send `head` and `body`, then neither finish the body nor close: the server must answer from what it has.

    A server that kept reading would wait for the rest, and the socket timeout would fail the test.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may answer and close mid-send
            sock.sendall(head + body)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    assert data, "the server answered nothing"
    method, path = head.split(b" ")[:2]
    return parse_raw_response(data, method.decode(), f"http://127.0.0.1:{server.port}{path.decode()}")


def _multipart(field: str, size: int, extra: dict[str, str] | None = None) -> tuple[bytes, bytes]:
    """(opening, closing) of a multipart body with one file field of `size` bytes between them."""
    opening = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (extra or {}).items()
    )
    opening += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return opening, f"\r\n--{BOUNDARY}--\r\n".encode()


def _check_413(response: httpx.Response, validator: ResponseValidator, message: str, param: str | None) -> None:
    validator.check(response.request.method, response.request.url.path, response.status_code, response.content)
    check_error_response(response, 413)
    err = response.json()["error"]
    assert err["message"] == message and err["param"] == param, err
    assert response.headers.get("connection", "").lower() == "close"


JSON_MESSAGE = (
    "Request body too large. The maximum size of a request body is 256 KB (262144 bytes); files go through "
    "/v1/files or /v1/uploads."
)


def test_json_body_over_cap_chunked_is_not_read_to_the_end(server: ServerHandle, validator: ResponseValidator) -> None:
    body = b'{"metadata": {"k": "' + b"x" * (2 * JSON_CAP)
    r = _unfinished_request(server, _head("POST", "/threads", "application/json"), _chunked(body))
    _check_413(r, validator, JSON_MESSAGE, None)


@pytest.mark.parametrize("path", ["/threads", "/assistants", "/threads/runs", "/vector_stores/vs_x/search"])
def test_json_body_over_cap_with_content_length(
    http: Any, path: str, server: ServerHandle, validator: ResponseValidator
) -> None:
    r = http.post(path, content=b" " * (JSON_CAP + 1), headers={"Content-Type": "application/json"})
    _check_413(r, validator, JSON_MESSAGE, None)
    # Declared but not sent: answered from the headers alone.
    r = _unfinished_request(server, _head("POST", path, "application/json", 5 * MB), b"{")
    _check_413(r, validator, JSON_MESSAGE, None)


def test_json_body_under_cap_is_accepted(http: Any) -> None:
    thread = http.post("/threads").json()["id"]
    content = "y" * (200 * KB)
    r = http.post(f"/threads/{thread}/messages", json={"role": "user", "content": content})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"]["value"] == content


def _no_leftovers(server: ServerHandle) -> None:
    files = server.data_dir / "files"
    leftovers = [p for p in files.rglob("*") if p.is_file() and p.name.endswith(".tmp")] if files.exists() else []
    assert leftovers == []


def test_upload_over_file_cap_chunked_stops_reading(server: ServerHandle, validator: ResponseValidator) -> None:
    opening, _ = _multipart("file", 0, {"purpose": "assistants"})
    body = _chunked(opening + b"\0" * (3 * MB))  # the cap is 1 MB of file plus 1 MB of multipart framing
    r = _unfinished_request(server, _head("POST", "/files", f"multipart/form-data; boundary={BOUNDARY}"), body)
    _check_413(r, validator, "File is too large. The maximum file size is 1 MB.", "file")
    _no_leftovers(server)


def test_upload_over_file_cap_declared(server: ServerHandle, validator: ResponseValidator) -> None:
    head = _head("POST", "/files", f"multipart/form-data; boundary={BOUNDARY}", 3 * MB)
    r = _unfinished_request(server, head, b"--" + BOUNDARY.encode())
    _check_413(r, validator, "File is too large. The maximum file size is 1 MB.", "file")


def test_file_limit_is_the_configured_one(http: Any, server: ServerHandle) -> None:
    ok = http.post("/files", files={"file": ("cap.bin", b"\1" * FILE_CAP)}, data={"purpose": "assistants"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["bytes"] == FILE_CAP
    over = http.post("/files", files={"file": ("cap.bin", b"\1" * (FILE_CAP + 1))}, data={"purpose": "assistants"})
    check_error_response(over, 400)  # within the body cap's framing allowance: read, then refused
    assert over.json()["error"]["message"] == "File is too large. The maximum file size is 1 MB."
    _no_leftovers(server)


def _upload(http: Any, size: int) -> str:
    body = {"filename": "u.bin", "purpose": "assistants", "bytes": size, "mime_type": "application/octet-stream"}
    r = http.post("/uploads", json=body)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_upload_part_over_cap_chunked_stops_reading(
    http: Any, server: ServerHandle, validator: ResponseValidator
) -> None:
    upload = _upload(http, 10 * MB)
    opening, _ = _multipart("data", 0)
    head = _head("POST", f"/uploads/{upload}/parts", f"multipart/form-data; boundary={BOUNDARY}")
    r = _unfinished_request(server, head, _chunked(opening + b"\0" * (2 * MB)))
    _check_413(r, validator, "Upload parts may be at most 512 KB.", "data")
    _no_leftovers(server)
    ok = http.post(f"/uploads/{upload}/parts", files={"data": ("upload", b"fine")})
    assert ok.status_code == 200, ok.text


def test_part_just_over_cap_is_refused_and_the_upload_stays_usable(http: Any) -> None:
    """A part of the limit + 1 byte, streamed without Content-Length, is rejected after reading (the limit is real)."""
    upload = _upload(http, PART_CAP + 10)
    opening, closing = _multipart("data", PART_CAP + 1)

    def body() -> Iterator[bytes]:
        yield opening
        yield b"\0" * (PART_CAP + 1)
        yield closing

    r = http.post(
        f"/uploads/{upload}/parts",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    check_error_response(r, 400)
    assert r.json()["error"]["message"] == "Upload parts may be at most 512 KB."
    ok = http.post(f"/uploads/{upload}/parts", files={"data": ("upload", b"\0" * PART_CAP)})
    assert ok.status_code == 200, ok.text


def test_the_settings_table_documents_the_limits() -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    for name in ("THREADLINE_MAX_BODY_BYTES", "THREADLINE_MAX_FILE_BYTES", "THREADLINE_MAX_PART_BYTES"):
        assert f"`{name}`" in table, name


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_body_over_cap_on_other_methods(server: ServerHandle, method: str) -> None:
    """The JSON cap holds for every method, not only POST: a declared oversized body is answered at once."""
    r = _unfinished_request(server, _head(method, "/threads/thread_x/messages", "application/json", 5 * MB), b"{")
    check_error_response(r, 413)
    assert r.json()["error"]["message"] == JSON_MESSAGE, r.text
    assert r.headers.get("connection", "").lower() == "close"

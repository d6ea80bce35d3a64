"""Framing of the sandbox service's Unix-socket protocol (service.py serves it, remote.py speaks it).

A frame is one kind byte, a 4-byte big-endian length and the payload: ``J`` a JSON object (control messages), ``D``
raw bytes (one chunk of a file, at most CHUNK_BYTES). Every read is bounded: a JSON frame longer than the reader's
limit or a data frame longer than CHUNK_BYTES ends the connection as a protocol error, before its payload is read.

Conversation (one request per connection; the client speaks first):

    client  J {"op": "hello", "token": T, "version": 1}        service checks SO_PEERCRED, then the token
    service J {"op": "ready"}  or  J {"op": "error", "kind": "auth", "message": ...} and close
    client  J request: execute | close_session | has_session | start | status | attach (sent right after the
            hello: the service reads it only once the hello passed)

``execute`` {"key", "code", "timeout_s", "inputs": {name: identity or null}}; then the service drives:
    service J {"op": "read", "name", "n"}      -> client D (empty: end of file) or J {"op": "read_error", "error"}
    service J {"op": "file", "name"}           -> client pulls it: J {"op": "pull", "n"} -> service D (empty: end)
                                                  or J {"op": "file_aborted", "cancelled" | "error"}; then (unless
                                                  aborted) client J {"op": "saved", "ref"} or J {"op": "unsaved",
                                                  "error" | "cancelled"}
    client  J {"op": "cancel"} at any time (closing the connection does the same)
    service J {"op": "result", ...} | J {"op": "cancelled"} | J {"op": "error", "kind": "unavailable", "message"}
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import time
from typing import Any

import orjson

VERSION = 1
HEADER = struct.Struct(">cI")
JSON, DATA = b"J", b"D"
CHUNK_BYTES = 1 << 20
MAX_HELLO_BYTES = 4096
MAX_JSON_BYTES = 16 << 20  # code, and a result's logs (bounded by the sandbox's max_log_bytes, JSON-escaped)


class WireError(Exception):
    """The peer broke the protocol (oversized, malformed or unexpected frame) or went away."""


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(obj: dict[str, Any]) -> bytes:
    return frame(JSON, orjson.dumps(obj))


def _check(kind: bytes, length: int, max_json: int) -> None:
    if kind == JSON:
        if length > max_json:
            raise WireError(f"control message of {length} bytes is over the {max_json} limit")
    elif kind == DATA:
        if length > CHUNK_BYTES:
            raise WireError(f"data chunk of {length} bytes is over the {CHUNK_BYTES} limit")
    else:
        raise WireError(f"unknown frame kind {kind!r}")


def _decode(kind: bytes, payload: bytes) -> dict[str, Any] | bytes:
    if kind == DATA:
        return payload
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise WireError("malformed control message") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("op"), str):
        raise WireError("malformed control message")
    return obj


async def read_frame(reader: asyncio.StreamReader, max_json: int = MAX_JSON_BYTES) -> dict[str, Any] | bytes | None:
    """The next frame: a dict (JSON) or bytes (data); None at a clean end of the stream. Raises WireError."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise WireError("connection closed mid-frame") from None
    kind, length = HEADER.unpack(header)
    _check(kind, length, max_json)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise WireError("connection closed mid-frame") from None
    return _decode(kind, payload)


class Channel:
    """Blocking frame I/O over a connected socket (the client side runs on a worker thread)."""

    def __init__(self, sock: socket.socket, max_json: int = MAX_JSON_BYTES) -> None:
        self.sock = sock
        self.max_json = max_json
        self._buf = bytearray()

    def send(self, data: bytes, timeout: float = 60.0) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise WireError(f"sandbox service connection lost: {exc}") from None

    def send_json(self, obj: dict[str, Any]) -> None:
        self.send(json_frame(obj))

    def send_data(self, data: bytes) -> None:
        self.send(frame(DATA, data))

    def _fill(self, n: int, deadline: float | None, poll: float | None) -> bool:
        """Read until the buffer holds ``n`` bytes; False if ``poll`` seconds pass first (nothing is lost)."""
        while len(self._buf) < n:
            wait = poll
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                wait = left if wait is None else min(wait, left)
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                if poll is not None:
                    return False
                continue
            try:
                chunk = self.sock.recv(min(1 << 20, n - len(self._buf)))
            except OSError as exc:
                raise WireError(f"sandbox service connection lost: {exc}") from None
            if not chunk:
                raise WireError("sandbox service connection closed")
            self._buf += chunk
        return True

    def recv(self, deadline: float | None = None, poll: float | None = None) -> dict[str, Any] | bytes | None:
        """The next frame; None if ``poll`` seconds pass with no complete frame (call again: partial input is
        kept). Raises TimeoutError at ``deadline``, WireError on a broken or closed connection."""
        if not self._fill(HEADER.size, deadline, poll):
            return None
        kind, length = HEADER.unpack(self._buf[: HEADER.size])
        _check(kind, length, self.max_json)
        if not self._fill(HEADER.size + length, deadline, poll):
            return None
        payload = bytes(self._buf[HEADER.size : HEADER.size + length])
        del self._buf[: HEADER.size + length]
        return _decode(kind, payload)

    def close(self) -> None:
        self.sock.close()

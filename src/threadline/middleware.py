"""ASGI middleware: request ids, API-key auth, the OpenAI-Beta header check and request body size limits."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any

import orjson

from .api.errors import APIError, BodyError, database_unavailable, database_unreachable
from .auth import Access, AdminVerdict, KeyChecker, Verdict, key_id, request_key_id
from .config import Settings
from .logs import request_id as request_id_var
from .services.errors import size_text
from .tenancy import DEFAULT_PROJECT_ID, current_project

log = logging.getLogger("threadline.auth")

BETA_PATHS = ("/v1/assistants", "/v1/threads")
ORGANIZATION_PATH = "/v1/organization/"
# What OpenAI answers when a project key calls an administration endpoint.
NOT_ADMIN = (
    "You have insufficient permissions for this operation. Missing scopes: api.management.read. "
    "The /v1/organization endpoints need an admin key (THREADLINE_ADMIN_KEYS or `threadline keys add-admin`)."
)
_ADMIN_AS_VERDICT = {
    AdminVerdict.OK: Verdict.OK,
    AdminVerdict.MISSING: Verdict.MISSING,
    AdminVerdict.NOT_ADMIN: Verdict.INVALID,
    AdminVerdict.INVALID: Verdict.INVALID,
}
# What OpenAI answers when a project key's request names another project.
MISMATCHED_PROJECT = "OpenAI-Project header should match project for API key"
V1_DEPRECATED = (
    "The v1 Assistants API has been deprecated. Please try again by setting the header "
    "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
    "https://platform.openai.com/docs/assistants/migration."
)


def _error(
    request_id: str, status: int, message: str, code: str | None, kind: str = "invalid_request_error"
) -> tuple[dict, dict]:
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class APIMiddleware:
    def __init__(self, app, keys: KeyChecker | None = None) -> None:  # noqa: ANN001
        self.app = app
        self.keys = keys
        self._touches: set[asyncio.Task[None]] = set()

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(16)
        request_id_var.set(request_id)  # every log line of this request (and the tasks it starts) carries it
        headers = dict(scope["headers"])
        path = scope["path"]
        failure = None
        if path.startswith("/v1/"):
            current_project.set(DEFAULT_PROJECT_ID)
        if self.keys is not None and path.startswith("/v1/"):
            try:
                failure = await self._authenticate(headers, path)
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
                log.warning("database unavailable: %s", exc)
                error = database_unavailable()
                failure = (error.status, error.message, None, "server_error")
        if failure is None and path.startswith(BETA_PATHS):
            beta = headers.get(b"openai-beta", b"").decode("latin-1")
            if "assistants=v1" in beta.replace(" ", ""):
                failure = (400, V1_DEPRECATED, "invalid_beta")
        if failure is not None:
            start, body = _error(request_id, *failure)
            await send(start)
            await send(body)
            return
        conversation_ids_as_threads(scope)

        async def send_with_id(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)

    async def _authenticate(self, headers: dict[bytes, bytes], path: str) -> tuple | None:
        """Check the request's key and set its key id and project; the failure to answer with, or None."""
        assert self.keys is not None
        failure = None
        auth = headers.get(b"authorization", b"").decode("latin-1")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if path.startswith(ORGANIZATION_PATH):
            # a table lookup (a network round trip on PostgreSQL): off the event loop; admin calls are rare
            admin = await asyncio.to_thread(self.keys.verify_admin, key or None)
            verdict = _ADMIN_AS_VERDICT[admin]
            if admin is AdminVerdict.NOT_ADMIN:
                failure = (401, NOT_ADMIN, None)
            access = None
        else:
            access = self.keys.resolve(key or None)  # looked up per request: key changes apply at once
            verdict = access.verdict
        request_key_id.set(key_id(key) if key else None)
        if failure is not None:
            pass
        elif verdict is Verdict.MISSING:
            failure = (
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
            )
        elif verdict is Verdict.INVALID:
            failure = (401, f"Incorrect API key provided: {shown_key(key)}.", "invalid_api_key")
        elif verdict is Verdict.ARCHIVED:
            assert access is not None
            failure = archived_project(access.project_id or "")
        elif access is not None:
            header = headers.get(b"openai-project", b"").decode("latin-1").strip()
            project, failure = request_project(self.keys, access, header)
            current_project.set(project)
        if failure is None and key and (access is None or access.stored) and self.keys.used(key):
            self._touch(key)
        return failure

    def _touch(self, key: str) -> None:
        """Write the key's `last_used_at` beside the request, off the event loop (a failure is only logged)."""
        assert self.keys is not None
        task = asyncio.create_task(asyncio.to_thread(self.keys.touch, key))
        self._touches.add(task)
        task.add_done_callback(self._touched)

    def _touched(self, task: asyncio.Task[None]) -> None:
        self._touches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("recording a key's last use failed", exc_info=task.exception())


def shown_key(key: str) -> str:
    """A key as error messages show it: its first 3 and last 4 characters."""
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)


def archived_project(project_id: str) -> tuple[int, str, str]:
    return (401, f"The project '{project_id}' is archived: its API keys no longer work.", "project_archived")


def request_project(keys: KeyChecker, access: Access, header: str) -> tuple[str, tuple[int, str, str] | None]:
    """The project a resource request acts in, or the error to answer: a project key (and THREADLINE_API_KEYS or a
    legacy key: the default project) acts in its own project, and an `OpenAI-Project` header naming another one is
    refused as OpenAI refuses it; an admin key (or anyone on an open server) acts in the project the header names,
    by default the default project. Looks the named project up (cached on PostgreSQL)."""
    if access.project_id is not None:
        if header and header != access.project_id:
            return access.project_id, (401, MISMATCHED_PROJECT, "mismatched_project")
        return access.project_id, None
    if not header or header == DEFAULT_PROJECT_ID:
        return DEFAULT_PROJECT_ID, None
    status = keys.project_status(header) if len(header) <= 64 else None
    if status is None:
        message = f"No project found with id '{header[:64]}' (the OpenAI-Project header)."
        return DEFAULT_PROJECT_ID, (404, message, "project_not_found")
    if status != "active":
        return DEFAULT_PROJECT_ID, archived_project(header)
    return header, None


_CONV_IN_THREAD_PATH = "/v1/threads/conv_"


def conversation_ids_as_threads(scope: dict[str, Any]) -> None:
    """A conversation is a thread (one row, ids thread_X and conv_X): an Assistants route given `conv_X` serves the
    thread `thread_X`. Rewritten once here so every thread route (threads, messages, runs, steps) accepts both."""
    path = scope["path"]
    if path.startswith(_CONV_IN_THREAD_PATH):
        scope["path"] = "/v1/threads/thread_" + path[len(_CONV_IN_THREAD_PATH) :]
        raw = scope.get("raw_path")
        if raw is not None and raw.startswith(_CONV_IN_THREAD_PATH.encode()):
            scope["raw_path"] = b"/v1/threads/thread_" + raw[len(_CONV_IN_THREAD_PATH) :]


# Multipart framing around an upload's bytes: boundaries, part headers and the few small form fields.
MULTIPART_OVERHEAD = 1 << 20
_PART_PATH = re.compile(r"^/v1/uploads/[^/]+/parts/?$")
_CONTAINER_FILES_PATH = re.compile(r"^/v1/containers/[^/]+/files/?$")


def body_limit(settings: Settings, method: str, path: str) -> tuple[int, APIError]:
    """The most bytes a request body may have on this route, and the 413 to answer when it has more.

    Uploads (POST /v1/files, POST /v1/containers/{id}/files, POST /v1/uploads/{id}/parts) get their file limit
    plus multipart framing; every other route gets `max_body_bytes`.
    """
    if method == "POST" and (path.rstrip("/") == "/v1/files" or _CONTAINER_FILES_PATH.match(path)):
        limit = settings.max_file_bytes
        message = f"File is too large. The maximum file size is {size_text(limit)}."
        return limit + MULTIPART_OVERHEAD, APIError(413, message, param="file", headers={"Connection": "close"})
    if method == "POST" and _PART_PATH.match(path):
        limit = settings.max_part_bytes
        message = f"Upload parts may be at most {size_text(limit)}."
        return limit + MULTIPART_OVERHEAD, APIError(413, message, param="data", headers={"Connection": "close"})
    limit = settings.max_body_bytes
    shown = size_text(limit) if size_text(limit) == f"{limit} bytes" else f"{size_text(limit)} ({limit} bytes)"
    message = (
        f"Request body too large. The maximum size of a request body is {shown}; files go through /v1/files or "
        "/v1/uploads."
    )
    return limit, APIError(413, message, headers={"Connection": "close"})


class BodyLimit:
    """Caps the size of every request body before it is spent: a declared Content-Length over the limit is
    answered at once, and a body without one (chunked) stops being read as soon as its bytes pass the limit.

    Starlette's own body limit cannot be used here: its limits are fixed per route at import time (ours come from
    the settings) and, for a route that does not read its body, it answers plain text instead of OpenAI's error.
    """

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._default = body_limit(settings, "GET", "/")  # every route but uploads: built once, not per request

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        limit, error = body_limit(self.settings, method, scope["path"]) if method == "POST" else self._default
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _send_error(send, error)
            return
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyError(error)
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyError as exc:  # raised where no exception handler turned it into a response
            if started:
                raise
            await _send_error(send, exc.error)


async def _send_error(send: Any, error: APIError) -> None:
    body = orjson.dumps(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

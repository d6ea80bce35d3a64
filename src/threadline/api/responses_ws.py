"""WebSocket mode of /v1/responses (Open Responses `x-openresponses-websocket`): `response.create` frames in, the
same `response.*` events as the SSE stream out, one JSON event per text frame, one response at a time.

A response created with `store: false` is not kept by the server, so the connection keeps its context (input and
output items) to continue it with `previous_response_id` on the same connection only; on another connection, or
once a continuation from it has failed (which evicts it), that id is `previous_response_not_found`. Failures are
sent as `{"type": "error", "status", "error": {type, code, message, param}}` and the connection stays open.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from ..auth import Verdict, key_id, request_key_id
from ..config import Settings
from ..middleware import archived_project, body_limit, request_project, shown_key
from ..services import response_create as create
from ..services import response_models as rm
from ..services.errors import DomainError
from ..tenancy import DEFAULT_PROJECT_ID, current_project
from .errors import APIError, _most_specific, domain_error, validation_error

router = APIRouter()

MAX_CACHED = 16  # store:false responses a connection can continue from (oldest dropped first)
REPLAYABLE = ("message", "function_call", "function_call_output", "reasoning")


def _as_input(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Server tool items are history the model has already used (never sent back to it): not kept.
    return [item for item in output if item.get("type") in REPLAYABLE]


def _error_frame(err: APIError) -> dict[str, Any]:
    # The WebSocket envelope needs a string code; an error without one is named by its type.
    code = err.code or err.type
    return {"type": "error", "status": err.status, "error": {**err.body()["error"], "code": code}}


def _key(websocket: WebSocket) -> str:
    auth = websocket.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _auth_error(websocket: WebSocket) -> APIError | None:
    """The error to answer the socket's key with, or None; sets the project the socket acts in (as the API
    middleware does for HTTP requests)."""
    key = _key(websocket)
    access = websocket.app.state.runtime.keys.resolve(key or None)
    request_key_id.set(key_id(key) if key else None)
    current_project.set(DEFAULT_PROJECT_ID)
    if access.verdict is Verdict.MISSING:
        return APIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="missing_api_key",
        )
    if access.verdict is Verdict.INVALID:
        return APIError(401, f"Incorrect API key provided: {shown_key(key)}.", code="invalid_api_key")
    failure = archived_project(access.project_id or "") if access.verdict is Verdict.ARCHIVED else None
    if failure is None:
        header = websocket.headers.get("openai-project", "").strip()
        project, failure = request_project(websocket.app.state.runtime.keys, access, header)
        current_project.set(project)
    if failure is not None:
        status, message, code = failure
        return APIError(status, message, code=code)
    return None


def _parse(text: str, settings: Settings) -> tuple[dict[str, Any], rm.ResponseCreate]:
    """A `response.create` frame as (raw body, validated request). Raises APIError."""
    limit, too_large = body_limit(settings, "POST", "/v1/responses")  # a frame is held to a body's limit
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise APIError(413, too_large.message, code="request_too_large")
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, "We could not parse the JSON body of your request.", code="invalid_json") from exc
    if not isinstance(raw, dict) or raw.get("type") != "response.create":
        raise APIError(400, "Invalid 'type': expected 'response.create'.", param="type", code="invalid_value") from None
    body = {k: v for k, v in raw.items() if k != "type"}
    if body.get("stream") is False or body.get("background"):
        raise APIError(
            400,
            "WebSocket mode streams every response: 'stream' false and 'background' are not supported.",
            param="background" if body.get("background") else "stream",
            code="invalid_value",
        )
    body["stream"] = True
    body.pop("stream_options", None)
    try:
        return body, rm.ResponseCreate.model_validate(body)
    except ValidationError as exc:
        raise _api_error(exc) from exc


def _api_error(exc: APIError | DomainError | ValidationError) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, DomainError):
        return domain_error(exc)
    errors = exc.errors()
    return validation_error(_most_specific(errors)) if errors else APIError(400, "Invalid request.")


class Connection:
    """One WebSocket's responses: the context of each store:false response it created (id -> items)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket
        self.rt = websocket.app.state.runtime
        self.cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.sizes: dict[str, int] = {}  # bytes of each cached context, as JSON

    def _evict(self, response_id: str) -> None:
        self.cache.pop(response_id, None)
        self.sizes.pop(response_id, None)

    def _rewrite(self, body: dict[str, Any]) -> tuple[dict[str, Any], str | None, list[dict[str, Any]]]:
        """A continuation of a cached store:false response becomes a request carrying that context inline."""
        previous = body.get("previous_response_id")
        if previous not in self.cache:
            return body, None, []
        given = body.get("input")
        new = [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        prior = self.cache[previous]
        return {**body, "previous_response_id": None, "input": prior + new}, previous, prior + new

    async def handle(self, text: str) -> None:
        """Answer one frame: a response's events, or one error frame."""
        previous = None
        try:
            raw, body = _parse(text, self.rt.settings)
            previous = raw.get("previous_response_id")
            rewritten, continued, context = self._rewrite(raw)
            if continued:
                body = rm.ResponseCreate.model_validate(rewritten)
            created = await create.create_response(self.rt, body)
        except (APIError, DomainError, ValidationError) as exc:
            if isinstance(previous, str):
                self._evict(previous)  # a failed continuation cannot be retried from this state
            await self.ws.send_text(orjson.dumps(_error_frame(_api_error(exc))).decode())
            return
        stream = created.stream
        assert stream is not None
        final: dict[str, Any] | None = None
        try:
            async for chunk in stream:
                for line in chunk.split(b"\n"):
                    if not line.startswith(b"data: {"):
                        continue  # event names, keep-alives and the SSE-only [DONE]
                    event = orjson.loads(line[6:])
                    response = event.get("response")
                    if continued and isinstance(response, dict):
                        response["previous_response_id"] = continued
                    if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
                        final = response
                    await self.ws.send_text(orjson.dumps(event).decode())
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # a client gone mid-stream cancels the response
        if final is None:
            return
        if final.get("status") == "failed" and continued:
            self._evict(continued)
        elif final.get("store") is False and final.get("status") in ("completed", "incomplete"):
            given = raw.get("input")
            new = (
                [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given or [])
            )
            prior = context if continued else new
            self._keep(final["id"], prior + _as_input(final.get("output") or []))

    def _keep(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Remember a store:false response's context, within MAX_CACHED entries and a total of 4 request bodies'
        worth of bytes (oldest dropped first; a context larger than that is not kept at all)."""
        budget = 4 * self.rt.settings.max_body_bytes
        size = len(orjson.dumps(items))
        if size > budget:
            return
        self.cache[response_id] = items
        self.sizes[response_id] = size
        while len(self.cache) > MAX_CACHED or sum(self.sizes.values()) > budget:
            dropped, _ = self.cache.popitem(last=False)
            self.sizes.pop(dropped, None)


@router.websocket("/v1/responses")
async def responses_socket(websocket: WebSocket) -> None:
    """Serve `response.create` frames until the client closes (see the module docstring)."""
    await websocket.accept()
    denied = _auth_error(websocket)
    if denied is not None:
        await websocket.send_text(orjson.dumps(_error_frame(denied)).decode())
        await websocket.close(code=1008)
        return
    conn = Connection(websocket)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", "replace")
            await conn.handle(text)
    except WebSocketDisconnect:
        return

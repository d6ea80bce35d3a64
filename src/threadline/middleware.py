"""ASGI middleware: request ids, API-key auth and the OpenAI-Beta header check."""

from __future__ import annotations

import secrets

import orjson

from .auth import KeyChecker, Verdict

BETA_PATHS = ("/v1/assistants", "/v1/threads")
V1_DEPRECATED = (
    "The v1 Assistants API has been deprecated. Please try again by setting the header "
    "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
    "https://platform.openai.com/docs/assistants/migration."
)


def _error(status: int, message: str, code: str | None, request_id: str) -> tuple[dict, dict]:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
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

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(16)
        headers = dict(scope["headers"])
        path = scope["path"]
        failure = None
        if self.keys is not None and path.startswith("/v1/"):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            verdict = self.keys.verify(key or None)  # looked up per request: key changes apply at once
            if verdict is Verdict.MISSING:
                failure = (
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    None,
                )
            elif verdict is Verdict.INVALID:
                shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
                failure = (401, f"Incorrect API key provided: {shown}.", "invalid_api_key")
        if failure is None and path.startswith(BETA_PATHS):
            beta = headers.get(b"openai-beta", b"").decode("latin-1")
            if "assistants=v1" in beta.replace(" ", ""):
                failure = (400, V1_DEPRECATED, "invalid_beta")
        if failure is not None:
            start, body = _error(*failure, request_id)
            await send(start)
            await send(body)
            return

        async def send_with_id(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)

"""Request JSON: strict parsing of request bodies, and the check every free-form JSON field goes through.

Bodies are parsed with orjson rather than the standard library: it accepts only what the response encoder can write
back (valid UTF-8 with no lone surrogate escapes, no NaN or Infinity, integers that fit 64 bits or become floats),
so nothing a client sends can make a stored object unencodable later. Free-form fields (function `parameters`,
`json_schema.schema`) are additionally bounded in depth, well below the encoder's own nesting limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from ..fields import MAX_JSON_DEPTH, FieldError, JSONObject, check_free_json, json_depth  # noqa: F401
from .errors import INVALID_JSON, APIError, BodyError, join_param


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _find_surrogate(value: Any) -> tuple[str, str] | None:
    """(parameter, message) for the first string or key in `value` that holds a lone surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, param = stack.pop()
        if isinstance(node, str):
            if _has_surrogate(node):
                return param, "string contains a lone UTF-16 surrogate, which is not valid Unicode."
        elif isinstance(node, dict):
            for key, item in node.items():
                if _has_surrogate(key):
                    return param, f"key '{_escaped(key)}' contains a lone UTF-16 surrogate, which is not valid Unicode."
                stack.append((item, join_param(param, key)))
        elif isinstance(node, list):
            stack.extend((item, join_param(param, i)) for i, item in enumerate(node))
    return None


def parse_body(raw: bytes) -> Any:
    """Parse a JSON request body strictly.

    Raises BodyError (400) naming the field for a lone surrogate escape (`"\\ud800"`) and for nesting deeper than
    orjson's 1024 levels; any other malformed body raises json.JSONDecodeError, which FastAPI reports as
    invalid JSON.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in exc.msg or "recursion" in exc.msg:
            raise BodyError(APIError(400, "Invalid body: the JSON is nested more than 1024 levels deep.")) from None
        if "surrogate" not in exc.msg:
            raise
        try:  # the standard library accepts lone surrogates: find where it is to name the field
            found = _find_surrogate(json.loads(raw))
        except (ValueError, RecursionError):
            found = None
        if found is None:
            raise BodyError(APIError(400, INVALID_JSON)) from None
        param, reason = found
        where = f"'{param}'" if param else "body"
        raise BodyError(APIError(400, f"Invalid {where}: {reason}", param=param or None)) from None


class JSONRequest(Request):
    """A request whose `json()` is `parse_body`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_body(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """The route class of every router: request bodies are parsed by `parse_body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(JSONRequest(request.scope, request.receive))

        return route

"""Responses API objects: the Response object (contract §2.2), its input items, chains of previous responses, and
input token counts (o200k_base, as the run prompt builder counts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy as sa

from ..ids import conversation_id, thread_row_id
from ..store import Store, owned, schema
from ..store import items as log
from ..store import responses as table
from ..tokens import count_tokens, item_text_tokens
from . import conversations
from . import response_models as rm
from .errors import Invalid, NotFound

ITEM_OVERHEAD_TOKENS = 4  # per message or item, as engine/context.py counts a thread message
IMAGE_TOKENS = 765
MAX_CHAIN = 10_000  # previous responses followed by one request, a bound on the walk (each hop is one query)


def response_not_found(response_id: str) -> NotFound:
    return NotFound("response", response_id, f"Response with id '{response_id}' not found.")


def previous_not_found(response_id: str) -> Invalid:
    return Invalid(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


# -- the Response object -------------------------------------------------------------------------------------------


def tool_echo(tool: Any) -> dict[str, Any]:
    """A request tool as Response.tools echoes it, defaults filled in (contract §2.2 echo rules)."""
    if isinstance(tool, rm.FunctionTool):
        out: dict[str, Any] = {"type": "function", "name": tool.name, "description": tool.description}
        out["parameters"] = tool.parameters
        out["strict"] = True if tool.strict is None else tool.strict
        return out
    if isinstance(tool, rm.FileSearchTool):
        ranking = tool.ranking_options or rm.FileSearchRanking()
        ranking_out: dict[str, Any] = {"ranker": ranking.ranker, "score_threshold": ranking.score_threshold}
        if ranking.hybrid_search is not None:
            ranking_out["hybrid_search"] = ranking.hybrid_search.model_dump()
        return {
            "type": "file_search",
            "vector_store_ids": list(tool.vector_store_ids),
            "filters": tool.filters,
            "max_num_results": tool.max_num_results or 20,
            "ranking_options": ranking_out,
        }
    container = tool.container if isinstance(tool.container, str) else tool.container.model_dump(exclude_none=True)
    return {"type": "code_interpreter", "container": container}


def text_echo(text: rm.TextOptions | None) -> dict[str, Any]:
    fmt: dict[str, Any] = {"type": "text"}
    if text is not None and text.format is not None:
        fmt = text.format.model_dump(by_alias=True, exclude_none=True)
        if fmt["type"] == "json_schema":
            fmt.setdefault("strict", False)
    return {"format": fmt, "verbosity": (text.verbosity if text is not None else None) or "medium"}


def usage_object(input_tokens: int, output_tokens: int, *, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """ResponseUsage with every field the spec requires (cache_write_tokens included, 0)."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    body: rm.ResponseCreate,
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str = "queued",
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """A Response object for a validated request: every field the spec requires, and those Open Responses requires
    present with concrete values (temperature, top_p, penalties, store, service_tier, ...), echoing the request's
    effective values. `model` is the effective model (the request's, or one a named assistant supplies)."""
    conv = body.conversation_id
    tool_choice: Any = body.tool_choice if body.tool_choice is not None else "auto"
    if not isinstance(tool_choice, str):
        tool_choice = tool_choice.model_dump(exclude_none=True)
    out: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": bool(body.background),
        "completed_at": completed_at,
        "conversation": {"id": conversation_id(thread_row_id(conv))} if conv else None,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "metadata": body.metadata or {},
        "model": model,
        "output": output or [],
        "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "prompt": body.prompt.model_dump(exclude_none=True) if body.prompt is not None else None,
        "prompt_cache_key": body.prompt_cache_key,
        "prompt_cache_retention": body.prompt_cache_retention,
        "reasoning": body.reasoning.model_dump(exclude_none=True) if body.reasoning is not None else None,
        "safety_identifier": body.safety_identifier,
        "service_tier": body.service_tier or "auto",
        "store": True if body.store is None else body.store,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": text_echo(body.text),
        "tool_choice": tool_choice,
        "tools": [tool_echo(t) for t in body.tools or []],
        "top_logprobs": body.top_logprobs or 0,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": body.truncation or "disabled",
        "usage": usage,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    if body.user is not None:
        out["user"] = body.user
    return out


def with_include(response: dict[str, Any], include: set[str]) -> dict[str, Any]:
    """The response as GET returns it: output items without what only `include[]` asks for."""
    return {**response, "output": [conversations.apply_include(i, include) for i in response.get("output") or []]}


def load_stored(conn: sa.Connection, response_id: str) -> dict[str, Any]:
    """A stored response (404 for an unknown one, and for one created with `store: false`)."""
    response = table.fetch(conn, response_id)
    if response is None or response.get("store") is False:
        raise response_not_found(response_id)
    return response


# -- input items -------------------------------------------------------------------------------------------------


def input_item_page(
    conn: sa.Connection, response_id: str, *, limit: int, order: str, after: str | None, include: set[str]
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a stored response's input items (`order` desc by default; after the item `after`)."""
    load_stored(conn, response_id)
    items = table.input_items(conn, response_id) or []
    if order == "desc":
        items = items[::-1]
    if after:
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []  # an unknown cursor: nothing after it
    page = [conversations.apply_include(i, include) for i in items[: limit + 1]]
    return page[:limit], len(page) > limit


def chain_segments(conn: sa.Connection, previous_response_id: str) -> Iterator[list[dict[str, Any]]]:
    """The responses a response chained to `previous_response_id` continues from, newest first, each as its input
    items then its output items (contract §5.3). Raises 400 previous_response_not_found (when iteration starts)
    for an unknown or unstored response. One query per link; a link deleted since ends the chain."""
    t = schema.responses
    current: str | None = previous_response_id
    hops = 0
    while current is not None and hops < MAX_CHAIN:
        query = sa.select(t.c.data, t.c.input, t.c.previous_response_id).where(owned(t, t.c.id == current))
        row = conn.execute(query).first()
        if row is None:
            if hops == 0:
                raise previous_not_found(previous_response_id)
            return
        response = orjson.loads(row.data)
        if hops == 0 and response.get("store") is False:
            raise previous_not_found(previous_response_id)
        yield orjson.loads(row.input) + list(response.get("output") or [])
        current = row.previous_response_id
        hops += 1


def chain(conn: sa.Connection, previous_response_id: str) -> list[dict[str, Any]]:
    """The items of the chain ending at `previous_response_id`, oldest first (see chain_segments)."""
    segments = list(chain_segments(conn, previous_response_id))
    return [item for segment in reversed(segments) for item in segment]


# -- token counts --------------------------------------------------------------------------------------------------


def item_tokens(item: dict[str, Any]) -> int:
    """Prompt tokens of one item (o200k_base text plus per-item overhead; images at a flat price)."""
    if item.get("type", "message") != "message":
        return ITEM_OVERHEAD_TOKENS + item_text_tokens(item)
    content = item.get("content")
    if isinstance(content, str):
        return ITEM_OVERHEAD_TOKENS + count_tokens(content)
    tokens = ITEM_OVERHEAD_TOKENS
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            tokens += count_tokens(part.get("text") or "")
        elif kind == "refusal":
            tokens += count_tokens(part.get("refusal") or "")
        elif kind == "input_image":
            tokens += IMAGE_TOKENS
    return tokens


def request_tokens(body: rm.ContextFields) -> int:
    """Input tokens of a request's instructions, tools and text format schema."""
    tokens = 0
    if body.instructions:
        tokens += ITEM_OVERHEAD_TOKENS + count_tokens(body.instructions)
    for tool in body.tools or []:
        tokens += count_tokens(orjson.dumps(tool_echo(tool)).decode())
    if body.text is not None and isinstance(body.text.format, rm.TextFormatJsonSchema):
        tokens += count_tokens(orjson.dumps(body.text.format.schema_).decode())
    return tokens


def input_tokens_of(body: rm.ContextFields, items: list[dict[str, Any]]) -> int:
    """Input tokens of a request whose whole context (conversation or chain, then input) is `items`."""
    return request_tokens(body) + sum(item_tokens(i) for i in items)


def input_tokens(conn: sa.Connection, body: rm.ContextFields) -> int:
    """Input tokens of a request as a response would be prompted: instructions, tools, the text format's schema,
    the conversation's items or the previous responses' chain, and this request's input."""
    tokens = request_tokens(body)
    conv = body.conversation_id
    if conv is not None:
        if not conv.startswith(("conv_", "thread_")) or "\x00" in conv:
            raise Invalid(
                f"Invalid 'conversation': '{conv}'. Expected an ID that begins with 'conv'.", param="conversation"
            )
        thread_id = thread_row_id(conv)
        if Store.fetch(conn, schema.threads, thread_id) is None:
            missing = NotFound("conversation", conv, f"Conversation with id '{conv}' not found.")
            missing.param = "conversation"
            raise missing
        tokens += log.token_total(conn, thread_id, ITEM_OVERHEAD_TOKENS)
    if body.previous_response_id is not None:
        # summed link by link: only one response's items are held at a time, however long the chain
        tokens += sum(item_tokens(i) for segment in chain_segments(conn, body.previous_response_id) for i in segment)
    if isinstance(body.input, str):
        tokens += ITEM_OVERHEAD_TOKENS + count_tokens(body.input)
    elif body.input:
        tokens += sum(item_tokens(i) for i in conversations.as_items(conn, body.input))
    return tokens

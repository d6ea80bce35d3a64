"""A response's context (engine.context.ContextSource for the Responses API): its instructions, then its
conversation's items or its previous_response_id chain (each earlier response's input then output), then this
request's input, then what the response has output so far; items mapped to chat messages (function calls as the
assistant's tool calls, their outputs as tool messages), truncated per `truncation`."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa

from ..providers.base import ChatMessage, ChatRequest, ToolCall
from ..store import Store, owned, schema
from ..store import items as log
from ..store.sql import leave_loop
from ..tokens import count_tokens
from . import neutral as n
from .context import MESSAGE_OVERHEAD_TOKENS, PromptTooLarge, RunContext, TurnPrompt, response_format_for_provider
from .runtime import EngineRuntime
from .tools import ToolContext

CONTEXT_TOO_LONG = "Your input exceeds the context window of this model. Please adjust your input and try again."


# -- the request as the loop sees it --------------------------------------------------------------------------------


def run_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Response.tools (flat function tools) in the Assistants run shape the loop reads."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        kind = tool.get("type")
        if kind == "function":
            function = {k: tool.get(k) for k in ("name", "description", "parameters", "strict")}
            out.append({"type": "function", "function": function})
        elif kind == "file_search":
            config = {"max_num_results": tool.get("max_num_results") or 20}
            out.append({"type": "file_search", "file_search": config, "vector_store_ids": tool["vector_store_ids"]})
        else:
            out.append(dict(tool))
    return out


def run_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    """Response.tool_choice in the run shape ("auto" | "none" | "required" | {"type": "function", "function":
    {"name"}} | {"type": <server tool>})."""
    if isinstance(choice, str) or choice is None:
        return choice or "auto"
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    return {"type": kind}


def allowed(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools the model may call: all of them, or those an `allowed_tools` tool_choice lists."""
    tools = response.get("tools") or []
    choice = response.get("tool_choice")
    if not (isinstance(choice, dict) and choice.get("type") == "allowed_tools"):
        return tools
    names = {t.get("name") for t in choice.get("tools") or [] if t.get("type") == "function"}
    kinds = {t.get("type") for t in choice.get("tools") or [] if t.get("type") != "function"}
    return [t for t in tools if (t["type"] == "function" and t["name"] in names) or t["type"] in kinds]


def text_format(response: dict[str, Any]) -> dict[str, Any] | None:
    """Response.text.format as the run's `response_format` (nested json_schema, as Chat Completions takes it)."""
    fmt = (response.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        inner = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": inner}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def execution_spec(response: dict[str, Any]) -> n.ExecutionSpec:
    tools = run_tools(allowed(response))
    return n.ExecutionSpec(
        id=response["id"],
        model=response["model"],
        instructions=response.get("instructions") or "",
        tools=tools,
        tool_choice=run_tool_choice(response.get("tool_choice"), tools),
        parallel_tool_calls=bool(response.get("parallel_tool_calls", True)),
        max_prompt_tokens=None,
        max_completion_tokens=response.get("max_output_tokens"),
        expires_at=None,
        obj=response,
        max_tool_calls=response.get("max_tool_calls"),
    )


# -- context -------------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    pieces = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            pieces.append(part.get("text") or "")
        elif kind == "refusal":
            pieces.append(part.get("refusal") or "")
    return "\n".join(pieces)


# An image given by file id, as a provider image part (None: the file is gone).
ImageLoader = Callable[[str], dict[str, Any] | None]


def _message_content(item: dict[str, Any], images: bool, load: ImageLoader | None) -> str | list[dict[str, Any]]:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal") or ""})
        elif kind == "input_image" and images and part.get("image_url") and item.get("role") == "user":
            parts.append({"type": "image_url", "url": part["image_url"]})
        elif kind == "input_image" and images and part.get("file_id") and load and item.get("role") == "user":
            image = load(part["file_id"])
            parts.append(image or {"type": "text", "text": f"[image {part['file_id']} was deleted]"})
        elif kind == "input_image":
            parts.append({"type": "text", "text": f"[image omitted: {part.get('file_id') or 'url'}]"})
        elif kind == "input_file":
            parts.append({"type": "text", "text": f"[file: {part.get('filename') or part.get('file_id') or ''}]"})
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> str:
    return output if isinstance(output, str) else _content_text(output)


def items_to_messages(items: list[dict[str, Any]], images: bool, load: ImageLoader | None = None) -> list[ChatMessage]:
    """Conversation items as chat messages: messages by role (system and developer as system), consecutive
    function_call items as one assistant message with tool calls, function_call_output items as tool messages.
    Server tool items and reasoning are history the model has already used: left out."""
    out: list[ChatMessage] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            role = "system" if role in ("system", "developer") else role
            out.append(ChatMessage(role=role, content=_message_content(item, images, load)))
        elif kind == "function_call":
            call = ToolCall(id=item["call_id"], name=item["name"], arguments=item.get("arguments") or "")
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and last.tool_calls and last.content is None:
                last.tool_calls.append(call)
            else:
                out.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            out.append(
                ChatMessage(role="tool", content=_output_text(item.get("output")), tool_call_id=item.get("call_id"))
            )
    return out


def item_tokens(item: dict[str, Any]) -> int:
    from ..services.responses import item_tokens as count  # noqa: PLC0415 - services import the engine

    return count(item)


def conversation_items(conn: sa.Connection, thread_id: str, max_tokens: int | None = None) -> list[dict[str, Any]]:
    """A conversation's items, oldest first, as the Conversations API shows them (results included). With
    `max_tokens`, only the newest items up to the first one past that many tokens are read (what cannot fit a
    prompt is never loaded): the caller sees the total exceed `max_tokens` when older items were left unread."""
    from ..services import conversations  # noqa: PLC0415 - services import the engine
    from ..services import response_models as rm  # noqa: PLC0415

    newest: list[dict[str, Any]] = []
    after, size, total = None, 64, 0
    while max_tokens is None or total <= max_tokens:
        page, more = log.page(conn, thread_id, limit=size, order="desc", after=after)
        for item in conversations.item_views(conn, page, set(rm.INCLUDABLE)):
            newest.append(item)
            total += item_tokens(item)
            if max_tokens is not None and total > max_tokens:
                break
        if not more or not page:
            break
        after, size = page[-1].id, min(size * 4, 1024)
    return newest[::-1]


def chain_items(conn: sa.Connection, previous_response_id: str, max_tokens: int | None = None) -> list[dict[str, Any]]:
    """The previous_response_id chain's items, oldest first (each response's input then output); with
    `max_tokens`, newer responses only, up to the first past that many tokens. Raises previous_response_not_found."""
    from ..services import responses as svc  # noqa: PLC0415 - services import the engine

    segments: list[list[dict[str, Any]]] = []
    total = 0
    for segment in svc.chain_segments(conn, previous_response_id):
        segments.append(segment)
        total += sum(item_tokens(i) for i in segment)
        if max_tokens is not None and total > max_tokens:
            break
    return [item for segment in reversed(segments) for item in segment]


SERVER_ITEMS = ("file_search_call", "code_interpreter_call")


def server_turns(output: list[dict[str, Any]], state: dict[str, Any]) -> list[dict[str, Any]]:
    """This response's output so far with each answered server tool call (file_search, code_interpreter) as the
    function_call and function_call_output the model made and got, so that the next turn sees the results. The
    loop records calls (`call_names`, `call_arguments`, `tool_outputs`, by provider call id) in the order their
    items were output; a call not answered yet is left out."""
    names: dict[str, str] = state.get("call_names") or {}
    args: dict[str, str] = state.get("call_arguments") or {}
    outputs: dict[str, str] = state.get("tool_outputs") or {}
    ids = iter(names)
    out: list[dict[str, Any]] = []
    for item in output:
        if item.get("type") not in SERVER_ITEMS:
            out.append(item)
            continue
        call_id = next(ids, None)
        if call_id is None or outputs.get(call_id) is None:
            continue
        out.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": names[call_id],
                "arguments": args.get(call_id) or "{}",
            }
        )
        out.append({"type": "function_call_output", "call_id": call_id, "output": outputs[call_id]})
    return out


def prompt_parts(
    input_items: list[dict[str, Any]], produced: list[dict[str, Any]], state: dict[str, Any]
) -> dict[str, int]:
    """Estimated tokens of a response's own part of its prompt: `input` (this request's input items, the client's
    function outputs aside), `retrieved_chunks` (file_search results of its earlier turns), `tool_outputs`
    (function and other server tool outputs) and `response_output` (its own replies and calls so far)."""
    names: dict[str, str] = state.get("call_names") or {}
    parts = {"input": 0, "retrieved_chunks": 0, "tool_outputs": 0, "response_output": 0}
    for item in input_items:
        parts["tool_outputs" if item.get("type") == "function_call_output" else "input"] += item_tokens(item)
    for item in produced:
        if item.get("type") != "function_call_output":
            parts["response_output"] += item_tokens(item)
        elif names.get(item.get("call_id") or "") == "file_search":
            parts["retrieved_chunks"] += item_tokens(item)
        else:
            parts["tool_outputs"] += item_tokens(item)
    return parts


class ResponsesContext:
    """A response's prompt: its instructions, then the conversation's items (or the previous_response_id chain's
    inputs and outputs), then this request's input, then what this response has output so far (server tool
    turns). `truncation: auto` drops the oldest items that do not fit; `disabled` fails when they do not."""

    def __init__(self, runtime: EngineRuntime, output: Callable[[], list[dict[str, Any]]]) -> None:
        self.rt = runtime
        self.output = output  # the projection's output items so far
        self.prior: list[dict[str, Any]] = []
        self.input: list[dict[str, Any]] = []
        self.thread: dict[str, Any] = {}

    def load(self, conn: sa.Connection, spec: n.ExecutionSpec, state: dict[str, Any]) -> None:
        t = schema.responses
        row = conn.execute(sa.select(t.c.thread_id, t.c.input).where(t.c.id == spec.id)).one()
        self.input = orjson.loads(row.input)
        window = self.rt.providers.context_window(spec.model)  # nothing older than a window's worth is read
        if row.thread_id is not None:
            self.thread = Store.fetch(conn, schema.threads, row.thread_id) or {}
            self.prior = conversation_items(conn, row.thread_id, window)
        elif spec.obj.get("previous_response_id"):
            self.prior = chain_items(conn, spec.obj["previous_response_id"], window)

    def build(self, conn: sa.Connection, spec: n.ExecutionSpec, state: dict[str, Any], turn: TurnPrompt) -> RunContext:
        response = spec.obj
        produced = server_turns(self.output(), state)
        own = self.input + produced
        used = sum(count_tokens(str(t.parameters or "")) + count_tokens(t.description or "") + 8 for t in turn.tools)
        if turn.system_prompt:
            used += count_tokens(turn.system_prompt) + MESSAGE_OVERHEAD_TOKENS
        parts = {"instructions": used, **prompt_parts(self.input, produced, state)}
        used += sum(item_tokens(i) for i in own)
        reserve = turn.max_tokens or min(4096, turn.context_window // 4)
        budget = turn.context_window - reserve
        prior = self.prior
        costs = [item_tokens(i) for i in prior]
        total, start = sum(costs), 0
        while start < len(prior) and used + total > budget:
            if response.get("truncation") != "auto":
                raise PromptTooLarge(CONTEXT_TOO_LONG)
            total -= costs[start]  # oldest first; a tool output left without its call is dropped below
            start += 1
        while start < len(prior) and prior[start].get("type") == "function_call_output":
            total -= costs[start]
            start += 1
        truncated = start > 0
        prior = prior[start:]
        used += total
        if used > budget:
            raise PromptTooLarge(CONTEXT_TOO_LONG)
        # What this prompt is made of, in estimated tokens (recorded with the turn's usage: the hidden cost).
        state["prompt_parts"] = {**parts, "history": total}
        messages = [ChatMessage(role="system", content=turn.system_prompt)] if turn.system_prompt else []
        from ..services.response_compact import expand  # noqa: PLC0415 - services import the engine

        # A compaction item (from POST /v1/responses/compact) stands for the history it summarised.
        context = expand(self.rt.settings.data_dir, prior + own)
        messages += items_to_messages(context, turn.images, lambda file_id: self._image(conn, file_id))
        request = ChatRequest(
            model=turn.upstream_model,
            messages=messages,
            tools=turn.tools,
            tool_choice=turn.tool_choice,
            parallel_tool_calls=spec.parallel_tool_calls,
            temperature=response.get("temperature"),
            top_p=response.get("top_p"),
            max_tokens=turn.max_tokens,
            response_format=response_format_for_provider(text_format(response)),
            reasoning_effort=(response.get("reasoning") or {}).get("effort"),
        )
        return RunContext(request=request, prompt_tokens=used, truncated=truncated)

    def _image(self, conn: sa.Connection, file_id: str) -> dict[str, Any] | None:
        f = schema.files
        row = conn.execute(sa.select(f.c.blob_key, f.c.data).where(owned(f, f.c.id == file_id))).first()
        if row is None:
            return None
        mime = mimetypes.guess_type(orjson.loads(row[1])["filename"])[0] or "image/png"
        leave_loop()  # a blob read (disk, S3) must not block the event loop
        with self.rt.blobs.open(row[0]) as f:
            return {"type": "image", "data": f.read(), "mime_type": mime}

    def tool_context(
        self, spec: n.ExecutionSpec, state: dict[str, Any], tool_config: dict[str, Any], prior: list[dict[str, Any]]
    ) -> ToolContext:
        # A Responses file_search tool names its vector stores itself; the server tools read them from the
        # assistant's tool_resources, so they are handed over in that shape.
        stores = tool_config.get("vector_store_ids") or []
        assistant = {"id": None, "tool_resources": {"file_search": {"vector_store_ids": stores}}}
        thread = {**self.thread, "tool_resources": {}} if self.thread else {"id": None, "tool_resources": {}}
        # Server tools key per-conversation state (the code_interpreter session) by the run's thread: a response
        # without a conversation gets its own key, never a session shared with unrelated responses.
        run = {**spec.obj, "thread_id": self.thread.get("id") or spec.id, "assistant_id": None}
        if tool_config.get("type") == "code_interpreter" and state.get("container_id"):
            # The container resolved when the response was created (`container: {type: "auto"}` made one).
            tool_config = {**tool_config, "container_id": state["container_id"]}
        return ToolContext(self.rt, run, thread, assistant, tool_config, state.get("include", []), prior)

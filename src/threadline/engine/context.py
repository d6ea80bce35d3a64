"""Context building: from a run, its assistant and its thread to one ChatRequest for the model.

The prompt is: effective instructions (+ tool guidance) as the system message, then the thread's messages
(truncated per `truncation_strategy` and the prompt budget: the most recent messages that fit, read newest first
and counted from `messages.token_count`, so the cost of a run does not grow with the thread), then this run's own
transcript rebuilt from its steps (assistant text, tool calls and tool outputs), which is never truncated.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from ..providers.base import ChatMessage, ChatRequest, ToolCall, ToolSpec
from ..store import Store, loads, owned, schema
from ..store import messages as messages_repo
from ..store import runs as runs_repo
from ..store.sql import leave_loop
from ..tokens import count_tokens, message_text_tokens
from .neutral import ExecutionSpec
from .tools import ToolContext

if TYPE_CHECKING:
    from .runtime import EngineRuntime

if TYPE_CHECKING:
    from .runtime import EngineRuntime

MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 765
MAX_THREAD_MESSAGES = 2000
FIRST_PAGE = 16  # thread messages read by the first query; later pages grow 4x up to MAX_PAGE
MAX_PAGE = 512


class PromptTooLarge(Exception):
    """Even the minimum context (system prompt, last message, this run's transcript) exceeds the budget."""


@dataclass
class RunContext:
    request: ChatRequest
    prompt_tokens: int
    truncated: bool = False  # older thread messages were left out to fit the budget
    tool_names: dict[str, str] = field(default_factory=dict)  # function name -> tool type


@dataclass(frozen=True)
class TurnPrompt:
    """What the loop decided for one model call; the context source adds the conversation."""

    system_prompt: str  # instructions + the server tools' usage notes ("" for none)
    tools: list[ToolSpec]
    tool_choice: str  # "auto" | "none" | "required" | a function name
    upstream_model: str
    images: bool  # the model takes images as input
    context_window: int  # tokens
    prompt_budget: int | None  # what max_prompt_tokens leaves for this turn
    max_tokens: int | None  # what max_completion_tokens leaves for this turn


class ContextSource(Protocol):
    """Where an execution's prompt comes from: the conversation so far plus the execution's own transcript.
    Today's is ThreadContext (a thread's messages and the run's steps); a Responses source reads a conversation's
    items or a previous_response_id chain."""

    def load(self, conn: sa.Connection, spec: ExecutionSpec, state: dict[str, Any]) -> None:
        """Read what the execution needs besides its own object (e.g. its thread and assistant), inside the
        transaction that claims it."""
        ...

    def build(self, conn: sa.Connection, spec: ExecutionSpec, state: dict[str, Any], turn: TurnPrompt) -> RunContext:
        """The ChatRequest for the next model call. Raises PromptTooLarge when even the minimum does not fit."""
        ...

    def tool_context(
        self, spec: ExecutionSpec, state: dict[str, Any], tool_config: dict[str, Any], prior: list[dict[str, Any]]
    ) -> ToolContext:
        """What a server tool's execute() gets: the resources it may use (files, vector stores) come from here."""
        ...


class ThreadContext:
    """An Assistants run's context: its thread's messages (windowed by truncation_strategy and the budget), then
    the run's own transcript rebuilt from its steps (build_context)."""

    def __init__(self, runtime: EngineRuntime) -> None:
        self.rt = runtime
        self.thread: dict[str, Any] = {}
        self.assistant: dict[str, Any] = {}

    def load(self, conn: sa.Connection, spec: ExecutionSpec, state: dict[str, Any]) -> None:
        run = spec.obj
        self.thread = Store.fetch(conn, schema.threads, run["thread_id"]) or {}
        self.assistant = Store.fetch(conn, schema.assistants, run["assistant_id"]) or {"id": run["assistant_id"]}

    def build(self, conn: sa.Connection, spec: ExecutionSpec, state: dict[str, Any], turn: TurnPrompt) -> RunContext:
        return build_context(
            conn,
            self.rt,
            spec.obj,
            state,
            system_prompt=turn.system_prompt,
            tools=turn.tools,
            tool_choice=turn.tool_choice,
            upstream_model=turn.upstream_model,
            images=turn.images,
            context_window=turn.context_window,
            prompt_budget=turn.prompt_budget,
            max_tokens=turn.max_tokens,
        )

    def tool_context(
        self, spec: ExecutionSpec, state: dict[str, Any], tool_config: dict[str, Any], prior: list[dict[str, Any]]
    ) -> ToolContext:
        include = state.get("include", [])
        return ToolContext(self.rt, spec.obj, self.thread, self.assistant, tool_config, include, prior)


def _text_of(content: list[dict[str, Any]]) -> str:
    return "".join(p["text"]["value"] for p in content if p["type"] == "text")


def attachments_note(conn: sa.Connection, run: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """A system-prompt section listing the files attached to the thread's messages, so the notes never mix with
    what the user wrote. A file's /mnt/data location is given only when the run can reach it (code_interpreter
    among the run's tools), under the name the sandbox places it with."""
    attachments: dict[str, list[str]] = {}  # file id -> tool types, over every message that attached it
    for message in messages:
        for att in message.get("attachments") or []:
            tools = attachments.setdefault(att["file_id"], [])
            tools += [t["type"] for t in att.get("tools", []) if t["type"] not in tools]
    if not attachments:
        return ""
    names = {}
    f = schema.files
    for file_id, raw in conn.execute(sa.select(f.c.id, f.c.data).where(owned(f, f.c.id.in_(list(attachments))))):
        names[file_id] = loads(raw)["filename"]
    placed: dict[str, str] = {}
    if any(t.get("type") == "code_interpreter" for t in run.get("tools") or []):
        from ..code_interpreter import input_placement  # noqa: PLC0415 - code_interpreter imports the engine

        placed = input_placement(conn, run)
    lines = []
    for file_id, tools in attachments.items():
        name = names.get(file_id)
        if name is None:
            continue  # the file was deleted since
        line = f"- {name} (file id {file_id})" + (f", for {' and '.join(tools)}" if tools else "")
        if file_id in placed:
            line += f", available at /mnt/data/{placed[file_id]}"
        lines.append(line)
    return "Files the user attached to messages in this conversation:\n" + "\n".join(lines) if lines else ""


def message_tokens(conn: sa.Connection, message: dict[str, Any], text_tokens: int | None, images: bool) -> int:
    """Prompt tokens of a thread message as `thread_message_to_chat` sends it, from its stored text count
    (`messages.token_count`; None: counted now). Image parts are priced without reading their blobs."""
    if text_tokens is None:
        text_tokens = message_text_tokens(message)
    tokens = MESSAGE_OVERHEAD_TOKENS + text_tokens
    files = schema.files
    for part in message["content"]:
        kind = part["type"]
        if kind not in ("image_file", "image_url"):
            continue
        if not (images and message["role"] == "user"):
            tokens += 8
        elif kind == "image_url":
            tokens += IMAGE_TOKENS
        elif Store.exists(conn, files, part["image_file"]["file_id"]):
            tokens += IMAGE_TOKENS  # a deleted file is sent as a short note, not counted
    return tokens


def thread_message_to_chat(
    conn: sa.Connection, runtime: EngineRuntime, message: dict[str, Any], images: bool
) -> ChatMessage:
    parts: list[dict[str, Any]] = []
    for part in message["content"]:
        kind = part["type"]
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif kind == "image_file" and images and message["role"] == "user":
            file_id = part["image_file"]["file_id"]
            f = schema.files
            row = conn.execute(sa.select(f.c.blob_key, f.c.data).where(owned(f, f.c.id == file_id))).first()
            if row is None:
                parts.append({"type": "text", "text": f"[image {file_id} was deleted]"})
                continue
            mime = mimetypes.guess_type(loads(row[1])["filename"])[0] or "image/png"
            leave_loop()  # a blob read (disk, S3) must not block the event loop
            with runtime.blobs.open(row[0]) as f:
                parts.append({"type": "image", "data": f.read(), "mime_type": mime})
        elif kind == "image_url" and images and message["role"] == "user":
            parts.append({"type": "image_url", "url": part["image_url"]["url"]})
        elif kind in ("image_file", "image_url"):
            ref = part.get("image_file", {}).get("file_id") or part.get("image_url", {}).get("url")
            parts.append({"type": "text", "text": f"[image omitted: {ref}]"})
    if all(p["type"] == "text" for p in parts):
        content: str | list[dict] = "\n".join(p["text"] for p in parts)
    else:
        content = parts
    return ChatMessage(role=message["role"], content=content)


def run_transcript(
    conn: sa.Connection, run: dict[str, Any], state: dict[str, Any], parts: dict[str, int] | None = None
) -> tuple[list[ChatMessage], int]:
    """This run's own turns so far, rebuilt from its steps in order. `parts`, if given, gets the tokens of the
    run's own replies and calls (`run_output`), file_search outputs (`retrieved_chunks`) and other tool outputs
    (`tool_outputs`) added."""
    parts = parts if parts is not None else {}
    steps = runs_repo.steps(conn, run["id"])
    out: list[ChatMessage] = []
    tokens = 0
    outputs = state.get("tool_outputs", {})
    for step in steps:
        details = step["step_details"]
        if details["type"] == "message_creation":
            message = Store.fetch(conn, schema.messages, details["message_creation"]["message_id"])
            if message is None:
                continue
            text = _text_of(message["content"])
            if text:
                out.append(ChatMessage(role="assistant", content=text))
                tokens += count_tokens(text) + MESSAGE_OVERHEAD_TOKENS
                parts["run_output"] = parts.get("run_output", 0) + count_tokens(text) + MESSAGE_OVERHEAD_TOKENS
            continue
        calls, results = [], []
        for call in details["tool_calls"]:
            name = state.get("call_names", {}).get(call["id"])
            if call["type"] == "function":
                name = call["function"]["name"]
                args = call["function"]["arguments"]
                output = call["function"]["output"]
            else:
                args = state.get("call_arguments", {}).get(call["id"], "{}")
                output = outputs.get(call["id"])
            if name is None or output is None:
                continue  # not answered yet: the model sees only completed calls
            calls.append(ToolCall(id=call["id"], name=name, arguments=args))
            results.append(ChatMessage(role="tool", content=output, tool_call_id=call["id"]))
            call_tokens, output_tokens = count_tokens(args) + MESSAGE_OVERHEAD_TOKENS, count_tokens(output)
            tokens += call_tokens + output_tokens + MESSAGE_OVERHEAD_TOKENS
            kind = "retrieved_chunks" if call["type"] == "file_search" else "tool_outputs"
            parts["run_output"] = parts.get("run_output", 0) + call_tokens
            parts[kind] = parts.get(kind, 0) + output_tokens + MESSAGE_OVERHEAD_TOKENS
        if calls:
            out.append(ChatMessage(role="assistant", content=None, tool_calls=calls))
            out.extend(results)
    return out, tokens


def newest_thread_messages(
    conn: sa.Connection, thread_id: str, run_id: str, limit: int
) -> Iterator[tuple[dict[str, Any], int | None]]:
    """The thread's messages newest first (other runs' and users'; not `run_id`'s own), at most `limit`, each with
    its stored text token count. Read in growing pages, so a caller that stops early reads little of a long thread."""
    page, before = FIRST_PAGE, None
    while limit > 0:
        # only `message` rows: conversation items of other kinds are not Assistants messages
        rows = messages_repo.older_than(conn, thread_id, run_id, min(page, limit), before)
        for _, data, tokens in rows:
            yield loads(data), tokens
        if len(rows) < min(page, limit):
            return
        limit -= len(rows)
        before = rows[-1][0]
        page = min(page * 4, MAX_PAGE)


def build_context(
    conn: sa.Connection,
    runtime: EngineRuntime,
    run: dict[str, Any],
    state: dict[str, Any],
    *,
    system_prompt: str,
    tools: list[ToolSpec],
    tool_choice: str,
    upstream_model: str,
    images: bool,
    context_window: int,
    prompt_budget: int | None,
    max_tokens: int | None,
) -> RunContext:
    parts: dict[str, int] = {}
    transcript, transcript_tokens = run_transcript(conn, run, state, parts)
    truncation = run.get("truncation_strategy") or {"type": "auto"}
    last = truncation.get("last_messages") if truncation.get("type") == "last_messages" else None
    limit = min(last, MAX_THREAD_MESSAGES) if last else MAX_THREAD_MESSAGES
    tool_tokens = sum(count_tokens(str(t.parameters or "")) + count_tokens(t.description or "") + 8 for t in tools)
    base_tokens = count_tokens(system_prompt) + MESSAGE_OVERHEAD_TOKENS if system_prompt else 0

    reserve = max_tokens or min(4096, context_window // 4)
    budget = context_window - reserve
    if prompt_budget is not None:
        budget = min(budget, prompt_budget)
    used = base_tokens + tool_tokens + transcript_tokens
    # Newest first, up to the first message that does not fit: the window is the thread's most recent messages,
    # and nothing older than it is read or counted.
    window: list[tuple[dict[str, Any], int]] = []
    truncated = False
    for message, stored in newest_thread_messages(conn, run["thread_id"], run["id"], limit):
        tokens = message_tokens(conn, message, stored, images)
        if window and used + tokens > budget:
            truncated = True
            break
        window.append((message, tokens))
        used += tokens
    # The attachments note lists the files of the messages the model sees; if it does not fit, the window
    # gives up its oldest messages (never the newest).
    note = attachments_note(conn, run, [m for m, _ in window])
    if note:
        system_prompt = f"{system_prompt}\n\n{note}" if system_prompt else note
        system_tokens = count_tokens(system_prompt) + MESSAGE_OVERHEAD_TOKENS
        used += system_tokens - base_tokens
        while len(window) > 1 and used > budget:
            used -= window.pop()[1]
            truncated = True
    if used > budget:
        raise PromptTooLarge(f"The prompt needs {used} tokens, over the budget of {budget}.")
    kept = [thread_message_to_chat(conn, runtime, m, images) for m, _ in reversed(window)]
    # What this prompt is made of, in estimated tokens (recorded with the turn's usage: the hidden cost per run).
    system_tokens = count_tokens(system_prompt) + MESSAGE_OVERHEAD_TOKENS if system_prompt else 0
    parts["instructions"] = system_tokens + tool_tokens
    parts["history"] = sum(tokens for _, tokens in window)
    state["prompt_parts"] = parts
    messages = ([ChatMessage(role="system", content=system_prompt)] if system_prompt else []) + kept + transcript
    request = ChatRequest(
        model=upstream_model,
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=bool(run.get("parallel_tool_calls", True)),
        temperature=run.get("temperature"),
        top_p=run.get("top_p"),
        max_tokens=max_tokens,
        response_format=response_format_for_provider(run.get("response_format")),
    )
    return RunContext(request=request, prompt_tokens=used, truncated=truncated)


def response_format_for_provider(value: Any) -> dict | None:
    if not isinstance(value, dict) or value.get("type") in (None, "text"):
        return None
    return value

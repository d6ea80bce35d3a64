"""The wire-neutral events of an execution, and what the loop knows of the execution it drives.

The loop (engine/loop.py) emits these, in order, to a projection (engine/projection.py), which turns them into
one wire API's rows and stream events (Assistants: engine/assistants.py). Every event is awaited: the projection
commits what the event makes true before it emits anything, and may raise Stop when the execution was moved
underneath it (cancelled, expired, lost its lease).

Order within one execution (a "turn" is one model call):

    turn*:  TextStarted  TextDelta*  [TextDone]                        a reply (at most one per turn), or
            ToolCallStarted (ToolArgumentsDelta)*  ...                  tool calls as the model streams them, then
            ToolCallDone*  (ServerToolProgress* ServerToolDone)*        every call's final arguments; server tools run
            ToolTurnDone | FunctionCallsPending                         another turn follows | the execution waits
    Finished                                                            exactly once, unless FunctionCallsPending

A reply that ends the execution is not sent as TextDone: it rides on Finished.text, so the projection can save
the reply and the ending in one write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# The failure message of an execution whose results could not be saved because the storage is full.
STORAGE_FULL_MESSAGE = "The server's storage is full; the run could not save its results."


class Stop(Exception):
    """The execution left `in_progress` underneath (cancelled, expired, lease lost) or has finished; the
    projection has reported where it is. The loop unwinds quietly."""


@dataclass(frozen=True)
class Usage:
    """Tokens of one model turn, or (on Finished and FunctionCallsPending) the execution's totals so far."""

    prompt_tokens: int
    completion_tokens: int
    latency_ms: int | None = None  # of one turn: from the request to the end of the provider's stream


@dataclass(frozen=True)
class ExecutionSpec:
    """What the loop needs to know of an execution, read from its wire object by the projection.

    `tools` are in the Assistants run shape ({"type": "function", "function": {...}} | {"type": "file_search",
    ...} | {"type": "code_interpreter"}); `tool_choice` is "auto" | "none" | "required" |
    {"type": "function", "function": {"name": ...}} | {"type": <server tool type>}. `obj` is the stored wire
    object itself, for the context source of the same API (the loop does not read it)."""

    id: str
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    expires_at: int | None  # clock seconds; None: never
    obj: dict[str, Any]
    max_tool_calls: int | None = None  # server tool calls across the execution; None: no cap


# -- text ---------------------------------------------------------------------------------------------------------


@dataclass
class TextStarted:
    """The model began a reply. `parts`: content produced by this execution's server tools since the last reply
    (e.g. {"type": "image_file", "image_file": {"file_id": ...}}), to show before the text."""

    parts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TextDelta:
    """A piece of the reply (after the text processors). `annotations`: those found in this piece, with
    start_index / end_index counted over the whole reply text so far (file_citation, file_path dicts)."""

    text: str
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TextDone:
    """The reply is complete: its whole `text` and `annotations`. `status`: "completed" or "incomplete" (then
    `reason`: "max_tokens" | "content_filter"). `usage`: the turn's, when the reply ends the turn."""

    text: str
    annotations: list[dict[str, Any]]
    status: Literal["completed", "incomplete"] = "completed"
    reason: str | None = None
    usage: Usage | None = None


# -- tool calls ---------------------------------------------------------------------------------------------------


@dataclass
class ToolCallStarted:
    """The model began a tool call. `index`: the call's position in this turn (0, 1, ...). `server`: the server
    tool's type ("file_search", "code_interpreter") or None for a function the client answers. `first_delta`:
    a server tool's initial call object (ServerTool.first_delta, Assistants step-delta shape)."""

    call_id: str
    name: str
    index: int
    server: str | None = None
    first_delta: dict[str, Any] | None = None


@dataclass
class ToolArgumentsDelta:
    """A piece of a function call's arguments (JSON text), as the model streams it (server tools' are not sent)."""

    call_id: str
    index: int
    delta: str


@dataclass
class ToolCallDone:
    """The model finished a call's arguments (emitted for every call of the turn once its stream ended)."""

    call_id: str
    name: str
    index: int
    arguments: str
    server: str | None = None


@dataclass
class ServerToolProgress:
    """A server tool reports progress while it runs (ServerTool.execute's delta: the tool call object's changed
    fields in the Assistants step-delta shape, e.g. code_interpreter input and outputs)."""

    call_id: str
    index: int
    payload: dict[str, Any]


@dataclass
class ServerToolDone:
    """A server tool finished. `call`: the finished tool call object (ToolOutcome.call: Assistants run step shape,
    with results); `output`: what the model sees as the result."""

    call_id: str
    index: int
    name: str
    server: str
    call: dict[str, Any]
    output: str


@dataclass
class ToolTurnDone:
    """Every tool call of the turn was a server tool and has run; another turn follows. `usage`: the turn's."""

    usage: Usage


@dataclass(frozen=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str


@dataclass
class FunctionCallsPending:
    """The turn called functions: the execution waits for their outputs (Assistants: requires_action). The
    turn's server tools have run. The loop stops after this event; a later execution resumes the run."""

    calls: list[FunctionCall]
    usage: Usage  # the turn's
    total: Usage  # the execution's so far


# -- the end --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    code: str  # server_error, rate_limit_exceeded, invalid_prompt, ...
    message: str


@dataclass
class Finished:
    """The execution ends. `status`: completed | incomplete (`reason`: max_completion_tokens | max_prompt_tokens) |
    failed (`error`) | cancelled | expired. `text`: the reply that completes with it (status completed), to save
    with the ending in one write; `total`: the execution's token usage."""

    status: Literal["completed", "incomplete", "failed", "cancelled", "expired"]
    total: Usage
    reason: str | None = None
    error: Failure | None = None
    text: TextDone | None = None


Happening = (
    TextStarted
    | TextDelta
    | TextDone
    | ToolCallStarted
    | ToolArgumentsDelta
    | ToolCallDone
    | ServerToolProgress
    | ServerToolDone
    | ToolTurnDone
    | FunctionCallsPending
    | Finished
)

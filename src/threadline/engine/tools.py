"""The tool interface. Function tools pause the run for the client; server-side tools (file_search,
code_interpreter) run inside the run and record their calls in a `tool_calls` step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..providers.base import ToolSpec

if TYPE_CHECKING:
    from .runtime import EngineRuntime


class ToolFatal(Exception):
    """A server-side tool cannot work at all (e.g. no sandbox): the run fails with this message."""


@dataclass
class ToolContext:
    runtime: EngineRuntime
    run: dict[str, Any]
    thread: dict[str, Any]
    assistant: dict[str, Any]
    tool_config: dict[str, Any]  # the tool entry from the run's `tools`
    include: list[str]
    prior: list[dict[str, Any]] = field(default_factory=list)  # references of earlier calls of this tool in the run


@dataclass
class ToolOutcome:
    output: str  # what the model sees as the tool result
    call: dict[str, Any]  # the finished tool-call object recorded in the step
    message_parts: list[dict[str, Any]] = field(default_factory=list)  # e.g. image_file parts for the reply
    references: dict[str, Any] = field(default_factory=dict)  # data for the reply's annotations


StepDelta = Callable[[dict[str, Any]], Awaitable[None]]


class TextProcessor(Protocol):
    """Rewrites the streamed reply on the fly (e.g. normalises citation markers) and finds its annotations.

    `feed` holds back text that may still become part of a marker or link, so a marker never straddles two
    emitted pieces: each piece's annotations are found on the piece alone and sent on the delta carrying it."""

    def feed(self, text: str) -> str:
        """Text ready to emit (possibly less or more than `text`: held-back text comes out later)."""
        ...

    def flush(self, full_text: str) -> str:
        """At the end of the reply: the held-back text plus anything to append (e.g. citations the model left
        out). `full_text` is the reply emitted so far."""
        ...

    def annotations(self, text: str) -> list[dict[str, Any]]:
        """Annotations over `text`, one emitted piece; start/end indexes count characters from its start."""
        ...


class ServerTool(Protocol):
    type: str  # "file_search" | "code_interpreter"
    function_name: str  # the name the model calls

    def spec(self, tool_config: dict[str, Any]) -> ToolSpec: ...

    def instructions(self, tool_config: dict[str, Any]) -> str: ...

    def first_delta(self, call_id: str) -> dict[str, Any]: ...

    async def execute(self, ctx: ToolContext, call_id: str, arguments: str, delta: StepDelta) -> ToolOutcome: ...

    def text_processor(self, references: list[dict[str, Any]]) -> TextProcessor | None:
        """The reply's processor given the references of this tool's calls in the run (ToolOutcome.references), or
        None when the reply needs none."""
        ...


def function_spec(tool: dict[str, Any]) -> ToolSpec:
    fn = tool["function"]
    return ToolSpec(
        name=fn["name"],
        description=fn.get("description"),
        parameters=fn.get("parameters"),
        strict=bool(fn.get("strict")),
    )

"""Wire objects the engine creates: runs, run steps and assistant messages."""

from __future__ import annotations

from typing import Any

from ..ids import new_id
from ..store import now

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")


def run_object(
    *,
    thread_id: str,
    assistant: dict[str, Any],
    model: str,
    instructions: str,
    tools: list[dict[str, Any]],
    metadata: dict[str, Any],
    temperature: float | None,
    top_p: float | None,
    max_prompt_tokens: int | None,
    max_completion_tokens: int | None,
    truncation_strategy: dict[str, Any],
    tool_choice: Any,
    parallel_tool_calls: bool,
    response_format: Any,
    expires_after_s: int,
) -> dict[str, Any]:
    ts = now()
    return {
        "id": new_id("run"),
        "object": "thread.run",
        "created_at": ts,
        "assistant_id": assistant["id"],
        "thread_id": thread_id,
        "status": "queued",
        "started_at": None,
        "expires_at": ts + expires_after_s,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "required_action": None,
        "last_error": None,
        "model": model,
        "instructions": instructions,
        "tools": tools,
        "metadata": metadata,
        "incomplete_details": None,
        "usage": None,
        "temperature": temperature,
        "top_p": top_p,
        "max_prompt_tokens": max_prompt_tokens,
        "max_completion_tokens": max_completion_tokens,
        "truncation_strategy": truncation_strategy,
        "response_format": response_format,
        "tool_choice": tool_choice,
        "parallel_tool_calls": parallel_tool_calls,
    }


def step_object(run: dict[str, Any], step_type: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("step"),
        "object": "thread.run.step",
        "created_at": now(),
        "run_id": run["id"],
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "type": step_type,
        "status": "in_progress",
        "cancelled_at": None,
        "completed_at": None,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "step_details": details,
        "usage": None,
        "metadata": {},
    }


def assistant_message(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("message"),
        "object": "thread.message",
        "created_at": now(),
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "status": "in_progress",
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": "assistant",
        "content": [],
        "attachments": [],
        "metadata": {},
    }


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


INCLUDE_FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def strip_content(step: dict[str, Any], include: list[str]) -> dict[str, Any]:
    """file_search result content is shown only when the request asked for it with include[]."""
    if INCLUDE_FILE_SEARCH_CONTENT in include or step.get("type") != "tool_calls":
        return step
    calls = step["step_details"]["tool_calls"]
    if not any(c["type"] == "file_search" and c["file_search"].get("results") for c in calls):
        return step
    out = {**step, "step_details": {**step["step_details"], "tool_calls": []}}
    for call in calls:
        if call["type"] == "file_search" and call["file_search"].get("results"):
            results = [{k: v for k, v in r.items() if k != "content"} for r in call["file_search"]["results"]]
            call = {**call, "file_search": {**call["file_search"], "results": results}}
        out["step_details"]["tool_calls"].append(call)
    return out

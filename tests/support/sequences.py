"""The contract's canonical SSE event sequences (../shared/docs/assistants-contract.md), shared by both test tiers."""

from __future__ import annotations

# A plain text reply, from runs.create(stream=True) to `done`.
TEXT_RUN = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]

# submit_tool_outputs(stream=True) when the model then answers in text: the tool_calls step completes with its
# outputs, the run is queued again and continues like a text run.
AFTER_TOOL_OUTPUTS = ["thread.run.step.completed", *TEXT_RUN[1:]]

"""An AssistantEventHandler that keeps what the SDK accumulates from message deltas, to compare streamed
messages with stored ones, and checks that each annotation arrives on the delta carrying its marker text."""

from __future__ import annotations

from typing import Any

from openai import AssistantEventHandler, OpenAI


class AccumulatingHandler(AssistantEventHandler):
    """accumulated: message id -> the SDK's snapshot after the last delta (before `.completed` replaces it);
    annotated_deltas: how many deltas carried annotations; misplaced: annotations whose marker text is not in
    the delta that carried them (or whose indexes do not point at it)."""

    def __init__(self) -> None:
        super().__init__()
        self.accumulated: dict[str, Any] = {}
        self.streamed: dict[tuple[str, int], str] = {}
        self.annotated_deltas = 0
        self.misplaced: list[Any] = []

    def on_message_delta(self, delta: Any, snapshot: Any) -> None:  # noqa: D102
        for part in delta.content or []:
            if part.type != "text" or part.text is None:
                continue
            key = (snapshot.id, part.index)
            before = self.streamed.get(key, "")
            after = before + (part.text.value or "")
            annotations = part.text.annotations or []
            if annotations:
                self.annotated_deltas += 1
            for a in annotations:
                inside = len(before) <= a.start_index < a.end_index <= len(after)
                if not inside or after[a.start_index : a.end_index] != a.text:
                    self.misplaced.append(a)
            self.streamed[key] = after
        self.accumulated[snapshot.id] = snapshot.model_copy(deep=True)


def text_view(message: Any) -> list[tuple[str, Any]]:
    """A message's content as comparable tuples: text values with their annotations, other parts as dumps."""
    out: list[tuple[str, Any]] = []
    for part in message.content:
        if part.type != "text":
            out.append((part.type, getattr(part, part.type).model_dump(exclude_none=True)))
            continue
        annotations = []
        for a in part.text.annotations:
            ref = a.file_citation if a.type == "file_citation" else a.file_path
            annotations.append((a.type, a.text, a.start_index, a.end_index, ref.file_id))
        out.append((part.text.value, annotations))
    return out


def stream_run(client: OpenAI, thread_id: str, assistant_id: str) -> tuple[Any, AccumulatingHandler]:
    """Stream a run to its end through an `AccumulatingHandler`; returns (the stored reply message, the handler).

    Asserts that the run completed, that the SDK's final message equals the stored one, and that what the SDK
    accumulated from the deltas reads the same as the stored message (`text_view`).
    """
    handler = AccumulatingHandler()
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id, event_handler=handler) as s:
        s.until_done()
        final = s.get_final_messages()
    assert s.get_final_run().status == "completed"
    stored = client.beta.threads.messages.retrieve(message_id=final[0].id, thread_id=thread_id)
    assert final[0].model_dump() == stored.model_dump()
    assert text_view(handler.accumulated[stored.id]) == text_view(stored)
    return stored, handler

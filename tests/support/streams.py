"""An AssistantEventHandler that keeps what the SDK accumulates from message deltas, to compare streamed
messages with stored ones, and checks that each annotation arrives on the delta carrying its marker text."""

from __future__ import annotations

from typing import Any

from openai import AssistantEventHandler


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

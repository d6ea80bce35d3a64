"""TEST DOUBLE: the fake model behind threadline for the Open Responses compliance suite
(scripts/open-responses-compliance.sh). The suite's requests run concurrently, so replies come from what each
request holds rather than from a script:

- the last message is a tool result (`function-call-roundtrip`'s second turn) → a text answer quoting it;
- a function `get_weather` is offered (`tool-calling`, `tool-calling-streaming`, `function-call-roundtrip`), or a
  tool is forced by `tool_choice` (`file-search`: threadline's file_search tool) → one call of it;
- anything else (`basic-response`, `streaming-response`, `system-prompt`, `multi-turn`, `image-input`,
  `file-input`, `previous-response-id`, `assistant-phase`) → a short text reply to the last user message.

Command line: ``python -m fakes.open_responses --port 8911`` (run with tests/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import Reply, ToolCallSpec, content_text
from .fake_openai import FakeOpenAI

ARGUMENTS = {"get_weather": {"location": "San Francisco, CA"}}


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [t.get("function", {}).get("name", "") for t in body.get("tools") or [] if t.get("type") == "function"]


def compliance_responder(body: dict[str, Any]) -> Reply:
    """The reply to one Chat Completions request of the suite (see the module docstring)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return Reply(text=f"The tool says: {content_text(last.get('content'))}", chunks=4)
    choice = body.get("tool_choice")
    forced = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    names = _tool_names(body)
    name = forced or ("get_weather" if "get_weather" in names else None)
    if name:
        user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        arguments = ARGUMENTS.get(name, {"query": content_text(user.get("content")) or "query"})
        return Reply(tool_calls=[ToolCallSpec(name, json.dumps(arguments))])
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    asked = content_text(user.get("content")) or "nothing"
    return Reply(text=f"Here is my answer to: {asked[:200]}", chunks=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8911)
    args = parser.parse_args()
    fake = FakeOpenAI(port=args.port)
    fake.responder = compliance_responder
    fake.serve_forever()


if __name__ == "__main__":
    main()

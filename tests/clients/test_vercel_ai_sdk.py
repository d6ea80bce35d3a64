"""The Vercel AI SDK (Node: `@ai-sdk/open-responses` and `@ai-sdk/openai`'s Responses model, see node/responses.mjs)
against threadline's POST /v1/responses, with the scripted fake LLM. Node packages: scripts/setup-node-clients.sh."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fakes import Reply, ToolCallSpec

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def node() -> str:
    exe = shutil.which("node")
    if exe is None or not (NODE_DIR / "node_modules" / "ai").is_dir():
        pytest.skip("node and tests/clients/node/node_modules are needed: run scripts/setup-node-clients.sh")
    return exe


def test_vercel_ai_sdk_responses(node, responses_api, fake_llm):
    fake_llm.script(
        Reply(text="Hello there, friend.", chunks=2),
        Reply(text="1, 2, 3, 4, 5", chunks=5),
        Reply(tool_calls=[ToolCallSpec("get_weather", json.dumps({"city": "Paris"}))]),
        Reply(text="It is sunny in Paris."),
    )
    proc = subprocess.run(
        [node, "responses.mjs", responses_api.base_url],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["openResponsesText"] == "Hello there, friend." and out["openResponsesFinish"] == "stop"
    assert out["openResponsesUsage"]["totalTokens"] > 0
    assert out["streamedText"] == "1, 2, 3, 4, 5" and out["streamedFinish"] == "stop"
    assert out["toolCalls"] == ["Paris"] and out["toolSteps"] == 2
    assert out["toolText"] == "It is sunny in Paris."
    # The tool's output went back to the model in the second request of the round trip.
    assert "sunny in Paris" in json.dumps(fake_llm.requests[3]["messages"])

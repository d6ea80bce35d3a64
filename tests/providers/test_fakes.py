"""The fake LLM servers themselves: official SDK clients accept what they send, and the CLI works."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anthropic
import openai

from fakes import Reply, ToolCallSpec, echo_responder
from threadline.providers.base import ChatMessage, ChatRequest, TextDelta
from threadline.providers.openai_compat import OpenAICompatProvider

ROOT = Path(__file__).resolve().parents[2]


def test_openai_sdk_non_streaming_and_models(fake_openai):
    fake_openai.script(Reply(text="plain answer"), Reply(tool_calls=[ToolCallSpec("f", '{"a": 1}')]))
    client = openai.OpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert completion.choices[0].message.content == "plain answer"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 2
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    call = completion.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("f", {"a": 1})
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "fake-model"]


def test_openai_sdk_embeddings_are_deterministic(fake_openai):
    client = openai.OpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    first = client.embeddings.create(model="e", input=["alpha", "beta"], dimensions=8)  # SDK asks for base64
    again = client.embeddings.create(model="e", input="alpha", dimensions=8, encoding_format="float")
    assert len(first.data) == 2 and len(first.data[0].embedding) == 8
    assert [round(x, 5) for x in first.data[0].embedding] == [round(x, 5) for x in again.data[0].embedding]
    assert first.data[0].embedding != first.data[1].embedding
    assert abs(sum(x * x for x in first.data[1].embedding) - 1.0) < 1e-5


def test_anthropic_sdk_non_streaming(fake_anthropic):
    fake_anthropic.script(Reply(text="Sure.", tool_calls=[ToolCallSpec("g", '{"b": 2}', id="toolu_9")]))
    client = anthropic.Anthropic(api_key="k", base_url=fake_anthropic.base_url, max_retries=0)
    message = client.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "q"}])
    assert message.content[0].text == "Sure."
    assert (message.content[1].id, message.content[1].input) == ("toolu_9", {"b": 2})
    assert message.stop_reason == "tool_use"


def test_responder_and_default_reply(fake_openai):
    fake_openai.responder = echo_responder

    async def ask(text: str) -> str:
        p = OpenAICompatProvider(api_key="k", base_url=fake_openai.base_url)
        events = [e async for e in p.stream(ChatRequest("m", [ChatMessage("user", text)]))]
        await p.aclose()
        return "".join(e.text for e in events if isinstance(e, TextDelta))

    async def many() -> list[str]:
        return await asyncio.gather(*(ask(f"message {i}") for i in range(20)))

    assert asyncio.run(many()) == [f"You said: message {i}" for i in range(20)]
    fake_openai.responder = None
    assert asyncio.run(ask("x")).startswith("Hello! This is a deterministic reply")


def test_pacing_and_early_close(fake_openai):
    fake_openai.script(Reply(text=" ".join(["w"] * 40), ttft_s=0.2, tokens_per_s=20))

    async def go() -> tuple[float, float]:
        p = OpenAICompatProvider(api_key="k", base_url=fake_openai.base_url)
        started = time.monotonic()
        stream = p.stream(ChatRequest("m", [ChatMessage("user", "q")]))
        async for event in stream:
            assert isinstance(event, TextDelta)
            break
        ttft = time.monotonic() - started
        await stream.aclose()  # what the engine does on cancel: the HTTP stream closes, no hang
        closed = time.monotonic() - started
        await p.aclose()
        return ttft, closed

    ttft, closed = asyncio.run(go())
    assert 0.2 <= ttft < 1.0
    assert closed < 1.0  # the full reply would take ~2.2 s


def test_fake_runs_as_a_separate_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_openai", "--port", "0", "--ttft-ms", "10", "--tokens-per-s", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert line and "listening on http://127.0.0.1:" in line[0], line
        base_url = line[0].split("listening on ")[1].strip()
        with urllib.request.urlopen(base_url + "/models", timeout=5) as response:
            assert json.load(response)["data"][0]["id"] == "gpt-4o-mini"
    finally:
        proc.terminate()
        proc.wait(10)

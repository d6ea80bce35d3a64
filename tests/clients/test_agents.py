"""The OpenAI Agents SDK against threadline: an agent with a function tool and a handoff through the SDK's Responses
model (`OpenAIResponsesModel` on an `AsyncOpenAI` pointed at the server), and `OpenAIConversationsSession` on
/v1/conversations. Runs in .venv-agents (scripts/client-venvs.sh); skipped where the SDK is not installed."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # traces would go to OpenAI's servers
agents = pytest.importorskip("agents", reason="the OpenAI Agents SDK is installed in .venv-agents (make test)")

import openai  # noqa: E402
from agents import (  # noqa: E402
    Agent,
    OpenAIConversationsSession,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI  # noqa: E402

from fakes import Reply, ToolCallSpec  # noqa: E402

set_tracing_disabled(True)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)


def _texts(messages: list[dict]) -> list[str]:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append(f"{m.get('role')}: {content or ''}")
    return out


async def test_agent_with_function_tool_and_handoff(responses_api, fake_llm):
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny and 24 degrees in {city}"

    client = _client(responses_api.base_url)
    model = OpenAIResponsesModel(model="gpt-4o", openai_client=client)
    french = Agent(name="french_agent", instructions="Answer in French.", model=model)
    triage = Agent(
        name="triage_agent",
        instructions="Look up the weather, then hand off to the French agent.",
        tools=[get_weather],
        handoffs=[french],
        model=model,
    )
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", json.dumps({"city": "Paris"}))]),
        Reply(tool_calls=[ToolCallSpec("transfer_to_french_agent", "{}")]),
        Reply(text="Il fait beau à Paris : 24 degrés.", chunks=3),
    )
    result = await Runner.run(triage, "What's the weather in Paris? Answer in French.")
    await client.close()

    assert calls == ["Paris"]
    assert result.last_agent.name == "french_agent"
    assert result.final_output == "Il fait beau à Paris : 24 degrés."
    assert len(fake_llm.requests) == 3
    first, second, third = fake_llm.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"get_weather", "transfer_to_french_agent"}
    # The tool's result reaches the model on the next turn, as the function call's output.
    assert any("sunny and 24 degrees in Paris" in t for t in _texts(second["messages"]))
    # After the handoff the French agent's instructions lead the prompt.
    assert "Answer in French." in _texts(third["messages"])[0]


async def test_agent_run_with_conversations_session(responses_api, fake_llm):
    client = _client(responses_api.base_url)
    session = OpenAIConversationsSession(openai_client=client)
    model = OpenAIResponsesModel(model="gpt-4o", openai_client=client)
    agent = Agent(name="assistant", instructions="Be brief.", model=model)
    fake_llm.script(Reply(text="Noted: papaya."), Reply(text="The code word is papaya."))
    await Runner.run(agent, "Remember the code word papaya.", session=session)
    result = await Runner.run(agent, "What was the code word?", session=session)
    assert result.final_output == "The code word is papaya."
    # The second turn's prompt holds the first turn, read back from the conversation.
    assert any("papaya" in t for t in _texts(fake_llm.requests[1]["messages"][:-1]))
    items = await session.get_items()
    assert [i.get("role") for i in items] == ["user", "assistant", "user", "assistant"]
    await session.clear_session()
    await client.close()


async def test_conversations_session_stores_and_pops_items(server):
    """OpenAIConversationsSession alone: /v1/conversations (served today) as the agent's memory."""
    client = _client(server.base_url)
    session = OpenAIConversationsSession(openai_client=client)
    await session.add_items(
        [
            {"role": "user", "content": "Hi, I'm Ada."},
            {"role": "assistant", "content": "Hello Ada!"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": "ada"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "Ada Lovelace"},
        ]
    )
    conversation_id = session.session_id
    assert conversation_id.startswith("conv_")
    items = await session.get_items()
    assert [i.get("type") for i in items] == ["message", "message", "function_call", "function_call_output"]
    assert items[0]["role"] == "user" and items[0]["content"][0]["text"] == "Hi, I'm Ada."
    assert items[2]["name"] == "lookup" and items[3]["output"] == "Ada Lovelace"
    assert [i["type"] for i in await session.get_items(limit=2)] == ["function_call", "function_call_output"]
    popped = await session.pop_item()
    assert popped is not None and popped["type"] == "function_call_output"
    assert len(await session.get_items()) == 3
    # The same conversation, reopened by id (another process would do this), sees the same history.
    again = OpenAIConversationsSession(conversation_id=conversation_id, openai_client=client)
    assert [i["id"] for i in await again.get_items()] == [i["id"] for i in items[:3]]
    await session.clear_session()
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(conversation_id)
    await client.close()

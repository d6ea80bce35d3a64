"""`prompt: {"id": "asst_…"}`: a response takes an assistant's model, instructions, tools and tool_resources as
its settings (contract §7.4, threadline's extension); fields the request sends win."""

from __future__ import annotations

import json

import openai

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.sdk import vector_stores

from .test_create import MODEL

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _assistant(client: openai.OpenAI, **extra: object) -> str:
    return client.beta.assistants.create(
        model="fake-model", instructions="You are a weather bot.", tools=[WEATHER], **extra
    ).id


def test_inherits_model_instructions_and_tools(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    asst_id = _assistant(client)
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Oslo"}')]))
    response = client.responses.create(prompt={"id": asst_id}, input="Weather in Oslo?")
    sent = fake_llm.requests[-1]
    assert sent["model"] == "fake-model"
    assert sent["messages"][0] == {"role": "system", "content": "You are a weather bot."}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert response.model == "fake-model" and response.instructions == "You are a weather bot."
    assert response.prompt is not None and response.prompt.id == asst_id
    [call] = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    [tool] = response.tools
    assert tool.type == "function" and tool.name == "get_weather" and tool.strict is False
    # the call is answered on the chain, naming the assistant again
    fake_llm.script(Reply(text="Sunny."))
    follow = client.responses.create(
        prompt={"id": asst_id},
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert follow.output_text == "Sunny."
    assert fake_llm.requests[-1]["messages"][-1]["role"] == "tool"


def test_request_fields_override(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    asst_id = _assistant(client)
    fake_llm.script(Reply(text="ok"))
    response = client.responses.create(
        prompt={"id": asst_id}, model=MODEL, instructions="Answer in French.", tools=[], input="Hi"
    )
    sent = fake_llm.requests[-1]
    assert sent["model"] == MODEL and response.model == MODEL
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert "weather bot" not in json.dumps(sent["messages"])
    assert not sent.get("tools") and response.tools == []
    assert response.instructions == "Answer in French."


def test_tool_resources_become_tool_fields(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    store = vector_stores(client).create(name="kb")
    upload = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants")
    asst = client.beta.assistants.create(
        model="fake-model",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 3}}, {"type": "code_interpreter"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}, "code_interpreter": {"file_ids": [upload.id]}},
    )
    fake_llm.script(Reply(text="ok"))
    response = client.responses.create(prompt={"id": asst.id}, input="Hi")
    tools = [t.model_dump(exclude_none=True) for t in response.tools]
    assert tools[0]["type"] == "file_search" and tools[0]["vector_store_ids"] == [store.id]
    assert tools[0]["max_num_results"] == 3
    assert tools[1]["type"] == "code_interpreter"
    assert tools[1]["container"] == {"type": "auto", "file_ids": [upload.id]}
    assert {t["type"] for t in fake_llm.requests[-1]["tools"]} == {"function"}


def test_unknown_assistant_and_templates(client: openai.OpenAI) -> None:
    try:
        client.responses.create(prompt={"id": "asst_nope"}, input="Hi")
    except openai.NotFoundError as exc:
        assert exc.body["param"] == "prompt.id" and "asst_nope" in exc.body["message"]
    else:
        raise AssertionError("an unknown assistant was accepted")
    try:
        client.responses.create(prompt={"id": "pmpt_123"}, input="Hi")
    except openai.BadRequestError as exc:
        assert exc.body["param"] == "prompt.id" and "not supported" in exc.body["message"]
    else:
        raise AssertionError("a prompt template was accepted")

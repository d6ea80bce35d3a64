"""Assistants CRUD through the official SDK (contract §1.1, §2.1)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .helpers import check_pagination, expect_error

FUNCTION_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
FILE_SEARCH_TOOL = {
    "type": "file_search",
    "file_search": {"max_num_results": 7, "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.25}},
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "description": "An answer object.",
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        "strict": True,
    },
}


def dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json", by_alias=True)


@pytest.fixture
def text_file(client: openai.OpenAI) -> str:
    return client.files.create(file=("notes.txt", b"some notes\n"), purpose="assistants").id


def test_create_with_every_field(client: openai.OpenAI, text_file: str) -> None:
    created = client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        description="Helps with maths.",
        instructions="You are a personal math tutor.",
        tools=[{"type": "code_interpreter"}, FILE_SEARCH_TOOL, FUNCTION_TOOL],
        tool_resources={"code_interpreter": {"file_ids": [text_file]}},
        metadata={"team": "maths", "level": "2"},
        temperature=0.3,
        top_p=0.9,
        response_format=JSON_SCHEMA_FORMAT,
    )
    assert created.id.startswith("asst_") and len(created.id) > len("asst_")
    assert created.object == "assistant"
    assert isinstance(created.created_at, int) and created.created_at > 1_600_000_000
    assert (created.name, created.description, created.model) == ("Math Tutor", "Helps with maths.", "gpt-4o")
    assert created.instructions == "You are a personal math tutor."
    tools = [dump(t) for t in created.tools]
    assert tools[0] == {"type": "code_interpreter"}
    assert tools[1]["type"] == "file_search"
    assert tools[1]["file_search"]["max_num_results"] == 7
    assert tools[1]["file_search"]["ranking_options"] == {"ranker": "default_2024_08_21", "score_threshold": 0.25}
    assert tools[2]["function"]["name"] == "get_weather"
    assert tools[2]["function"]["parameters"] == FUNCTION_TOOL["function"]["parameters"]
    assert tools[2]["function"]["strict"] is True
    assert tools[2]["function"]["description"] == "Current weather for a city."
    assert created.tool_resources.code_interpreter.file_ids == [text_file]
    assert created.metadata == {"team": "maths", "level": "2"}
    assert (created.temperature, created.top_p) == (0.3, 0.9)
    rf = dump(created.response_format)
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "answer"
    assert rf["json_schema"]["schema"] == JSON_SCHEMA_FORMAT["json_schema"]["schema"]
    assert rf["json_schema"]["strict"] is True

    fetched = client.beta.assistants.retrieve(created.id)
    assert dump(fetched) == dump(created)


def test_defaults(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="gpt-4o-mini")
    assert a.name is None and a.description is None and a.instructions is None
    assert a.tools == []
    assert a.metadata == {}
    assert (a.temperature, a.top_p) == (1.0, 1.0)
    assert a.response_format == "auto"


def test_file_search_tool_defaults(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="m", tools=[{"type": "file_search"}])
    fs = dump(a.tools[0])
    assert fs["type"] == "file_search"
    ranking = (fs.get("file_search") or {}).get("ranking_options")
    if ranking is not None:  # spec: "auto" ranker and score_threshold 0 when not given
        assert ranking == {"ranker": "auto", "score_threshold": 0.0}


def test_function_without_parameters(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="m", tools=[{"type": "function", "function": {"name": "ping"}}])
    fn = dump(a.tools[0])["function"]
    assert fn["name"] == "ping"
    assert not fn.get("strict")


@pytest.mark.parametrize(
    "response_format",
    ["auto", {"type": "text"}, {"type": "json_object"}, JSON_SCHEMA_FORMAT],
    ids=["auto", "text", "json_object", "json_schema"],
)
def test_response_format_variants(client: openai.OpenAI, response_format: Any) -> None:
    a = client.beta.assistants.create(model="m", response_format=response_format)
    got = client.beta.assistants.retrieve(a.id).response_format
    got = got if isinstance(got, str) else dump(got)
    if isinstance(response_format, str):
        assert got == response_format
    else:
        assert got["type"] == response_format["type"]
        if "json_schema" in response_format:
            assert got["json_schema"]["schema"] == response_format["json_schema"]["schema"]


def test_modify(client: openai.OpenAI, text_file: str) -> None:
    a = client.beta.assistants.create(
        model="gpt-4o", name="before", instructions="keep me", metadata={"a": "1"}, tools=[{"type": "code_interpreter"}]
    )
    m = client.beta.assistants.update(
        a.id,
        name="after",
        model="gpt-4.1",
        metadata={"b": "2"},
        tools=[FUNCTION_TOOL],
        tool_resources={"code_interpreter": {"file_ids": [text_file]}},
        temperature=1.5,
        response_format={"type": "json_object"},
    )
    assert m.id == a.id and m.created_at == a.created_at
    assert (m.name, m.model, m.instructions) == ("after", "gpt-4.1", "keep me")
    assert m.metadata == {"b": "2"}
    assert [t.type for t in m.tools] == ["function"]
    assert m.tool_resources.code_interpreter.file_ids == [text_file]
    assert m.temperature == 1.5 and m.top_p == 1.0
    assert dump(m.response_format) == {"type": "json_object"}
    assert dump(client.beta.assistants.retrieve(a.id)) == dump(m)

    # Setting a field to null clears it; fields not sent stay as they were.
    cleared = client.beta.assistants.update(a.id, name=None, metadata={})
    assert cleared.name is None and cleared.metadata == {} and cleared.instructions == "keep me"
    assert cleared.model == "gpt-4.1"


def test_delete(client: openai.OpenAI) -> None:
    a = client.beta.assistants.create(model="m")
    d = client.beta.assistants.delete(a.id)
    assert (d.id, d.object, d.deleted) == (a.id, "assistant.deleted", True)
    expect_error(
        openai.NotFoundError, lambda: client.beta.assistants.retrieve(a.id), f"No assistant found with id '{a.id}'."
    )
    expect_error(openai.NotFoundError, lambda: client.beta.assistants.delete(a.id))
    expect_error(openai.NotFoundError, lambda: client.beta.assistants.update(a.id, name="x"))
    assert a.id not in [x.id for x in client.beta.assistants.list(limit=100)]


def test_pagination(client: openai.OpenAI, http: Any) -> None:
    ids = [client.beta.assistants.create(model="m", name=f"p{i}").id for i in range(25)]
    check_pagination(client.beta.assistants.list, http, "/assistants", ids, exact=False)


def test_list_defaults(client: openai.OpenAI, http: Any) -> None:
    for i in range(3):
        client.beta.assistants.create(model="m", name=f"d{i}")
    body = http.get("/assistants").json()
    assert len(body["data"]) <= 20
    created = [a["created_at"] for a in body["data"]]
    assert created == sorted(created, reverse=True)  # default order is desc
    assert body["data"][0]["name"] == "d2"


def test_not_found_and_bad_ids(client: openai.OpenAI) -> None:
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.assistants.retrieve("asst_x"),
        "No assistant found with id 'asst_x'.",
    )
    err = expect_error(
        openai.BadRequestError,
        lambda: client.beta.assistants.retrieve("undefined"),
        "Invalid 'assistant_id': 'undefined'. Expected an ID that begins with 'asst'.",
    )
    assert err["type"] == "invalid_request_error"


def test_missing_file_in_tool_resources(client: openai.OpenAI) -> None:
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.assistants.create(
            model="m", tool_resources={"code_interpreter": {"file_ids": ["file-doesnotexist"]}}
        ),
        "No file found with id 'file-doesnotexist'.",
    )


def test_unknown_and_invalid_fields(client: openai.OpenAI) -> None:
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.assistants.create(model="m", extra_body={"colour": "blue"}),
        contains="colour",
    )
    expect_error(openai.BadRequestError, lambda: client.beta.assistants.create(model="m", temperature=3))
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.assistants.create(model="m", tools=[{"type": "function", "function": {"name": "a b"}}]),
    )
    expect_error(openai.BadRequestError, lambda: client.beta.assistants.create(model="m", name="x" * 257))
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.assistants.create(model="m", metadata={f"k{i}": "v" for i in range(17)}),
    )


def test_deleting_a_file_removes_it_from_tool_resources(client: openai.OpenAI, text_file: str) -> None:
    a = client.beta.assistants.create(model="m", tool_resources={"code_interpreter": {"file_ids": [text_file]}})
    client.files.delete(text_file)
    resources = client.beta.assistants.retrieve(a.id).tool_resources
    assert resources.code_interpreter is None or text_file not in resources.code_interpreter.file_ids

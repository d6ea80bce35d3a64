"""The request model of POST /v1/responses (contract §2.1), checked without a server: the route comes with the
execution of responses. Errors go through the same translation the server's validation handler uses."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from threadline.api.errors import _most_specific, validation_error
from threadline.services.response_models import InputTokensRequest, ResponseCreate


def error(body: Any, model: type[pydantic.BaseModel] = ResponseCreate) -> dict[str, Any]:
    """The OpenAI error body the server would answer `body` with."""
    try:
        model.model_validate(body)
    except pydantic.ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        return validation_error(_most_specific(errors), body).body()["error"]
    raise AssertionError(f"accepted: {body}")


FULL = {
    "model": "gpt-4o",
    "input": [
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "phase": "final_answer",
            "content": [
                {
                    "type": "output_text",
                    "text": "x",
                    "annotations": [{"type": "file_citation", "file_id": "file-1", "filename": "a", "index": 1}],
                    "logprobs": [],
                }
            ],
        },
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}]},
        {"type": "item_reference", "id": "msg_0"},
        {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA=="}]},
        {"role": "user", "content": [{"type": "input_file", "filename": "a.pdf", "file_data": "data:..."}]},
    ],
    "instructions": "Be terse.",
    "previous_response_id": "resp_1",
    "store": True,
    "background": False,
    "stream": True,
    "stream_options": {"include_obfuscation": False},
    "include": ["file_search_call.results", "reasoning.encrypted_content"],
    "tools": [
        {"type": "function", "name": "f", "description": "", "parameters": {"type": "object"}, "strict": True},
        {
            "type": "file_search",
            "vector_store_ids": ["vs_1"],
            "max_num_results": 5,
            "ranking_options": {"ranker": "default-2024-11-15", "score_threshold": 0.2},
            "filters": {"type": "eq", "key": "k", "value": "v"},
        },
        {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-1"], "memory_limit": "4g"}},
        {"type": "code_interpreter", "container": "cntr_1"},
    ],
    "tool_choice": {"type": "function", "name": "f"},
    "parallel_tool_calls": False,
    "max_output_tokens": 16,
    "max_tool_calls": 3,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_logprobs": 20,
    "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
    "reasoning": {"effort": "low", "summary": "auto"},
    "truncation": "auto",
    "context_management": [{"type": "compaction", "compact_threshold": 1000}],
    "prompt": {"id": "pmpt_1", "version": "2", "variables": {"x": "y"}},
    "metadata": {"k": "v"},
    "safety_identifier": "u1",
    "prompt_cache_key": "key",
    "prompt_cache_retention": "24h",
    "service_tier": "flex",
    "user": "u",
}


def test_every_field_is_accepted() -> None:
    body = ResponseCreate.model_validate(FULL)
    assert len(body.input) == len(FULL["input"]) and body.text.format.schema_ == {"type": "object"}
    # what the SDKs send: empty include, explicit stream false, description "", conversation as an object
    ResponseCreate.model_validate({"model": "m", "include": [], "stream": False, "input": "x"})
    ResponseCreate.model_validate({"conversation": {"id": "conv_1"}})
    ResponseCreate.model_validate({})


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": 5}, "model", "invalid_type"),
        ({"no_such": 1}, "no_such", None),
        ({"input": 5}, "input", None),
        ({"input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
        ({"input": [{"role": "boss", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({"input": [{"role": "user", "content": "x", "status": None, "x": 1}]}, "input[0].x", "unknown_parameter"),
        ({"input": [{"type": "web_search_call", "id": "ws"}]}, "input[0].type", "invalid_value"),
        (
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        ({"input": [{"type": "function_call_output", "call_id": "c" * 65, "output": "x"}]}, "input[0].call_id", None),
        ({"input": [{"type": "file_search_call", "status": "completed", "queries": []}]}, "input[0].id", None),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0]", None),
        ({"input": [5]}, "input[0]", "invalid_type"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "invalid_value"),
        ({"tools": [{"type": "function", "name": "has space"}]}, "tools[0].name", None),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, None, None),
        ({"tools": [{"type": "file_search"}]}, "tools[0].vector_store_ids", "missing_required_parameter"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].container", "missing_required_parameter"),
        ({"tools": [{"type": "file_search", "vector_store_ids": [], "max_num_results": 51}]}, None, None),
        ({"tool_choice": "sometimes"}, "tool_choice", None),
        ({"max_output_tokens": 15}, "max_output_tokens", "integer_below_min_value"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"top_p": -1.0}, "top_p", "decimal_below_min_value"),
        ({"top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
        ({"include": ["everything"]}, "include[0]", "invalid_value"),
        ({"text": {"format": {"type": "json_schema", "json_schema": {"name": "x"}}}}, None, None),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema", None),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value"),
        ({"truncation": "sometimes"}, "truncation", "invalid_value"),
        ({"metadata": {"k": 1}}, "metadata", None),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", None),
        ({"safety_identifier": "x" * 65}, "safety_identifier", "string_above_max_length"),
        ({"service_tier": "gold"}, "service_tier", "invalid_value"),
        ({"context_management": []}, "context_management", "array_below_min_length"),
        ({"stream": "yes"}, "stream", "invalid_type"),
        ({"store": False, "background": True}, None, None),
        ({"stream_options": {"include_obfuscation": True}}, None, None),
        ({"previous_response_id": "resp_1", "conversation": "conv_1"}, None, None),
        ({"conversation": 5}, "conversation", None),
        ({"input": "x" * (10_485_760 + 1)}, "input", None),
    ],
)
def test_bad_fields_are_named(body: dict[str, Any], param: str | None, code: str | None) -> None:
    err = error(body)
    assert err["type"] == "invalid_request_error" and err["message"]
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err


def test_mutually_exclusive_state() -> None:
    err = error({"previous_response_id": "resp_1", "conversation": "conv_1"})
    assert err["message"] == (
        "Mutually exclusive parameters: 'previous_response_id' and 'conversation'. Ensure you are only providing "
        "one of these parameters."
    )
    assert (
        "Mutually exclusive" in error({"previous_response_id": "r", "conversation": "c"}, InputTokensRequest)["message"]
    )


def test_input_tokens_body_takes_only_its_fields() -> None:
    InputTokensRequest.model_validate({k: FULL[k] for k in ("model", "input", "tools", "text", "reasoning")})
    assert error({"stream": True}, InputTokensRequest)["param"] == "stream"

"""The spec validator itself: it must accept good bodies and fail tests on bad ones."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import openai
import pytest

from support.schemas import ResponseValidator, SchemaMismatch, find_operation, validate
from support.sdk import http_module, make_client

ASSISTANT = {
    "id": "asst_abc123",
    "object": "assistant",
    "created_at": 1698984975,
    "name": "Math Tutor",
    "description": None,
    "model": "gpt-4o",
    "instructions": "Solve.",
    "tools": [{"type": "code_interpreter"}],
    "tool_resources": {},
    "metadata": {},
    "top_p": 1.0,
    "temperature": 1.0,
    "response_format": "auto",
}


def test_validate_accepts_spec_example() -> None:
    validate("AssistantObject", ASSISTANT)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"model": None}, "model"),
        ({"object": "assistants"}, "object"),
        ({"tools": [{"type": "browser"}]}, "tools"),
        ({"metadata": "x"}, "metadata"),
        ({"created_at": "yesterday"}, "created_at"),
    ],
)
def test_validate_rejects_wrong_bodies(change: dict, where: str) -> None:
    with pytest.raises(SchemaMismatch, match=where):
        validate("AssistantObject", {**ASSISTANT, **change})


def test_validate_rejects_missing_required_field() -> None:
    body = dict(ASSISTANT)
    del body["tools"]
    with pytest.raises(SchemaMismatch, match="'tools' is a required property"):
        validate("AssistantObject", body)


def test_nullable_translation_for_run_object() -> None:
    run = {
        "id": "run_1",
        "object": "thread.run",
        "created_at": 1,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "status": "queued",
        "required_action": None,
        "last_error": None,
        "expires_at": 601,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "model": "m",
        "instructions": "",
        "tools": [],
        "metadata": {},
        "usage": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": "auto",
    }
    validate("RunObject", run)
    validate("RunObject", {**run, "truncation_strategy": None, "tool_choice": None, "response_format": None})
    with pytest.raises(SchemaMismatch):
        validate("RunObject", {**run, "status": "running"})


def test_find_operation_prefers_literal_paths() -> None:
    assert find_operation("POST", "/v1/threads/runs")[0] == "/threads/runs"
    assert find_operation("POST", "/v1/threads/thread_1")[0] == "/threads/{thread_id}"
    assert (
        find_operation("GET", "/v1/threads/thread_1/messages/msg_1")[0] == "/threads/{thread_id}/messages/{message_id}"
    )
    assert find_operation("GET", "/health") is None


def _mock_client(validator: ResponseValidator, status: int, body: dict) -> openai.OpenAI:
    http = http_module()

    def handler(request):  # noqa: ANN001, ANN202
        return http.Response(status, json=body)

    client = make_client("http://127.0.0.1:9/v1", validator=validator)
    client._client = openai.DefaultHttpxClient(
        transport=http.MockTransport(handler), event_hooks={"response": [validator]}
    )
    return client


def test_hook_flags_wrong_success_body() -> None:
    validator = ResponseValidator()
    client = _mock_client(validator, 200, {**ASSISTANT, "model": 5})
    # openai 3.x lets the hook's exception through; 1.x wraps it in APIConnectionError.
    with pytest.raises((SchemaMismatch, openai.APIConnectionError)) as info:
        client.beta.assistants.retrieve("asst_abc123")
    cause = info.value if isinstance(info.value, SchemaMismatch) else info.value.__cause__
    assert isinstance(cause, SchemaMismatch)
    assert "at model: 5 is not of type 'string'" in str(cause)
    assert validator.failures and "GET /v1/assistants/asst_abc123 -> 200" in validator.failures[0]
    with pytest.raises(SchemaMismatch, match="1 response"):
        validator.assert_clean()
    assert validator.failures == []


def test_hook_flags_wrong_error_envelope() -> None:
    validator = ResponseValidator()
    client = _mock_client(validator, 404, {"detail": "Not Found"})
    with pytest.raises((SchemaMismatch, openai.APIConnectionError)):
        client.beta.assistants.retrieve("asst_abc123")
    assert validator.failures and "ErrorResponse" in validator.failures[0]


def test_hook_accepts_good_bodies() -> None:
    validator = ResponseValidator()
    client = _mock_client(validator, 200, ASSISTANT)
    assert client.beta.assistants.retrieve("asst_abc123").id == "asst_abc123"
    error = {
        "error": {
            "message": "No assistant found with id 'asst_x'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    client = _mock_client(validator, 404, error)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve("asst_x")
    assert validator.failures == [] and validator.checked == 2


def test_mismatch_fails_a_test_that_swallows_the_error(tmp_path: Path) -> None:
    """Run a small pytest session whose test catches the error: the validator fixture must still fail it."""
    tests_dir = Path(__file__).resolve().parents[1]
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests_dir)!r})\npytest_plugins = ['support.fixtures']\n"
    )
    bad = {**ASSISTANT, "object": "wrong"}
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            from sdk.test_validation import _mock_client

            def test_swallows(validator):
                client = _mock_client(validator, 200, {bad!r})
                try:
                    client.beta.assistants.retrieve("asst_abc123")
                except Exception:
                    pass  # a careless test: the fixture must still fail it
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"\b1 passed\b.*\b1 error\b", proc.stdout), proc.stdout
    assert "did not match the spec" in proc.stdout

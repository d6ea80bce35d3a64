"""Bad input against every foundation endpoint, with raw HTTP: always a 4xx in the OpenAI error envelope, never a 500.

Each case is one request. Bodies are given as `json=` (serialised by httpx), `content=` (raw bytes, sent as
application/json unless headers say otherwise), or `files=`/`data=` (multipart). Path placeholders such as {asst}
are filled with real objects created once per server.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.schemas import ResponseValidator
from support.sdk import raw_http_client
from support.server import ServerHandle

from .helpers import check_error_response, parse_raw_response

LONG = "x" * 513
META_17 = {f"k{i}": "v" for i in range(17)}
META_LONG_KEY = {"k" * 65: "v"}
META_LONG_VALUE = {"k": LONG}

# (id, method, path, request kwargs, expected status)
Case = tuple[str, str, str, dict[str, Any], int]

JSON_ENDPOINTS = [
    ("create_assistant", "POST", "/assistants"),
    ("modify_assistant", "POST", "/assistants/{asst}"),
    ("create_thread", "POST", "/threads"),
    ("modify_thread", "POST", "/threads/{thread}"),
    ("create_message", "POST", "/threads/{thread}/messages"),
    ("modify_message", "POST", "/threads/{thread}/messages/{msg}"),
    ("create_upload", "POST", "/uploads"),
    ("complete_upload", "POST", "/uploads/{upload}/complete"),
    ("create_conversation", "POST", "/conversations"),
    ("update_conversation", "POST", "/conversations/{conv}"),
    ("create_conversation_items", "POST", "/conversations/{conv}/items"),
    ("count_input_tokens", "POST", "/responses/input_tokens"),
    ("create_container", "POST", "/containers"),
    ("create_container_file", "POST", "/containers/{cntr}/files"),
    ("create_response", "POST", "/responses"),
    ("compact_response", "POST", "/responses/compact"),
    ("create_admin_key", "POST", "/organization/admin_api_keys"),
    ("create_project", "POST", "/organization/projects"),
    ("modify_project", "POST", "/organization/projects/{proj}"),
    ("create_service_account", "POST", "/organization/projects/{proj}/service_accounts"),
]
BODY_OPTIONAL = ("create_thread", "modify_thread", "modify_assistant", "modify_message", "create_conversation")
MALFORMED_BODIES = {
    "malformed_json": b'{"model": ',
    "json_array": b"[]",
    "json_string": b'"gpt-4o"',
    "json_number": b"5",
    "trailing_garbage": b'{"model": "m"} x',
    "not_utf8": b'{"model": "\xff\xfe"}',
}


def _malformed_cases() -> list[Case]:
    cases: list[Case] = []
    for name, method, path in JSON_ENDPOINTS:
        for body_name, body in MALFORMED_BODIES.items():
            cases.append((f"{name}-{body_name}", method, path, {"content": body}, 400))
        cases.append((f"{name}-unknown_field", method, path, {"json": {"no_such_field": 1}}, 400))
    for name, method, path in JSON_ENDPOINTS:
        if name not in (*BODY_OPTIONAL, "count_input_tokens"):  # bodies optional
            cases.append((f"{name}-empty_body", method, path, {"content": b""}, 400))
            cases.append((f"{name}-json_null", method, path, {"content": b"null"}, 400))
    return cases


def _assistant_cases() -> list[Case]:
    base = {"model": "gpt-4o"}
    bodies: dict[str, dict[str, Any]] = {
        "missing_model": {"name": "x"},
        "model_null": {"model": None},
        "model_int": {"model": 5},
        "model_empty": {"model": ""},
        "name_int": {**base, "name": 5},
        "name_too_long": {**base, "name": "n" * 257},
        "description_too_long": {**base, "description": "d" * 513},
        "instructions_list": {**base, "instructions": ["a"]},
        "temperature_string": {**base, "temperature": "hot"},
        "temperature_too_high": {**base, "temperature": 2.5},
        "top_p_negative": {**base, "top_p": -0.1},
        "tools_object": {**base, "tools": {}},
        "tools_string": {**base, "tools": "code_interpreter"},
        "tool_unknown_type": {**base, "tools": [{"type": "browser"}]},
        "tool_missing_type": {**base, "tools": [{}]},
        "tool_extra_field": {**base, "tools": [{"type": "code_interpreter", "extra": True}]},
        "function_missing": {**base, "tools": [{"type": "function"}]},
        "function_bad_name": {**base, "tools": [{"type": "function", "function": {"name": "has space"}}]},
        "function_name_too_long": {**base, "tools": [{"type": "function", "function": {"name": "f" * 65}}]},
        "function_params_string": {
            **base,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}],
        },
        "function_extra_field": {**base, "tools": [{"type": "function", "function": {"name": "f", "x": 1}}]},
        "file_search_max_results_0": {
            **base,
            "tools": [{"type": "file_search", "file_search": {"max_num_results": 0}}],
        },
        "file_search_max_results_51": {
            **base,
            "tools": [{"type": "file_search", "file_search": {"max_num_results": 51}}],
        },
        "ranking_bad_ranker": {
            **base,
            "tools": [{"type": "file_search", "file_search": {"ranking_options": {"ranker": "best"}}}],
        },
        "ranking_threshold_2": {
            **base,
            "tools": [{"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 2}}}],
        },
        "too_many_tools": {**base, "tools": [{"type": "code_interpreter"}] * 129},
        "metadata_list": {**base, "metadata": []},
        "metadata_int_value": {**base, "metadata": {"a": 1}},
        "metadata_17_keys": {**base, "metadata": META_17},
        "metadata_65_char_key": {**base, "metadata": META_LONG_KEY},
        "metadata_513_char_value": {**base, "metadata": META_LONG_VALUE},
        "response_format_string": {**base, "response_format": "json"},
        "response_format_bad_type": {**base, "response_format": {"type": "xml"}},
        "response_format_extra": {**base, "response_format": {"type": "text", "x": 1}},
        "json_schema_missing": {**base, "response_format": {"type": "json_schema"}},
        "json_schema_no_name": {**base, "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "reasoning_effort_bad": {**base, "reasoning_effort": "extreme"},
        "tool_resources_list": {**base, "tool_resources": []},
        "tool_resources_unknown_tool": {**base, "tool_resources": {"browser": {}}},
        "tool_resources_extra": {**base, "tool_resources": {"code_interpreter": {"file_ids": [], "x": 1}}},
        "file_ids_string": {**base, "tool_resources": {"code_interpreter": {"file_ids": "file-abc"}}},
        "file_ids_int": {**base, "tool_resources": {"code_interpreter": {"file_ids": [5]}}},
        "file_ids_bad_prefix": {**base, "tool_resources": {"code_interpreter": {"file_ids": ["undefined"]}}},
        "file_ids_nul": {**base, "tool_resources": {"code_interpreter": {"file_ids": ["file-\x00"]}}},
        "vector_store_ids_nul": {**base, "tool_resources": {"file_search": {"vector_store_ids": ["vs_\x00"]}}},
        "file_ids_21": {**base, "tool_resources": {"code_interpreter": {"file_ids": ["file-a"] * 21}}},
        "vector_store_ids_bad_prefix": {
            **base,
            "tool_resources": {"file_search": {"vector_store_ids": ["undefined"]}},
        },
        "vector_store_ids_two": {
            **base,
            "tool_resources": {"file_search": {"vector_store_ids": ["vs_a", "vs_b"]}},
        },
    }
    cases: list[Case] = [(f"create_assistant-{k}", "POST", "/assistants", {"json": v}, 400) for k, v in bodies.items()]
    modify = {k: {kk: vv for kk, vv in v.items() if kk != "model"} for k, v in bodies.items() if not k.startswith("m")}
    modify["model_int"] = {"model": 5}
    modify["modify_vector_stores_helper"] = {"tool_resources": {"file_search": {"vector_stores": [{"file_ids": []}]}}}
    cases += [(f"modify_assistant-{k}", "POST", "/assistants/{asst}", {"json": v}, 400) for k, v in modify.items()]
    cases += [
        ("create_assistant-missing_file", "POST", "/assistants", {"json": {**base, **_ci("file-nope")}}, 404),
        ("modify_assistant-missing_file", "POST", "/assistants/{asst}", {"json": _ci("file-nope")}, 404),
        (
            "create_assistant-missing_vector_store",
            "POST",
            "/assistants",
            {"json": {**base, "tool_resources": {"file_search": {"vector_store_ids": ["vs_nope"]}}}},
            404,
        ),
    ]
    return cases


def _ci(file_id: str) -> dict[str, Any]:
    return {"tool_resources": {"code_interpreter": {"file_ids": [file_id]}}}


MESSAGE_BODIES: dict[str, dict[str, Any]] = {
    "missing_role": {"content": "x"},
    "missing_content": {"role": "user"},
    "role_system": {"role": "system", "content": "x"},
    "role_int": {"role": 1, "content": "x"},
    "content_int": {"role": "user", "content": 5},
    "content_null": {"role": "user", "content": None},
    "content_empty_string": {"role": "user", "content": ""},
    "content_empty_list": {"role": "user", "content": []},
    "content_object": {"role": "user", "content": {"type": "text", "text": "x"}},
    "part_unknown_type": {"role": "user", "content": [{"type": "audio", "audio": {}}]},
    "part_text_object": {"role": "user", "content": [{"type": "text", "text": {"value": "x"}}]},
    "part_text_extra": {"role": "user", "content": [{"type": "text", "text": "x", "extra": 1}]},
    "part_image_file_no_id": {"role": "user", "content": [{"type": "image_file", "image_file": {}}]},
    "part_image_file_bad_id": {
        "role": "user",
        "content": [{"type": "image_file", "image_file": {"file_id": "undefined"}}],
    },
    "part_image_bad_detail": {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://e.x/a.png", "detail": "max"}}],
    },
    "part_image_url_empty": {"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]},
    "attachments_object": {"role": "user", "content": "x", "attachments": {}},
    "attachment_no_file": {"role": "user", "content": "x", "attachments": [{"tools": []}]},
    "attachment_bad_id": {"role": "user", "content": "x", "attachments": [{"file_id": "undefined", "tools": []}]},
    "attachment_nul_id": {"role": "user", "content": "x", "attachments": [{"file_id": "file-\x00", "tools": []}]},
    "attachment_bad_tool": {
        "role": "user",
        "content": "x",
        "attachments": [{"file_id": "file-x", "tools": [{"type": "function"}]}],
    },
    "metadata_17_keys": {"role": "user", "content": "x", "metadata": META_17},
    "metadata_65_char_key": {"role": "user", "content": "x", "metadata": META_LONG_KEY},
    "metadata_513_char_value": {"role": "user", "content": "x", "metadata": META_LONG_VALUE},
    "nested_unknown": {"role": "user", "content": "x", "attachments": [{"file_id": "file-x", "tools": [], "y": 1}]},
}


def _thread_and_message_cases() -> list[Case]:
    cases: list[Case] = []
    for k, v in MESSAGE_BODIES.items():
        cases.append((f"create_message-{k}", "POST", "/threads/{thread}/messages", {"json": v}, 400))
        cases.append((f"create_thread-message_{k}", "POST", "/threads", {"json": {"messages": [v]}}, 400))
    thread_bodies: dict[str, Any] = {
        "messages_object": {"messages": {}},
        "messages_string": {"messages": "hi"},
        "metadata_string": {"metadata": "x"},
        "metadata_17_keys": {"metadata": META_17},
        "metadata_65_char_key": {"metadata": META_LONG_KEY},
        "metadata_513_char_value": {"metadata": META_LONG_VALUE},
        "tool_resources_extra": {"tool_resources": {"code_interpreter": {"file_ids": [], "z": 0}}},
        "file_ids_bad_prefix": _ci("undefined"),
        "too_many_messages": {"messages": [{"role": "user", "content": "x"}] * 101},
    }
    for k, v in thread_bodies.items():
        cases.append((f"create_thread-{k}", "POST", "/threads", {"json": v}, 400))
        if k not in ("messages_object", "messages_string", "too_many_messages"):
            cases.append((f"modify_thread-{k}", "POST", "/threads/{thread}", {"json": v}, 400))
    cases += [
        ("modify_thread-messages", "POST", "/threads/{thread}", {"json": {"messages": []}}, 400),
        ("create_thread-missing_file", "POST", "/threads", {"json": _ci("file-nope")}, 404),
        ("modify_thread-missing_file", "POST", "/threads/{thread}", {"json": _ci("file-nope")}, 404),
        (
            "create_message-missing_attachment_file",
            "POST",
            "/threads/{thread}/messages",
            {"json": {"role": "user", "content": "x", "attachments": [{"file_id": "file-nope", "tools": []}]}},
            404,
        ),
        ("modify_message-content", "POST", "/threads/{thread}/messages/{msg}", {"json": {"content": "y"}}, 400),
        (
            "modify_message-metadata_17",
            "POST",
            "/threads/{thread}/messages/{msg}",
            {"json": {"metadata": META_17}},
            400,
        ),
        ("modify_message-metadata_list", "POST", "/threads/{thread}/messages/{msg}", {"json": {"metadata": [1]}}, 400),
    ]
    return cases


def _id_cases() -> list[Case]:
    """Malformed, wrong-prefix, over-long and unknown ids in every path position."""
    paths = [
        ("GET", "/assistants/{}", "asst"),
        ("POST", "/assistants/{}", "asst"),
        ("DELETE", "/assistants/{}", "asst"),
        ("GET", "/threads/{}", "thread"),
        ("POST", "/threads/{}", "thread"),
        ("DELETE", "/threads/{}", "thread"),
        ("GET", "/threads/{}/messages", "thread"),
        ("POST", "/threads/{}/messages", "thread"),
        ("GET", "/threads/{thread}/messages/{}", "msg"),
        ("POST", "/threads/{thread}/messages/{}", "msg"),
        ("DELETE", "/threads/{thread}/messages/{}", "msg"),
        ("GET", "/threads/{}/messages/{msg}", "thread"),
        ("GET", "/files/{}", "file"),
        ("DELETE", "/files/{}", "file"),
        ("GET", "/files/{}/content", "file"),
        ("POST", "/uploads/{}/parts", "upload"),
        ("POST", "/uploads/{}/complete", "upload"),
        ("POST", "/uploads/{}/cancel", "upload"),
        ("GET", "/conversations/{}", "conv"),
        ("POST", "/conversations/{}", "conv"),
        ("DELETE", "/conversations/{}", "conv"),
        ("GET", "/conversations/{}/items", "conv"),
        ("POST", "/conversations/{}/items", "conv"),
        ("GET", "/conversations/{}/items/{conv_item}", "conv"),
        ("DELETE", "/conversations/{}/items/{conv_item}", "conv"),
        ("GET", "/responses/{}", "resp"),
        ("DELETE", "/responses/{}", "resp"),
        ("GET", "/responses/{}/input_items", "resp"),
        ("GET", "/containers/{}", "cntr"),
        ("DELETE", "/containers/{}", "cntr"),
        ("GET", "/containers/{}/files", "cntr"),
        ("POST", "/containers/{}/files", "cntr"),
        ("GET", "/containers/{}/files/{cfile}", "cntr"),
        ("GET", "/containers/{cntr}/files/{}", "cfile"),
        ("DELETE", "/containers/{cntr}/files/{}", "cfile"),
        ("GET", "/containers/{cntr}/files/{}/content", "cfile"),
    ]
    prefixes = {
        "asst": "asst_",
        "thread": "thread_",
        "msg": "msg_",
        "file": "file-",
        "upload": "upload_",
        "conv": "conv_",
        "resp": "resp_",
        "cntr": "cntr_",
        "cfile": "cfile_",
    }
    wrong = {
        "asst": "thread_abc",
        "thread": "asst_abc",
        "msg": "thread_abc",
        "file": "file_abc",
        "upload": "part_abc",
        "conv": "asst_abc",
        "resp": "run_abc",
        "cntr": "conv_abc",
        "cfile": "file-abc",
    }
    bodies = {
        "/messages": {"role": "user", "content": "x"},
        "/complete": {"part_ids": ["part_x"]},
        "/assistants/{}": {"name": "x"},
        "/threads/{}": {"metadata": {}},
        "/messages/{}": {"metadata": {}},
        "/conversations/{}": {"metadata": {}},
        "/items": {"items": [{"role": "user", "content": "x"}]},
        "/containers/{}/files": {"file_id": "file-abc"},
    }
    cases: list[Case] = []
    for method, template, kind in paths:
        kwargs: dict[str, Any] = {}
        if method == "POST":
            if template.endswith("/parts"):
                kwargs = {"files": {"data": ("upload", b"x", "application/octet-stream")}}
            else:
                kwargs = {"json": next((b for suffix, b in bodies.items() if template.endswith(suffix)), {})}
        name = f"{method.lower()}_{template.strip('/').replace('/', '_').replace('{}', 'ID')}"
        values = {
            "undefined": ("undefined", 400),
            "wrong_prefix": (wrong[kind], 400),
            "prefix_only": (prefixes[kind], 400),
            "too_long": (prefixes[kind] + "a" * 200, 400),
            "unknown": (prefixes[kind] + "doesnotexist", 404),
            "percent_encoded_nul": (prefixes[kind] + "%00x", 400),  # PostgreSQL text cannot hold NUL
        }
        for label, (value, status) in values.items():
            path = template.replace("{}", value, 1)
            cases.append((f"{name}-{label}", method, path, kwargs, status))
    return cases


def _list_cases() -> list[Case]:
    lists = ["/assistants", "/threads/{thread}/messages", "/files"]
    cases: list[Case] = []
    for path in lists:
        name = path.strip("/").replace("/", "_").replace("{thread}", "T")
        for label, params in {
            "limit_0": {"limit": "0"},
            "limit_negative": {"limit": "-1"},
            "limit_abc": {"limit": "abc"},
            "limit_float": {"limit": "1.5"},
            "order_sideways": {"order": "sideways"},
            "order_upper": {"order": "ASC"},
        }.items():
            cases.append((f"list_{name}-{label}", "GET", path, {"params": params}, 400))
        for label, params in {"after_nul": {"after": "x\x00"}, "before_nul": {"before": "\x00"}}.items():
            if not (path == "/files" and label == "before_nul"):
                cases.append((f"list_{name}-{label}", "GET", path, {"params": params}, 400))
        too_many = "10001" if path == "/files" else "101"
        cases.append((f"list_{name}-limit_{too_many}", "GET", path, {"params": {"limit": too_many}}, 400))
    for path in ("/conversations/{conv}/items", "/responses/{resp}/input_items"):  # no `before` on these
        name = path.strip("/").replace("/", "_").replace("{conv}", "C").replace("{resp}", "R")
        for label, params in {
            "limit_0": {"limit": "0"},
            "limit_abc": {"limit": "abc"},
            "limit_101": {"limit": "101"},
            "order_sideways": {"order": "sideways"},
            "after_nul": {"after": "x\x00"},
            "include_unknown": {"include[]": "everything"},
            "include_plain_unknown": {"include": "message.everything"},
        }.items():
            cases.append((f"list_{name}-{label}", "GET", path, {"params": params}, 400))
    cases += [
        ("list_messages-run_id_nul", "GET", "/threads/{thread}/messages", {"params": {"run_id": "run_\x00"}}, 400),
        ("list_files-purpose_nul", "GET", "/files", {"params": {"purpose": "batch\x00"}}, 400),
    ]
    return cases


def _file_cases() -> list[Case]:
    ok_file = {"file": ("ok.txt", b"hello", "text/plain")}
    cases: list[Case] = [
        ("upload_file-json_body", "POST", "/files", {"json": {"purpose": "assistants"}}, 400),
        (
            "upload_file-no_body",
            "POST",
            "/files",
            {"content": b"", "headers": {"Content-Type": "multipart/form-data"}},
            400,
        ),
        (
            "upload_file-broken_multipart",
            "POST",
            "/files",
            {"content": b"--xyz\r\nnonsense", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
            400,
        ),
        ("upload_file-missing_purpose", "POST", "/files", {"files": ok_file}, 400),
        ("upload_file-bad_purpose", "POST", "/files", {"files": ok_file, "data": {"purpose": "fun"}}, 400),
        (
            "upload_file-output_purpose",
            "POST",
            "/files",
            {"files": ok_file, "data": {"purpose": "assistants_output"}},
            400,
        ),
        ("upload_file-missing_file", "POST", "/files", {"data": {"purpose": "assistants"}}, 400),
        ("upload_file-file_as_field", "POST", "/files", {"data": {"purpose": "assistants", "file": "text"}}, 400),
        (
            "upload_file-empty",
            "POST",
            "/files",
            {"files": {"file": ("empty.txt", b"", "text/plain")}, "data": {"purpose": "assistants"}},
            400,
        ),
        (
            "upload_file-two_files",
            "POST",
            "/files",
            {"files": [("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))], "data": {"purpose": "assistants"}},
            400,
        ),
        (
            "upload_file-expires_bad_anchor",
            "POST",
            "/files",
            {
                "files": ok_file,
                "data": {"purpose": "batch", "expires_after[anchor]": "now", "expires_after[seconds]": "3600"},
            },
            400,
        ),
        (
            "upload_file-expires_too_short",
            "POST",
            "/files",
            {
                "files": ok_file,
                "data": {"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "60"},
            },
            400,
        ),
        (
            "upload_file-expires_not_int",
            "POST",
            "/files",
            {
                "files": ok_file,
                "data": {"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "x"},
            },
            400,
        ),
    ]
    for label, filename in {
        "traversal": "../../etc/passwd",
        "subdir": "a/b.txt",
        "backslash": "a\\b.txt",
        "dotdot": "..",
        "dot": ".",
        "blank": "   ",
        "too_long": "f" * 300 + ".txt",
    }.items():
        cases.append(
            (
                f"upload_file-filename_{label}",
                "POST",
                "/files",
                {"files": {"file": (filename, b"data", "text/plain")}, "data": {"purpose": "assistants"}},
                400,
            )
        )
    for label, raw_name in {
        "nul": b"a\x00b.txt",
        "newline": b"a\nb.txt",
        "cr": b"a\rb.txt",
        "tab": b"a\tb.txt",
    }.items():
        cases.append((f"upload_file-filename_{label}", "POST", "/files", _raw_multipart(raw_name), 400))
    return cases


def _raw_multipart(filename: bytes) -> dict[str, Any]:
    """A hand-made multipart body: httpx would percent-encode control characters in filenames."""
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: text/plain\r\n\r\ndata\r\n--" + boundary + b"--\r\n"
    )
    return {"content": body, "headers": {"Content-Type": "multipart/form-data; boundary=" + boundary.decode()}}


def _upload_cases() -> list[Case]:
    base = {"filename": "a.txt", "purpose": "assistants", "bytes": 10, "mime_type": "text/plain"}
    bodies: dict[str, dict[str, Any]] = {
        "missing_filename": {k: v for k, v in base.items() if k != "filename"},
        "missing_bytes": {k: v for k, v in base.items() if k != "bytes"},
        "missing_mime_type": {k: v for k, v in base.items() if k != "mime_type"},
        "missing_purpose": {k: v for k, v in base.items() if k != "purpose"},
        "bytes_string": {**base, "bytes": "10"},
        "bytes_negative": {**base, "bytes": -1},
        "bytes_zero": {**base, "bytes": 0},
        "bytes_over_8gb": {**base, "bytes": 8 * 1024**3 + 1},
        "bad_purpose": {**base, "purpose": "fun"},
        "filename_traversal": {**base, "filename": "../../etc/passwd"},
        "filename_subdir": {**base, "filename": "a/b.txt"},
        "filename_nul": {**base, "filename": "a\x00b.txt"},
        "filename_newline": {**base, "filename": "a\nb.txt"},
        "filename_empty": {**base, "filename": ""},
        "expires_bad": {**base, "expires_after": {"anchor": "created_at", "seconds": 5}},
        "expires_extra": {**base, "expires_after": {"anchor": "created_at", "seconds": 3600, "x": 1}},
    }
    cases: list[Case] = [(f"create_upload-{k}", "POST", "/uploads", {"json": v}, 400) for k, v in bodies.items()]
    complete: dict[str, dict[str, Any]] = {
        "part_ids_missing": {},
        "part_ids_string": {"part_ids": "part_x"},
        "part_ids_ints": {"part_ids": [5]},
        "part_ids_empty": {"part_ids": []},
        "part_ids_unknown": {"part_ids": ["part_doesnotexist"]},
        "part_ids_other_upload": {"part_ids": ["{other_part}"]},
        "part_ids_duplicate": {"part_ids": ["{part}", "{part}"]},
        "md5_int": {"part_ids": ["{part}"], "md5": 5},
        "md5_wrong": {"part_ids": ["{part}"], "md5": "0" * 32},
        "bytes_mismatch": {"part_ids": ["{part}"]},  # the upload declares 10 bytes, the part has 3
    }
    cases += [
        (f"complete_upload-{k}", "POST", "/uploads/{upload}/complete", {"json": v}, 400) for k, v in complete.items()
    ]
    part = {"files": {"data": ("upload", b"abc", "application/octet-stream")}}
    cases += [
        ("add_part-json_body", "POST", "/uploads/{upload}/parts", {"json": {"data": "abc"}}, 400),
        ("add_part-missing_data", "POST", "/uploads/{upload}/parts", {"files": {"other": ("u", b"abc")}}, 400),
        ("add_part-data_as_field", "POST", "/uploads/{upload}/parts", {"data": {"data": "abc"}}, 400),
        ("add_part-cancelled_upload", "POST", "/uploads/{cancelled}/parts", part, 400),
        ("add_part-completed_upload", "POST", "/uploads/{completed}/parts", part, 400),
        ("complete_upload-cancelled", "POST", "/uploads/{cancelled}/complete", {"json": {"part_ids": ["part_x"]}}, 400),
        ("complete_upload-completed", "POST", "/uploads/{completed}/complete", {"json": {"part_ids": ["part_x"]}}, 400),
        ("cancel_upload-cancelled", "POST", "/uploads/{cancelled}/cancel", {}, 400),
        ("cancel_upload-completed", "POST", "/uploads/{completed}/cancel", {}, 400),
    ]
    return cases


def _console_cases() -> list[Case]:
    """The console's read-only extension endpoints (docs/console.md)."""
    threads = "/console/threads"
    return [
        ("console_threads-limit_zero", "GET", threads, {"params": {"limit": 0}}, 400),
        ("console_threads-limit_text", "GET", threads, {"params": {"limit": "ten"}}, 400),
        ("console_threads-limit_over_max", "GET", threads, {"params": {"limit": 101}}, 400),
        ("console_threads-after_bad_prefix", "GET", threads, {"params": {"after": "msg_1"}}, 400),
        ("console_threads-after_nul", "GET", threads, {"params": {"after": "thread_\x00"}}, 400),
        ("console_threads-q_nul", "GET", threads, {"params": {"q": "thread_\x00"}}, 400),
        ("console_threads-q_too_long", "GET", threads, {"params": {"q": "t" * 257}}, 400),
        ("console_threads-assistant_bad_prefix", "GET", threads, {"params": {"assistant_id": "nope"}}, 400),
        ("console_threads-metadata_key_too_long", "GET", threads, {"params": {"metadata_key": "k" * 65}}, 400),
        (
            "console_threads-metadata_value_nul",
            "GET",
            threads,
            {"params": {"metadata_key": "k", "metadata_value": "\x00"}},
            400,
        ),
        ("console_threads-created_after_text", "GET", threads, {"params": {"created_after": "yesterday"}}, 400),
        ("console_threads-created_before_huge", "GET", threads, {"params": {"created_before": "9" * 40}}, 400),
        ("console_usage-days_zero", "GET", "/console/usage", {"params": {"days": 0}}, 400),
        ("console_usage-days_over_max", "GET", "/console/usage", {"params": {"days": 367}}, 400),
        ("console_usage-end_text", "GET", "/console/usage", {"params": {"end": "soon"}}, 400),
        ("console_usage-scope_unknown", "GET", "/console/usage", {"params": {"scope": "everything"}}, 400),
        ("console_run_cost-thread_bad_prefix", "GET", "/console/threads/nope/runs/{run}/cost", {}, 400),
        ("console_run_cost-run_bad_prefix", "GET", "/console/threads/{run_thread}/runs/nope/cost", {}, 400),
        ("console_run_cost-run_of_another_thread", "GET", "/console/threads/{thread}/runs/{run}/cost", {}, 404),
        ("console_run_cost-run_nul", "GET", "/console/threads/{run_thread}/runs/run_%00/cost", {}, 400),
        ("console_unknown", "GET", "/console/nothing", {}, 404),
        ("console_session-post", "POST", "/console/session", {"json": {}}, 405),
    ]


def _route_cases() -> list[Case]:
    return [
        ("unknown_route", "GET", "/nothing-here", {}, 404),
        ("list_threads_does_not_exist", "GET", "/threads", {}, 405),
        ("delete_files_collection", "DELETE", "/files", {}, 405),
        ("put_assistant", "PUT", "/assistants/{asst}", {"json": {}}, 405),
        ("get_upload", "GET", "/uploads/{upload}", {}, 404),  # no such route at all
        ("model_not_found", "GET", "/models/gpt-4o", {}, 404),  # this server has no provider
        ("model_nul", "GET", "/models/%00", {}, 404),
        ("model_with_slash", "GET", "/models/a%2Fb/c", {}, 404),
        ("post_models", "POST", "/models", {"json": {}}, 405),
    ]


def _attachment_cases() -> list[Case]:
    """Every way of adding a message checks its attachments the same way (one code path)."""
    missing = {
        "role": "user",
        "content": "x",
        "attachments": [{"file_id": "file-nope", "tools": [{"type": "file_search"}]}],
    }
    return [
        (
            "run_additional_message_missing_file",
            "POST",
            "/threads/{thread}/runs",
            {"json": {"assistant_id": "{asst}", "additional_messages": [missing]}},
            404,
        ),
        (
            "thread_and_run_message_missing_file",
            "POST",
            "/threads/runs",
            {"json": {"assistant_id": "{asst}", "thread": {"messages": [missing]}}},
            404,
        ),
        ("thread_message_missing_file", "POST", "/threads", {"json": {"messages": [missing]}}, 404),
        ("message_missing_file", "POST", "/threads/{thread}/messages", {"json": missing}, 404),
    ]


# -- strings the encoder refuses, depth, filters: every endpoint that takes a body or a query ----------------------
#
# Bodies with lone UTF-16 surrogates cannot go through httpx's `json=` (it encodes as UTF-8); `raw_json=` is
# serialised by the standard library with \uXXXX escapes, placeholders filled first.

SEARCH = "/vector_stores/{vs}/search"
SURROGATES = {"high": "\ud800", "low": "\udfff", "reversed_pair": "\udc00\ud800"}
PARAMS = {"type": "object", "properties": {}}


def _deep(levels: int) -> dict[str, Any]:
    """An object `levels` deep: {"a": {"a": ... {} ...}}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _deep_raw(make: Any, levels: int) -> bytes:
    """The JSON text of `make(value)` with `value` an object `levels` deep, built as text."""
    deep = '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)
    return json.dumps(make("__deep__")).replace('"__deep__"', deep).encode()


def _function(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _json_schema(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}


def _free_form_variants(make: Any) -> dict[str, dict[str, Any]]:
    """`make(value)` builds a body holding `value` in one free-form field: surrogates in keys and values, depth."""
    return {
        "surrogate_key": make({"\ud800": "v"}),
        "surrogate_value": make({"k": "\ud800"}),
        "surrogate_nested": make({"k": {"kk": ["ok", "x\udfffy"]}}),
    }


def _metadata_variants(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {f"metadata_{k}": v for k, v in _free_form_variants(lambda m: {**base, "metadata": m}).items()}
    out.update({f"metadata_value_{k}": {**base, "metadata": {"k": v}} for k, v in SURROGATES.items()})
    return out


def _schema_variants(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function parameters and response_format.json_schema.schema: surrogates and depth."""
    out: dict[str, dict[str, Any]] = {}
    for name, make in {
        "parameters": lambda v: {**base, "tools": [_function(v)]},
        "schema": lambda v: {**base, "response_format": _json_schema(v)},
    }.items():
        out.update({f"{name}_{k}": v for k, v in _free_form_variants(make).items()})
        out[f"{name}_depth_65"] = make(_deep(65))
        out[f"{name}_depth_253"] = make(_deep(253))
        out[f"{name}_depth_900"] = {"content": _deep_raw(make, 900)}  # deeper than Python's json would recurse
    return out


def _message_variants(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    msg = {"role": "user", "content": "x"}
    return {
        **{f"message_{k}": {**base, "messages": [v]} for k, v in _metadata_variants(msg).items()},
        "message_content_surrogate": {**base, "messages": [{"role": "user", "content": "a\ud800"}]},
        "message_part_surrogate": {
            **base,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "\udc00"}]}],
        },
    }


def _item_variants() -> dict[str, dict[str, Any]]:
    """Conversation / response input items holding lone surrogates in each kind of string."""
    return {
        "content_surrogate": {"role": "user", "content": "a\ud800"},
        "part_surrogate": {"role": "user", "content": [{"type": "input_text", "text": "\udc00"}]},
        "output_text_surrogate": {"role": "assistant", "content": [{"type": "output_text", "text": "\udfff"}]},
        "arguments_surrogate": {"type": "function_call", "call_id": "c", "name": "f", "arguments": "\ud800"},
        "call_id_surrogate": {"type": "function_call_output", "call_id": "c\ud800", "output": "x"},
        "output_surrogate": {"type": "function_call_output", "call_id": "c", "output": "\ud800"},
        "summary_surrogate": {"type": "reasoning", "summary": [{"type": "summary_text", "text": "\ud800"}]},
    }


def _conversation_and_response_cases() -> list[Case]:
    """Wrong types, sizes, unknown ids and combinations on the Conversations and Responses endpoints."""
    user = {"role": "user", "content": "x"}
    item_bodies: dict[str, Any] = {
        "items_object": {"items": {}},
        "items_string": {"items": "hi"},
        "item_int": {"items": [5]},
        "item_null": {"items": [None]},
        "item_unknown_type": {"items": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]},
        "item_role_tool": {"items": [{"role": "tool", "content": "x"}]},
        "item_content_int": {"items": [{"role": "user", "content": 5}]},
        "item_content_object": {"items": [{"role": "user", "content": {"type": "input_text", "text": "x"}}]},
        "item_extra_field": {"items": [{**user, "extra": 1}]},
        "item_status_null_extra": {"items": [{**user, "status": "done"}]},
        "item_output_text_in_user": {"items": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
        "item_part_unknown": {"items": [{"role": "user", "content": [{"type": "input_audio", "data": "x"}]}]},
        "item_image_without_source": {"items": [{"role": "user", "content": [{"type": "input_image"}]}]},
        "item_image_bad_detail": {
            "items": [
                {"role": "user", "content": [{"type": "input_image", "image_url": "https://e.x", "detail": "4k"}]}
            ]
        },
        "item_image_file_bad_prefix": {
            "items": [{"role": "user", "content": [{"type": "input_image", "file_id": "undefined"}]}]
        },
        "item_file_without_source": {"items": [{"role": "user", "content": [{"type": "input_file"}]}]},
        "function_call_missing_name": {"items": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
        "function_call_arguments_object": {
            "items": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]
        },
        "output_missing_call_id": {"items": [{"type": "function_call_output", "output": "x"}]},
        "output_call_id_null": {"items": [{"type": "function_call_output", "call_id": None, "output": "x"}]},
        "output_call_id_65": {"items": [{"type": "function_call_output", "call_id": "c" * 65, "output": "x"}]},
        "output_int": {"items": [{"type": "function_call_output", "call_id": "c", "output": 5}]},
        "reasoning_no_summary": {"items": [{"type": "reasoning"}]},
        "file_search_call_no_id": {"items": [{"type": "file_search_call", "status": "completed", "queries": []}]},
        "reference_no_id": {"items": [{"type": "item_reference"}]},
        "too_many_items": {"items": [user] * 21},
    }
    cases: list[Case] = []
    for k, v in item_bodies.items():
        cases.append((f"create_conversation-{k}", "POST", "/conversations", {"json": v}, 400))
        cases.append((f"create_conversation_items-{k}", "POST", "/conversations/{conv}/items", {"json": v}, 400))
        if "items" in v and isinstance(v["items"], list) and k != "too_many_items":
            cases.append(
                (f"count_input_tokens-{k}", "POST", "/responses/input_tokens", {"json": {"input": v["items"]}}, 400)
            )
    missing_file = {"items": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-nope"}]}]}
    missing_ref = {"items": [{"type": "item_reference", "id": "msg_nope"}]}
    cases += [
        ("create_conversation-metadata_list", "POST", "/conversations", {"json": {"metadata": []}}, 400),
        ("create_conversation-metadata_17_keys", "POST", "/conversations", {"json": {"metadata": META_17}}, 400),
        (
            "create_conversation-metadata_513_value",
            "POST",
            "/conversations",
            {"json": {"metadata": META_LONG_VALUE}},
            400,
        ),
        ("create_conversation-missing_file", "POST", "/conversations", {"json": missing_file}, 404),
        ("create_conversation-missing_reference", "POST", "/conversations", {"json": missing_ref}, 404),
        ("create_conversation_items-missing_file", "POST", "/conversations/{conv}/items", {"json": missing_file}, 404),
        ("create_conversation_items-empty", "POST", "/conversations/{conv}/items", {"json": {"items": []}}, 400),
        ("create_conversation_items-missing", "POST", "/conversations/{conv}/items", {"json": {}}, 400),
        (
            "create_conversation_items-include_unknown",
            "POST",
            "/conversations/{conv}/items?include[]=x",
            {"json": {"items": [user]}},
            400,
        ),
        ("update_conversation-missing_metadata", "POST", "/conversations/{conv}", {"json": {}}, 400),
        ("update_conversation-metadata_string", "POST", "/conversations/{conv}", {"json": {"metadata": "x"}}, 400),
        ("update_conversation-metadata_17_keys", "POST", "/conversations/{conv}", {"json": {"metadata": META_17}}, 400),
        ("update_conversation-items", "POST", "/conversations/{conv}", {"json": {"metadata": {}, "items": []}}, 400),
        ("get_conversation_item-unknown", "GET", "/conversations/{conv}/items/msg_nope", {}, 404),
        ("get_conversation_item-other_conversation", "GET", "/conversations/{conv}/items/{msg}", {}, 404),
        ("get_conversation_item-nul", "GET", "/conversations/{conv}/items/msg_%00", {}, 400),
        ("get_conversation_item-too_long", "GET", "/conversations/{conv}/items/" + "m" * 200, {}, 400),
        ("get_conversation_item-include_unknown", "GET", "/conversations/{conv}/items/{conv_item}?include=x", {}, 400),
        ("delete_conversation_item-unknown", "DELETE", "/conversations/{conv}/items/msg_nope", {}, 404),
        ("delete_conversation_item-nul", "DELETE", "/conversations/{conv}/items/msg_%00", {}, 400),
        ("get_response-include_unknown", "GET", "/responses/{resp}?include[]=everything", {}, 400),
        ("get_response-stream", "GET", "/responses/{resp}?stream=true", {}, 400),
    ]
    token_bodies: dict[str, tuple[Any, int]] = {
        "input_int": ({"input": 5}, 400),
        "input_object": ({"input": {"role": "user"}}, 400),
        "model_int": ({"model": 5}, 400),
        "instructions_list": ({"instructions": ["a"]}, 400),
        "tools_string": ({"tools": "function"}, 400),
        "tool_unknown_type": ({"tools": [{"type": "web_search"}]}, 400),
        "tool_nested_function": ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400),
        "tool_bad_name": ({"tools": [{"type": "function", "name": "a b"}]}, 400),
        "file_search_no_stores": ({"tools": [{"type": "file_search"}]}, 400),
        "file_search_bad_filter": (
            {"tools": [{"type": "file_search", "vector_store_ids": [], "filters": {"type": "eq"}}]},
            400,
        ),
        "code_interpreter_no_container": ({"tools": [{"type": "code_interpreter"}]}, 400),
        "tool_choice_bad": ({"tool_choice": "always"}, 400),
        "text_format_nested": ({"text": {"format": {"type": "json_schema", "json_schema": {"name": "s"}}}}, 400),
        "reasoning_effort_bad": ({"reasoning": {"effort": "huge"}}, 400),
        "truncation_bad": ({"truncation": "sometimes"}, 400),
        "stream_field": ({"stream": True}, 400),
        "conversation_int": ({"conversation": 5}, 400),
        "conversation_bad_prefix": ({"conversation": "asst_1"}, 400),
        "conversation_nul": ({"conversation": "conv_\x00"}, 400),
        "conversation_unknown": ({"conversation": "conv_nope"}, 404),
        "previous_unknown": ({"previous_response_id": "resp_nope"}, 400),
        "previous_and_conversation": ({"previous_response_id": "{resp}", "conversation": "{conv}"}, 400),
    }
    for k, (v, status) in token_bodies.items():
        cases.append((f"count_input_tokens-{k}", "POST", "/responses/input_tokens", {"json": v}, status))
        if k != "stream_field":  # the same context fields, checked the same way, on POST /v1/responses
            body = {"model": "gpt-4o", "input": "x", **v}
            cases.append((f"create_response-{k}", "POST", "/responses", {"json": body}, status))
    base = {"model": "gpt-4o", "input": "x"}
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "y"}

    def ci(container: Any) -> dict[str, Any]:
        return {"type": "code_interpreter", "container": container}

    create_bodies: dict[str, tuple[Any, int]] = {
        "missing_model": ({"input": "x"}, 400),
        "model_empty": ({"model": "", "input": "x"}, 400),
        "background_without_store": ({**base, "background": True, "store": False}, 400),
        "stream_options_without_stream": ({**base, "stream_options": {"include_obfuscation": False}}, 400),
        "max_output_tokens_15": ({**base, "max_output_tokens": 15}, 400),
        "max_output_tokens_string": ({**base, "max_output_tokens": "many"}, 400),
        "temperature_3": ({**base, "temperature": 3}, 400),
        "top_p_2": ({**base, "top_p": 2}, 400),
        "top_logprobs_21": ({**base, "top_logprobs": 21}, 400),
        "include_unknown": ({**base, "include": ["everything"]}, 400),
        "metadata_17_keys": ({**base, "metadata": META_17}, 400),
        "metadata_513_value": ({**base, "metadata": META_LONG_VALUE}, 400),
        "store_string": ({**base, "store": "yes"}, 400),
        "json_schema_no_name": ({**base, "text": {"format": {"type": "json_schema", "schema": {}}}}, 400),
        "tool_choice_function_no_name": ({**base, "tool_choice": {"type": "function"}}, 400),
        "tool_choice_unknown_function": ({**base, "tool_choice": {"type": "function", "name": "nope"}}, 400),
        "tool_choice_hosted_without_tool": ({**base, "tool_choice": {"type": "file_search"}}, 400),
        "call_without_output": ({**base, "input": [call]}, 400),
        "output_without_call": ({**base, "input": [output]}, 400),
        "output_call_id_null": ({**base, "input": [{**output, "call_id": None}]}, 400),
        "input_too_long_for_context": ({**base, "input": "word " * 300_000}, 400),
        "input_missing_image_file": (
            {**base, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-nope"}]}]},
            404,
        ),
        "input_missing_reference": ({**base, "input": [{"type": "item_reference", "id": "msg_nope"}]}, 404),
        "prompt_template_id": ({**base, "prompt": {"id": "pmpt_123"}}, 400),
        "prompt_bad_prefix": ({**base, "prompt": {"id": "thread_1"}}, 400),
        "prompt_nul": ({**base, "prompt": {"id": "asst_\x00"}}, 400),
        "prompt_unknown_assistant": ({"input": "x", "prompt": {"id": "asst_nope"}}, 404),
        "prompt_variables": ({**base, "prompt": {"id": "asst_nope", "variables": {"x": "y"}}}, 400),
        "prompt_id_missing": ({**base, "prompt": {}}, 400),
        "code_interpreter_container_unknown": ({**base, "tools": [ci("cntr_nope")]}, 404),
        "code_interpreter_container_bad_prefix": ({**base, "tools": [ci("file-abc")]}, 400),
        "code_interpreter_container_nul": ({**base, "tools": [ci("cntr_\x00")]}, 400),
        "code_interpreter_container_int": ({**base, "tools": [ci(5)]}, 400),
        "code_interpreter_auto_unknown_type": ({**base, "tools": [ci({"type": "manual"})]}, 400),
        "code_interpreter_auto_file_bad_prefix": ({**base, "tools": [ci({"type": "auto", "file_ids": ["abc"]})]}, 400),
        "code_interpreter_auto_file_unknown": (
            {**base, "tools": [ci({"type": "auto", "file_ids": ["file-nope"]})]},
            404,
        ),
        "code_interpreter_auto_51_files": ({**base, "tools": [ci({"type": "auto", "file_ids": ["file-a"] * 51})]}, 400),
        "code_interpreter_auto_memory_2g": ({**base, "tools": [ci({"type": "auto", "memory_limit": "2g"})]}, 400),
        "code_interpreter_auto_allowlist": (
            {
                **base,
                "tools": [ci({"type": "auto", "network_policy": {"type": "allowlist", "allowed_domains": ["a.b"]}})],
            },
            400,
        ),
    }
    for k, (v, status) in create_bodies.items():
        cases.append((f"create_response-{k}", "POST", "/responses", {"json": v}, status))
    forged = {"type": "compaction", "encrypted_content": "tlc1.eyJ2IjoxLCJzdW1tYXJ5IjoieCJ9.AAAA"}
    compact_bodies: dict[str, dict[str, Any]] = {
        "missing_model": {"input": "hi"},
        "model_empty": {"model": "", "input": "hi"},
        "prompt_cache_key_65": {**base, "input": "hi", "prompt_cache_key": "k" * 65},
        "prompt_cache_retention_bad": {**base, "input": "hi", "prompt_cache_retention": "1y"},
        "service_tier_bad": {**base, "input": "hi", "service_tier": "premium"},
        "input_number": {**base, "input": 5},
        "forged_compaction": {**base, "input": [forged]},
        "compaction_not_base64": {**base, "input": [{"type": "compaction", "encrypted_content": "%%%"}]},
        "compaction_no_content": {**base, "input": [{"type": "compaction"}]},
        "previous_unknown": {**base, "previous_response_id": "resp_nope"},
        "input_too_long_for_context": {**base, "input": "word " * 300_000},
    }
    for k, v in compact_bodies.items():
        cases.append((f"compact_response-{k}", "POST", "/responses/compact", {"json": v}, 400))
    cases += [
        ("create_response-forged_compaction", "POST", "/responses", {"json": {**base, "input": [forged]}}, 400),
        ("cancel_response-unknown", "POST", "/responses/resp_nope/cancel", {}, 404),
        ("cancel_response-not_background", "POST", "/responses/{resp}/cancel", {}, 400),
        ("cancel_response-nul", "POST", "/responses/resp_%00/cancel", {}, 400),
        ("cancel_response-bad_prefix", "POST", "/responses/run_abc/cancel", {}, 400),
        ("get_response-stream_unknown", "GET", "/responses/resp_nope?stream=true", {}, 404),
        ("get_response-starting_after_text", "GET", "/responses/{resp}?stream=true&starting_after=x", {}, 400),
        ("get_response-starting_after_negative", "GET", "/responses/{resp}?stream=true&starting_after=-5", {}, 400),
    ]
    return cases


def _helper_store(metadata: dict[str, Any]) -> dict[str, Any]:
    return {"tool_resources": {"file_search": {"vector_stores": [{"file_ids": [], "metadata": metadata}]}}}


def _surrogate_cases() -> list[Case]:
    """Every JSON endpoint, every free-form field: lone surrogates (keys and values), depth; typed strings too."""
    run = {"assistant_id": "{asst}"}
    bodies: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
        ("create_assistant", "POST", "/assistants"): {
            **_metadata_variants({"model": "m"}),
            **_schema_variants({"model": "m"}),
            "helper_store_metadata": {"model": "m", **_helper_store({"\ud800": "v"})},
            "instructions_surrogate": {"model": "m", "instructions": "\ud800"},
            "model_surrogate": {"model": "gpt-\udfff"},
        },
        ("modify_assistant", "POST", "/assistants/{asst}"): {
            **_metadata_variants({}),
            **_schema_variants({}),
            "name_surrogate": {"name": "\ud800"},
        },
        ("create_thread", "POST", "/threads"): {
            **_metadata_variants({}),
            **_message_variants({}),
            "helper_store_metadata": _helper_store({"k": "\ud800"}),
        },
        ("modify_thread", "POST", "/threads/{thread}"): _metadata_variants({}),
        ("create_message", "POST", "/threads/{thread}/messages"): {
            **_metadata_variants({"role": "user", "content": "x"}),
            "content_surrogate": {"role": "user", "content": "\ud800"},
            "attachment_file_id_surrogate": {
                "role": "user",
                "content": "x",
                "attachments": [{"file_id": "file-\ud800", "tools": []}],
            },
        },
        ("modify_message", "POST", "/threads/{thread}/messages/{msg}"): _metadata_variants({}),
        ("create_run", "POST", "/threads/{thread}/runs"): {
            **_metadata_variants(run),
            **_schema_variants(run),
            **{
                f"additional_{k}": {**run, "additional_messages": v["messages"]}
                for k, v in _message_variants({}).items()
            },
            "instructions_surrogate": {**run, "additional_instructions": "\ud800"},
            "assistant_id_surrogate": {"assistant_id": "asst_\ud800"},
        },
        ("create_thread_and_run", "POST", "/threads/runs"): {
            **_metadata_variants(run),
            **_schema_variants(run),
            **{f"thread_{k}": {**run, "thread": v} for k, v in _metadata_variants({}).items()},
            **{f"thread_{k}": {**run, "thread": v} for k, v in _message_variants({}).items()},
        },
        ("modify_run", "POST", "/threads/{run_thread}/runs/{run}"): _metadata_variants({}),
        ("submit_tool_outputs", "POST", "/threads/{run_thread}/runs/{run}/submit_tool_outputs"): {
            "output_surrogate": {"tool_outputs": [{"tool_call_id": "call_1", "output": "\ud800"}]},
            "call_id_surrogate": {"tool_outputs": [{"tool_call_id": "call_\udfff", "output": "x"}]},
        },
        ("create_vector_store", "POST", "/vector_stores"): {
            **_metadata_variants({}),
            "name_surrogate": {"name": "\ud800"},
        },
        ("modify_vector_store", "POST", "/vector_stores/{vs}"): _metadata_variants({}),
        ("attach_vector_store_file", "POST", "/vector_stores/{vs}/files"): {
            "attributes_surrogate_key": {"file_id": "{file}", "attributes": {"\ud800": "v"}},
            "attributes_surrogate_value": {"file_id": "{file}", "attributes": {"k": "\udfff"}},
            "file_id_surrogate": {"file_id": "file-\ud800"},
        },
        ("update_vector_store_file", "POST", "/vector_stores/{vs}/files/{file}"): {
            "attributes_surrogate_key": {"attributes": {"\ud800": 1}},
            "attributes_surrogate_value": {"attributes": {"k": "\udc00\ud800"}},
        },
        ("create_file_batch", "POST", "/vector_stores/{vs}/file_batches"): {
            "attributes_surrogate_key": {"file_ids": ["{file}"], "attributes": {"\ud800": "v"}},
            "attributes_surrogate_value": {"file_ids": ["{file}"], "attributes": {"k": "\ud800"}},
            "files_attributes_surrogate": {"files": [{"file_id": "{file}", "attributes": {"k": "\ud800"}}]},
            "file_ids_surrogate": {"file_ids": ["file-\ud800"]},
        },
        ("search_vector_store", "POST", SEARCH): {
            "query_surrogate": {"query": "\ud800"},
            "query_list_surrogate": {"query": ["ok", "\udfff"]},
            "filter_key_surrogate": {"query": "q", "filters": {"type": "eq", "key": "\ud800", "value": "v"}},
            "filter_value_surrogate": {"query": "q", "filters": {"type": "eq", "key": "k", "value": "\ud800"}},
            "filter_in_surrogate": {"query": "q", "filters": {"type": "in", "key": "k", "value": ["a", "\udfff"]}},
            "filter_field_surrogate": {"query": "q", "filters": {"type": "eq", "key": "k", "value": 1, "\ud800": 1}},
        },
        ("create_upload", "POST", "/uploads"): {
            "filename_surrogate": {"filename": "\ud800.txt", "purpose": "assistants", "bytes": 1, "mime_type": "t/p"},
            "mime_type_surrogate": {"filename": "a.txt", "purpose": "assistants", "bytes": 1, "mime_type": "\udfff"},
        },
        ("create_conversation", "POST", "/conversations"): {
            **_metadata_variants({}),
            **{f"item_{k}": {"items": [v]} for k, v in _item_variants().items()},
        },
        ("update_conversation", "POST", "/conversations/{conv}"): _metadata_variants({}),
        ("create_conversation_items", "POST", "/conversations/{conv}/items"): {
            f"item_{k}": {"items": [v]} for k, v in _item_variants().items()
        },
        ("count_input_tokens", "POST", "/responses/input_tokens"): {
            **{f"input_{k}": {"input": [v]} for k, v in _item_variants().items()},
            "input_string_surrogate": {"input": "a\ud800"},
            "instructions_surrogate": {"instructions": "\udfff"},
            **{
                f"parameters_{k}": v
                for k, v in _free_form_variants(
                    lambda p: {"tools": [{"type": "function", "name": "f", "parameters": p}]}
                ).items()
            },
            "parameters_depth_65": {"tools": [{"type": "function", "name": "f", "parameters": _deep(65)}]},
            **{
                f"schema_{k}": v
                for k, v in _free_form_variants(
                    lambda p: {"text": {"format": {"type": "json_schema", "name": "s", "schema": p}}}
                ).items()
            },
            "filter_value_surrogate": {
                "tools": [
                    {
                        "type": "file_search",
                        "vector_store_ids": ["vs_1"],
                        "filters": {"type": "eq", "key": "k", "value": "\ud800"},
                    }
                ]
            },
        },
        ("create_response", "POST", "/responses"): {
            **{f"input_{k}": {"model": "gpt-4o", "input": [v]} for k, v in _item_variants().items()},
            "input_string_surrogate": {"model": "gpt-4o", "input": "a\ud800"},
            "instructions_surrogate": {"model": "gpt-4o", "instructions": "\udfff"},
            "model_surrogate": {"model": "gpt-\ud800"},
            "metadata_surrogate": {"model": "gpt-4o", "metadata": {"k": "\ud800"}},
        },
        ("complete_upload", "POST", "/uploads/{upload}/complete"): {
            "part_ids_surrogate": {"part_ids": ["part_\ud800"]},
            "md5_surrogate": {"part_ids": ["{part}"], "md5": "\ud800"},
        },
    }
    cases: list[Case] = []
    for (name, method, path), variants in bodies.items():
        for label, body in variants.items():
            kwargs = body if set(body) == {"content"} else {"raw_json": body}
            cases.append((f"{name}-{label}", method, path, kwargs, 400))
    return cases


def _filter_cases() -> list[Case]:
    """Search filters that fit no ComparisonFilter / CompoundFilter, or nest too deeply."""
    nested = {"type": "eq", "key": "k", "value": 1}
    for _ in range(16):
        nested = {"type": "and", "filters": [nested]}
    eq = {"type": "eq", "key": "k", "value": 1}
    filters: dict[str, Any] = {
        "in_boolean": {"type": "in", "key": "k", "value": False},
        "in_string": {"type": "in", "key": "k", "value": "x"},
        "nin_object": {"type": "nin", "key": "k", "value": {}},
        "in_nested_array": {"type": "in", "key": "k", "value": [[1]]},
        "in_null_item": {"type": "in", "key": "k", "value": [None]},
        "eq_array": {"type": "eq", "key": "k", "value": [1]},
        "eq_object": {"type": "eq", "key": "k", "value": {"a": 1}},
        "eq_null": {"type": "eq", "key": "k", "value": None},
        "gt_missing_value": {"type": "gt", "key": "k"},
        "missing_key": {"type": "eq", "value": 1},
        "key_int": {"type": "eq", "key": 5, "value": 1},
        "missing_type": {"key": "k", "value": 1},
        "unknown_type": {"type": "near", "key": "k", "value": 1},
        "type_int": {"type": 1, "key": "k", "value": 1},
        "extra_field": {"type": "eq", "key": "k", "value": 1, "x": 1},
        "and_empty": {"type": "and", "filters": []},
        "or_empty": {"type": "or", "filters": []},
        "and_missing_filters": {"type": "and"},
        "and_filters_object": {"type": "and", "filters": eq},
        "and_with_key": {"type": "and", "filters": [eq], "key": "k"},
        "and_bad_child": {"type": "and", "filters": [eq, {"type": "in", "key": "k", "value": True}]},
        "or_string_child": {"type": "or", "filters": ["eq"]},
        "nested_17_levels": nested,
        "filters_string": "k = 1",
        "filters_array": [eq],
    }
    return [
        (
            f"search_vector_store-filter_{k}",
            "POST",
            SEARCH,
            {"json": {"query": "q", "filters": v}},
            400,
        )
        for k, v in filters.items()
    ] + [("search_vector_store-filter_nested_500_levels", "POST", SEARCH, {"content": _nested_and_raw(500)}, 400)]


def _nested_and_raw(levels: int) -> bytes:
    """A search body whose filter is `levels` and-filters deep, built as text (Python's json would recurse)."""
    inner = '{"type":"and","filters":[' * (levels - 1) + '{"type":"eq","key":"k","value":1}' + "]}" * (levels - 1)
    return ('{"query":"q","filters":' + inner + "}").encode()


def _vector_store_cases() -> list[Case]:
    """The ordinary bad input of the vector store endpoints, next to the classes above."""
    return [
        ("create_vector_store-metadata_17_keys", "POST", "/vector_stores", {"json": {"metadata": META_17}}, 400),
        ("modify_vector_store-metadata_list", "POST", "/vector_stores/{vs}", {"json": {"metadata": []}}, 400),
        (
            "attach_vector_store_file-attributes_object_value",
            "POST",
            "/vector_stores/{vs}/files",
            {"json": {"file_id": "{file}", "attributes": {"k": {"a": 1}}}},
            400,
        ),
        (
            "update_vector_store_file-attributes_17",
            "POST",
            "/vector_stores/{vs}/files/{file}",
            {"json": {"attributes": META_17}},
            400,
        ),
        ("search_vector_store-query_empty", "POST", SEARCH, {"json": {"query": ""}}, 400),
        (
            "submit_tool_outputs-output_int",
            "POST",
            "/threads/{run_thread}/runs/{run}/submit_tool_outputs",
            {"json": {"tool_outputs": [{"tool_call_id": "c", "output": 5}]}},
            400,
        ),
    ]


LISTS = {
    "assistants": "/assistants",
    "messages": "/threads/{thread}/messages",
    "runs": "/threads/{run_thread}/runs",
    "run_steps": "/threads/{run_thread}/runs/{run}/steps",
    "files": "/files",
    "vector_stores": "/vector_stores",
    "vector_store_files": "/vector_stores/{vs}/files",
    "batch_files": "/vector_stores/{vs}/file_batches/{batch}/files",
    "conversation_items": "/conversations/{conv}/items",
    "input_items": "/responses/{resp}/input_items",
}


def _query_and_path_cases() -> list[Case]:
    """Percent-encoded bytes that are not UTF-8 (here a UTF-8-encoded surrogate) in query strings and path ids:
    the server decodes them to U+FFFD, so they are ordinary bad values."""
    bad = "%ED%A0%80"
    cases: list[Case] = [
        *[
            (f"list_{name}-{param}_surrogate", "GET", f"{path}?{param}={bad}", {}, 400)
            for name, path in LISTS.items()
            for param in ("order", "limit")
        ],
        (
            "list_batch_files-filter_surrogate",
            "GET",
            f"/vector_stores/{{vs}}/file_batches/{{batch}}/files?filter={bad}",
            {},
            400,
        ),
        ("list_vector_store_files-filter_surrogate", "GET", f"/vector_stores/{{vs}}/files?filter={bad}", {}, 400),
        (
            "list_run_steps-include_surrogate",
            "GET",
            f"/threads/{{run_thread}}/runs/{{run}}/steps?include[]={bad}",
            {},
            400,
        ),
        ("get_assistant-id_surrogate", "GET", f"/assistants/{bad}", {}, 400),
        ("get_assistant-id_suffix_surrogate", "GET", f"/assistants/asst_{bad}", {}, 404),
        ("get_thread-id_suffix_surrogate", "GET", f"/threads/thread_{bad}", {}, 404),
        ("get_vector_store-id_suffix_surrogate", "GET", f"/vector_stores/vs_{bad}", {}, 404),
        ("get_run-id_suffix_surrogate", "GET", f"/threads/{{run_thread}}/runs/run_{bad}", {}, 404),
        ("get_file-id_surrogate", "GET", f"/files/{bad}", {}, 400),
    ]
    for label, raw_name in {"surrogate_utf8": b"\xed\xa0\x80.txt", "latin1_control": b"a\xc2\x85b.txt"}.items():
        cases.append((f"upload_file-filename_{label}", "POST", "/files", _raw_multipart(raw_name), 400))
    boundary = "b0undary"
    purpose = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassist\xed\xa0\x80nts\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        f"data\r\n--{boundary}--\r\n"
    ).encode("latin-1")
    cases.append(
        (
            "upload_file-purpose_surrogate_utf8",
            "POST",
            "/files",
            {"content": purpose, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}},
            400,
        )
    )
    return cases


def _size_cases() -> list[Case]:
    """Bodies over the size cap, declared by Content-Length, on every route that takes a body (nothing is sent:
    the server must answer from the headers). The shared server has the default 8 MB cap."""
    routes = [
        ("POST", "/assistants"),
        ("POST", "/assistants/{asst}"),
        ("POST", "/threads"),
        ("POST", "/threads/{thread}"),
        ("POST", "/threads/{thread}/messages"),
        ("POST", "/threads/{thread}/messages/{msg}"),
        ("POST", "/threads/{thread}/runs"),
        ("POST", "/threads/runs"),
        ("POST", "/threads/{run_thread}/runs/{run}"),
        ("POST", "/threads/{run_thread}/runs/{run}/submit_tool_outputs"),
        ("POST", "/threads/{run_thread}/runs/{run}/cancel"),
        ("POST", "/vector_stores"),
        ("POST", "/vector_stores/{vs}"),
        ("POST", "/vector_stores/{vs}/files"),
        ("POST", "/vector_stores/{vs}/files/{file}"),
        ("POST", "/vector_stores/{vs}/file_batches"),
        ("POST", SEARCH),
        ("POST", "/uploads"),
        ("POST", "/uploads/{upload}/complete"),
        ("POST", "/uploads/{upload}/cancel"),
        ("POST", "/conversations"),
        ("POST", "/conversations/{conv}"),
        ("POST", "/conversations/{conv}/items"),
        ("POST", "/responses/input_tokens"),
        ("POST", "/containers"),
        ("POST", "/responses"),
        ("GET", "/assistants"),
        ("DELETE", "/threads/{thread}"),
        ("POST", "/nothing-here"),
    ]
    return [
        (f"declared_9MB-{m.lower()}_{p.strip('/').replace('/', '_')}", m, p, {"declared_length": 9 * 1024 * 1024}, 413)
        for m, p in routes
    ]


def _container_cases() -> list[Case]:
    bodies: dict[str, Any] = {
        "missing_name": {},
        "name_null": {"name": None},
        "name_int": {"name": 5},
        "name_empty": {"name": ""},
        "name_too_long": {"name": "n" * 257},
        "file_ids_string": {"name": "c", "file_ids": "file-abc"},
        "file_ids_int_item": {"name": "c", "file_ids": [5]},
        "file_ids_wrong_prefix": {"name": "c", "file_ids": ["asst_abc"]},
        "file_ids_51": {"name": "c", "file_ids": ["file-abc"] * 51},
        "expires_after_anchor": {"name": "c", "expires_after": {"anchor": "created_at", "minutes": 5}},
        "expires_after_no_minutes": {"name": "c", "expires_after": {"anchor": "last_active_at"}},
        "expires_after_minutes_0": {"name": "c", "expires_after": {"anchor": "last_active_at", "minutes": 0}},
        "expires_after_minutes_str": {"name": "c", "expires_after": {"anchor": "last_active_at", "minutes": "5"}},
        "expires_after_minutes_huge": {"name": "c", "expires_after": {"anchor": "last_active_at", "minutes": 10**9}},
        "expires_after_string": {"name": "c", "expires_after": "20m"},
        "memory_limit_2g": {"name": "c", "memory_limit": "2g"},
        "network_policy_allowlist": {
            "name": "c",
            "network_policy": {"type": "allowlist", "allowed_domains": ["example.com"]},
        },
        "skills": {"name": "c", "skills": [{"type": "skill_reference", "skill_id": "s"}]},
        "metadata": {"name": "c", "metadata": {"k": "v"}},  # containers take no metadata
    }
    cases: list[Case] = [(f"create_container-{k}", "POST", "/containers", {"json": v}, 400) for k, v in bodies.items()]
    cases.append(
        (
            "create_container-missing_file",
            "POST",
            "/containers",
            {"json": {"name": "c", "file_ids": ["file-nope"]}},
            404,
        )
    )
    files_path = "/containers/{cntr}/files"
    cases += [
        ("create_container_file-file_id_int", "POST", files_path, {"json": {"file_id": 5}}, 400),
        ("create_container_file-file_id_wrong_prefix", "POST", files_path, {"json": {"file_id": "asst_x"}}, 400),
        ("create_container_file-file_id_missing", "POST", files_path, {"json": {"file_id": "file-nope"}}, 404),
        (
            "create_container_file-form_file_id_missing",
            "POST",
            files_path,
            {"data": {"file_id": "file-nope"}, "files": {"x": ("x", b"x")}},
            404,
        ),
        (
            "create_container_file-form_file_id_bad",
            "POST",
            files_path,
            {"data": {"file_id": "vs_1"}, "files": {"x": ("x", b"x")}},
            400,
        ),
        ("create_container_file-both", "POST", files_path, {"json": {"file_id": "{file}", "file": "x"}}, 400),
        (
            "create_container_file-multipart_no_file",
            "POST",
            files_path,
            {"data": {"file_id": "x"}, "files": {"other": ("a.txt", b"a")}},
            400,
        ),
        ("create_container_file-multipart_empty", "POST", files_path, {"files": {"file": ("e.txt", b"")}}, 400),
        ("create_container_file-multipart_no_name", "POST", files_path, {"files": {"file": ("", b"x")}}, 400),
        ("create_container_file-multipart_slash", "POST", files_path, {"files": {"file": ("../x.txt", b"x")}}, 400),
        (
            "create_container_file-multipart_garbled",
            "POST",
            files_path,
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            400,
        ),
    ]
    for path in ("/containers", "/containers/{cntr}/files"):
        name = path.strip("/").replace("/", "_").replace("{cntr}", "C")
        for label, params in {
            "limit_0": {"limit": "0"},
            "limit_abc": {"limit": "abc"},
            "limit_101": {"limit": "101"},
            "order_sideways": {"order": "sideways"},
            "after_nul": {"after": "x\x00"},
        }.items():
            cases.append((f"list_{name}-{label}", "GET", path, {"params": params}, 400))
    cases.append(("list_containers-name_nul", "GET", "/containers", {"params": {"name": "a\x00"}}, 400))
    return cases


def _organization_cases() -> list[Case]:
    """Usage, costs and admin keys (the table's server has no keys at all, so /v1/organization is open)."""
    usage = "/organization/usage/completions"
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        "missing_start_time": (usage, {}),
        "start_time_text": (usage, {"start_time": "yesterday"}),
        "start_time_negative": (usage, {"start_time": -5}),
        "start_time_huge": (usage, {"start_time": 10**30}),
        "start_time_nul": (usage, {"start_time": "1\x00"}),
        "end_before_start": (usage, {"start_time": 1000, "end_time": 10}),
        "bucket_width_2d": (usage, {"start_time": 0, "bucket_width": "2d"}),
        "group_by_unknown": (usage, {"start_time": 0, "group_by[]": "colour"}),
        "group_by_other_endpoint": (usage, {"start_time": 0, "group_by": "vector_store_id"}),
        "limit_zero": (usage, {"start_time": 0, "limit": 0}),
        "limit_over_1d_max": (usage, {"start_time": 0, "limit": 32}),
        "limit_over_1m_max": (usage, {"start_time": 0, "bucket_width": "1m", "limit": 1441}),
        "limit_text": (usage, {"start_time": 0, "limit": "many"}),
        "page_garbage": (usage, {"start_time": 0, "page": "garbage"}),
        "page_huge": (usage, {"start_time": 0, "page": "page_" + "9" * 30}),
        "page_misaligned": (usage, {"start_time": 0, "page": "page_7"}),
        "page_nul": (usage, {"start_time": 0, "page": "page_\x00"}),
        "batch_maybe": (usage, {"start_time": 0, "batch": "maybe"}),
        "models_nul": (usage, {"start_time": 0, "models[]": "a\x00"}),
        "thread_ids_conversation_nul": (usage, {"start_time": 0, "thread_ids[]": "conv_\x00"}),
        "costs_hourly": ("/organization/costs", {"start_time": 0, "bucket_width": "1h"}),
        "costs_limit_181": ("/organization/costs", {"start_time": 0, "limit": 181}),
        "costs_group_by_model": ("/organization/costs", {"start_time": 0, "group_by[]": "model"}),
        "costs_missing_start": ("/organization/costs", {}),
        "admin_keys_limit_zero": ("/organization/admin_api_keys", {"limit": 0}),
        "admin_keys_limit_101": ("/organization/admin_api_keys", {"limit": 101}),
        "admin_keys_order_up": ("/organization/admin_api_keys", {"order": "up"}),
        "admin_keys_after_nul": ("/organization/admin_api_keys", {"after": "key_\x00"}),
    }
    for endpoint in ("embeddings", "code_interpreter_sessions", "vector_stores", "file_search_calls"):
        queries[f"{endpoint}_missing_start"] = (f"/organization/usage/{endpoint}", {})
        queries[f"{endpoint}_group_by_model"] = (
            f"/organization/usage/{endpoint}",
            {"start_time": 0, "group_by": "model" if endpoint != "embeddings" else "vector_store_id"},
        )
    cases: list[Case] = [
        (f"organization-{name}", "GET", path, {"params": params}, 400) for name, (path, params) in queries.items()
    ]
    bodies: dict[str, dict[str, Any]] = {
        "missing_name": {},
        "name_int": {"name": 5},
        "name_too_long": {"name": "n" * 257},
        "name_nul": {"name": "a\x00"},
        "expires_zero": {"name": "k", "expires_in_seconds": 0},
        "expires_over_a_year": {"name": "k", "expires_in_seconds": 31536001},
        "expires_text": {"name": "k", "expires_in_seconds": "soon"},
    }
    cases += [
        (f"create_admin_key-{name}", "POST", "/organization/admin_api_keys", {"json": body}, 400)
        for name, body in bodies.items()
    ]
    cases += [
        ("admin_key-get_unknown", "GET", "/organization/admin_api_keys/key_nope", {}, 404),
        ("admin_key-delete_unknown", "DELETE", "/organization/admin_api_keys/key_nope", {}, 404),
        ("usage_run-unknown", "GET", "/organization/usage/runs/run_nope", {}, 404),
        ("usage_response-unknown", "GET", "/organization/usage/responses/resp_nope", {}, 404),
    ]
    return cases + _project_cases()


def _project_cases() -> list[Case]:
    """Projects, service accounts, project keys, users and the audit log. No case may create a key: the table's
    server is open, and a project key would close it."""
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        "projects_limit_zero": ("/organization/projects", {"limit": 0}),
        "projects_limit_101": ("/organization/projects", {"limit": 101}),
        "projects_limit_text": ("/organization/projects", {"limit": "many"}),
        "projects_include_archived_maybe": ("/organization/projects", {"include_archived": "maybe"}),
        "projects_after_nul": ("/organization/projects", {"after": "proj_\x00"}),
        "service_accounts_limit_zero": ("/organization/projects/{proj}/service_accounts", {"limit": 0}),
        "api_keys_limit_101": ("/organization/projects/{proj}/api_keys", {"limit": 101}),
        "api_keys_owner_access_bad": ("/organization/projects/{proj}/api_keys", {"owner_project_access": "all"}),
        "users_limit_zero": ("/organization/projects/{proj}/users", {"limit": 0}),
        "audit_effective_at_text": ("/organization/audit_logs", {"effective_at[gt]": "soon"}),
        "audit_effective_at_negative": ("/organization/audit_logs", {"effective_at[lte]": -1}),
        "audit_limit_zero": ("/organization/audit_logs", {"limit": 0}),
        "audit_after_and_before": ("/organization/audit_logs", {"after": "audit_log-a", "before": "audit_log-b"}),
        "audit_event_types_nul": ("/organization/audit_logs", {"event_types[]": "project.created\x00"}),
        "audit_after_nul": ("/organization/audit_logs", {"after": "audit_log-\x00"}),
    }
    cases: list[Case] = [
        (f"organization-{name}", "GET", path, {"params": params}, 400) for name, (path, params) in queries.items()
    ]
    project_bodies: dict[str, dict[str, Any]] = {
        "name_int": {"name": 5},
        "name_empty": {"name": ""},
        "name_too_long": {"name": "n" * 257},
        "name_nul": {"name": "a\x00"},
        "name_list": {"name": ["a"]},
    }
    cases += [
        (f"create_project-{name}", "POST", "/organization/projects", {"json": body}, 400)
        for name, body in {
            **project_bodies,
            "missing_name": {},
            "residency_int": {"name": "p", "residency": 1},
            "residency_unknown": {"name": "p", "residency": "mars"},
        }.items()
    ]
    cases += [
        (f"modify_project-{name}", "POST", "/organization/projects/{proj}", {"json": body}, 400)
        for name, body in project_bodies.items()
    ]
    account_bodies = {
        **project_bodies,
        "missing_name": {},
        "only_text": {"name": "s", "create_service_account_only": "yes"},
    }
    cases += [
        (f"create_service_account-{name}", "POST", "/organization/projects/{proj}/service_accounts", {"json": b}, 400)
        for name, b in account_bodies.items()
    ]
    unknown = "/organization/projects/proj_nope"
    proj = "/organization/projects/{proj}"
    cases += [
        ("project-get_unknown", "GET", unknown, {}, 404),
        ("project-modify_unknown", "POST", unknown, {"json": {"name": "x"}}, 404),
        ("project-archive_unknown", "POST", f"{unknown}/archive", {}, 404),
        ("project-service_accounts_unknown", "GET", f"{unknown}/service_accounts", {}, 404),
        ("project-create_service_account_unknown", "POST", f"{unknown}/service_accounts", {"json": {"name": "s"}}, 404),
        ("project-api_keys_unknown", "GET", f"{unknown}/api_keys", {}, 404),
        ("project-users_unknown", "GET", f"{unknown}/users", {}, 404),
        ("project-service_account_unknown", "GET", proj + "/service_accounts/svc_acct_x", {}, 404),
        ("project-delete_service_account_unknown", "DELETE", proj + "/service_accounts/x", {}, 404),
        ("project-api_key_unknown", "GET", proj + "/api_keys/key_nope", {}, 404),
        ("project-delete_api_key_unknown", "DELETE", proj + "/api_keys/key_nope", {}, 404),
        ("project-user_unknown", "GET", proj + "/users/user_nope", {}, 404),
        ("project-modify_default", "POST", "/organization/projects/proj_default", {"json": {"name": "x"}}, 400),
        ("project-archive_default", "POST", "/organization/projects/proj_default/archive", {}, 400),
        ("project-id_nul", "GET", "/organization/projects/proj_%00", {}, 400),
    ]
    return cases


def _limits_cases() -> list[Case]:
    """Rate limits, spend limits and spend alerts (organization and project paths)."""
    project = "/organization/projects/proj_default"
    lists = {
        "rate_limits_limit_zero": (f"{project}/rate_limits", {"limit": 0}),
        "rate_limits_limit_101": (f"{project}/rate_limits", {"limit": 101}),
        "rate_limits_limit_text": (f"{project}/rate_limits", {"limit": "all"}),
        "rate_limits_after_nul": (f"{project}/rate_limits", {"after": "rl-\x00"}),
        "alerts_limit_101": ("/organization/spend_alerts", {"limit": 101}),
        "alerts_order_up": ("/organization/spend_alerts", {"order": "up"}),
        "alerts_before_nul": (f"{project}/spend_alerts", {"before": "alert_\x00"}),
    }
    cases: list[Case] = [(f"limits-{n}", "GET", path, {"params": q}, 400) for n, (path, q) in lists.items()]
    limit_ok = {"threshold_amount": 100, "currency": "USD", "interval": "month"}
    alert_ok = {**limit_ok, "notification_channel": {"type": "email", "recipients": ["a@b.c"]}}
    spends = {
        "missing": {},
        "zero": {**limit_ok, "threshold_amount": 0},
        "float": {**limit_ok, "threshold_amount": 1.5},
        "text": {**limit_ok, "threshold_amount": "100"},
        "huge": {**limit_ok, "threshold_amount": 10**30},
        "euro": {**limit_ok, "currency": "EUR"},
        "weekly": {**limit_ok, "interval": "week"},
        "unknown_field": {**limit_ok, "hard": True},
    }.items()
    alerts = {
        "missing_channel": limit_ok,
        "negative": {**alert_ok, "threshold_amount": -1},
        "channel_sms": {**alert_ok, "notification_channel": {"type": "sms", "recipients": []}},
        "recipients_text": {**alert_ok, "notification_channel": {"type": "email", "recipients": "a@b.c"}},
        "recipients_101": {**alert_ok, "notification_channel": {"type": "email", "recipients": ["a@b.c"] * 101}},
        "subject_int": {**alert_ok, "notification_channel": {"type": "email", "recipients": [], "subject_prefix": 5}},
    }.items()
    rates = {
        "negative": {"max_requests_per_1_minute": -1},
        "float": {"max_tokens_per_1_minute": 2.5},
        "text": {"max_tokens_per_1_minute": "many"},
        "unknown_field": {"max_requests_per_1_hour": 5},
        "array": [],
    }.items()
    for base in ("/organization", project):
        scope = "org" if base == "/organization" else "project"
        cases += [(f"spend_limit-{scope}-{n}", "POST", f"{base}/spend_limit", {"json": b}, 400) for n, b in spends]
        cases += [(f"spend_alert-{scope}-{n}", "POST", f"{base}/spend_alerts", {"json": b}, 400) for n, b in alerts]
        cases += [
            (f"spend_alert-{scope}-get_unknown", "GET", f"{base}/spend_alerts/alert_nope", {}, 404),
            (f"spend_alert-{scope}-update_unknown", "POST", f"{base}/spend_alerts/alert_nope", {"json": alert_ok}, 404),
            (f"spend_alert-{scope}-delete_unknown", "DELETE", f"{base}/spend_alerts/alert_nope", {}, 404),
            (f"spend_alert-{scope}-id_nul", "GET", f"{base}/spend_alerts/alert_%00", {}, 400),
            (f"spend_limit-{scope}-malformed", "POST", f"{base}/spend_limit", {"content": b'{"currency": '}, 400),
        ]
    cases += [(f"rate_limit-{n}", "POST", f"{project}/rate_limits/rl-m", {"json": b}, 400) for n, b in rates]
    cases += [
        ("rate_limit-unknown_model", "POST", f"{project}/rate_limits/rl-no-such-model", {"json": {}}, 404),
        ("rate_limit-not_an_id", "POST", f"{project}/rate_limits/limit-7", {"json": {}}, 404),
        ("rate_limit-id_nul", "POST", f"{project}/rate_limits/rl-%00", {"json": {}}, 400),
        ("limits-unknown_project", "GET", "/organization/projects/proj_nope/rate_limits", {}, 404),
        ("limits-unknown_project_spend", "GET", "/organization/projects/proj_nope/spend_limit", {}, 404),
        ("limits-project_nul", "GET", "/organization/projects/proj_%00/spend_alerts", {}, 400),
        ("spend_limit-org-none_set", "GET", "/organization/spend_limit", {}, 404),
        ("spend_limit-org-delete_none", "DELETE", "/organization/spend_limit", {}, 404),
    ]
    return cases


def _foreign_cases() -> list[Case]:
    """Another project's objects (made in a second project of this open server, through its OpenAI-Project header):
    in the path or in a body they are unknown ids, 404 in the envelope (tests/isolation compares every endpoint's
    answer with an unknown id's)."""
    att = {
        "role": "user",
        "content": "x",
        "attachments": [{"file_id": "{foreign_file}", "tools": [{"type": "file_search"}]}],
    }
    return [
        ("foreign_assistant", "GET", "/assistants/{foreign_asst}", {}, 404),
        ("foreign_assistant_delete", "DELETE", "/assistants/{foreign_asst}", {}, 404),
        ("foreign_thread_messages", "GET", "/threads/{foreign_thread}/messages", {}, 404),
        ("foreign_file_content", "GET", "/files/{foreign_file}/content", {}, 404),
        ("foreign_vector_store", "POST", "/vector_stores/{foreign_vs}", {"json": {"name": "x"}}, 404),
        ("foreign_run_assistant", "POST", "/threads/{thread}/runs", {"json": {"assistant_id": "{foreign_asst}"}}, 404),
        ("foreign_attachment", "POST", "/threads/{thread}/messages", {"json": att}, 404),
        (
            "foreign_tool_resources_store",
            "POST",
            "/threads",
            {"json": {"tool_resources": {"file_search": {"vector_store_ids": ["{foreign_vs}"]}}}},
            404,
        ),
        ("foreign_store_file", "POST", "/vector_stores/{vs}/files", {"json": {"file_id": "{foreign_file}"}}, 404),
    ]


CASES: list[Case] = (
    _malformed_cases()
    + _assistant_cases()
    + _thread_and_message_cases()
    + _id_cases()
    + _list_cases()
    + _file_cases()
    + _upload_cases()
    + _console_cases()
    + _route_cases()
    + _attachment_cases()
    + _surrogate_cases()
    + _filter_cases()
    + _vector_store_cases()
    + _query_and_path_cases()
    + _size_cases()
    + _conversation_and_response_cases()
    + _container_cases()
    + _organization_cases()
    + _limits_cases()
    + _foreign_cases()
)


@pytest.fixture(scope="module")
def objs(server: ServerHandle) -> dict[str, str]:
    """Real objects to aim the bad requests at."""
    with raw_http_client(server.base_url) as http:

        def post(path: str, **kwargs: Any) -> dict[str, Any]:
            r = http.post(path, **kwargs)
            assert r.status_code == 200, r.text
            return r.json()

        def upload(size: int = 10) -> str:
            return post(
                "/uploads",
                json={"filename": "u.bin", "purpose": "assistants", "bytes": size, "mime_type": "text/plain"},
            )["id"]

        def add_part(upload_id: str, data: bytes) -> str:
            return post(f"/uploads/{upload_id}/parts", files={"data": ("upload", data)})["id"]

        thread = post("/threads", json={"messages": [{"role": "user", "content": "hi"}]})["id"]
        ids = {
            "asst": post("/assistants", json={"model": "m"})["id"],
            "thread": thread,
            "msg": http.get(f"/threads/{thread}/messages").json()["data"][0]["id"],
            "file": post("/files", files={"file": ("f.txt", b"x")}, data={"purpose": "assistants"})["id"],
            "upload": upload(),
            "cancelled": upload(),
            "completed": upload(2),
        }
        ids["part"] = add_part(ids["upload"], b"abc")
        ids["other_part"] = add_part(upload(), b"xyz")
        add_part(ids["cancelled"], b"abc")
        post(f"/uploads/{ids['cancelled']}/cancel")
        done = add_part(ids["completed"], b"ok")
        post(f"/uploads/{ids['completed']}/complete", json={"part_ids": [done]})
        ids["vs"] = post("/vector_stores", json={"name": "bad input"})["id"]
        post(f"/vector_stores/{ids['vs']}/files", json={"file_id": ids["file"]})
        ids["batch"] = post(f"/vector_stores/{ids['vs']}/file_batches", json={"file_ids": [ids["file"]]})["id"]
        # A run on a thread of its own (no model provider is configured: it fails, which is fine for these requests).
        ids["run_thread"] = post("/threads")["id"]
        ids["run"] = post(f"/threads/{ids['run_thread']}/runs", json={"assistant_id": ids["asst"]})["id"]
        ids["conv"] = post("/conversations", json={"items": [{"role": "user", "content": "hi"}]})["id"]
        ids["conv_item"] = http.get(f"/conversations/{ids['conv']}/items").json()["data"][0]["id"]
        ids["resp"] = _stored_response(server)
        ids["cntr"] = post("/containers", json={"name": "bad input"})["id"]
        ids["cfile"] = post(f"/containers/{ids['cntr']}/files", json={"file_id": ids["file"]})["id"]
        ids["proj"] = post("/organization/projects", json={"name": "bad input"})["id"]  # no key: the server stays open
        ids.update(_foreign_objects(server))
        return ids


def _foreign_objects(server: ServerHandle) -> dict[str, str]:
    """An assistant, a thread, a file and a vector store of a second project (this server is open: the
    OpenAI-Project header picks the project)."""
    with raw_http_client(server.base_url) as http:
        project = http.post("/organization/projects", json={"name": "bad input elsewhere"}).json()["id"]
        http.headers["OpenAI-Project"] = project
        return {
            "foreign_asst": http.post("/assistants", json={"model": "m"}).json()["id"],
            "foreign_thread": http.post("/threads", json={}).json()["id"],
            "foreign_file": http.post("/files", files={"file": ("f.txt", b"x")}, data={"purpose": "assistants"}).json()[
                "id"
            ],
            "foreign_vs": http.post("/vector_stores", json={"name": "elsewhere"}).json()["id"],
        }


def _stored_response(server: ServerHandle) -> str:
    """A response row written into the server's database (POST /v1/responses comes with their execution)."""
    from threadline.services.response_models import ResponseCreate
    from threadline.services.responses import response_object
    from threadline.store import Store, now
    from threadline.store import responses as rows

    body = ResponseCreate.model_validate({"model": "m", "input": "x"})
    response = response_object(
        body, response_id="resp_badinput" + server.name.replace("-", ""), created_at=now(), model="m"
    )
    store = Store(server.database_url)
    try:
        with store.write() as conn:
            if rows.fetch(conn, response["id"]) is None:
                rows.insert(conn, response, [{"id": "msg_in", "type": "message", "role": "user", "content": []}])
    finally:
        store.close()
    return response["id"]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, object_id in ids.items():
            value = value.replace("{" + key + "}", object_id)
        return value
    if isinstance(value, bytes):
        for key, object_id in ids.items():
            value = value.replace(b"{" + key.encode() + b"}", object_id.encode())
        return value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def table_http(server: ServerHandle) -> Iterator[tuple[Any, ResponseValidator]]:
    """One keep-alive client for the whole table (hundreds of requests); each test checks the validator itself."""
    validator = ResponseValidator()
    with raw_http_client(server.base_url, validator=validator) as http:
        yield http, validator


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(
    table_http: tuple[Any, ResponseValidator],
    objs: dict[str, str],
    server: ServerHandle,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    http, validator = table_http
    kwargs = _fill(kwargs, objs)
    path = _fill(path, objs)
    if "declared_length" in kwargs:
        response = _declared_length_response(server, path, kwargs["declared_length"], method, "application/json")
        validator.check(method, f"/v1{path.split('?')[0]}", response.status_code, response.content)
        validator.assert_clean()
        check_error_response(response, status)
        return
    if "raw_json" in kwargs:
        kwargs["content"] = json.dumps(kwargs.pop("raw_json")).encode()  # \uXXXX escapes, even for surrogates
    if "content" in kwargs:
        kwargs.setdefault("headers", {}).setdefault("Content-Type", "application/json")
    try:
        response = http.request(method, path, **kwargs)
    finally:
        validator.assert_clean()  # the error body matches the spec's ErrorResponse
    check_error_response(response, status)


def test_case_ids_are_unique() -> None:
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))


def test_objects_survive_bad_input(http: Any, objs: dict[str, str]) -> None:
    """After all the rejected requests above, the targets are unchanged and usable."""
    a = http.get(f"/assistants/{objs['asst']}").json()
    assert a["model"] == "m" and a["tools"] == [] and a["metadata"] == {}
    t = http.get(f"/threads/{objs['thread']}").json()
    assert t["metadata"] == {}
    m = http.get(f"/threads/{objs['thread']}/messages/{objs['msg']}").json()
    assert m["content"][0]["text"]["value"] == "hi"
    up = http.post(f"/uploads/{objs['upload']}/parts", files={"data": ("upload", b"1234567")})
    assert up.status_code == 200
    done = http.post(f"/uploads/{objs['upload']}/complete", json={"part_ids": [objs["part"], up.json()["id"]]})
    assert done.status_code == 200 and done.json()["status"] == "completed"


# -- oversize bodies -------------------------------------------------------------------------------------------


def _declared_length_response(
    server: ServerHandle,
    path: str,
    length: int,
    method: str = "POST",
    content_type: str = "multipart/form-data; boundary=zzz",
) -> httpx.Response:
    """Send only headers declaring a huge body (and its first bytes); the server must answer without the rest."""
    request = (
        f"{method} /v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer test\r\n"
        f"OpenAI-Beta: assistants=v2\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request + b"--zzz\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                lengths = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                if lengths and len(rest) >= int(lengths[0].split(b":")[1]):
                    break
    return parse_raw_response(data, method, f"http://127.0.0.1:{server.port}/v1{path}")


@pytest.mark.parametrize(
    ("path", "length"),
    [("/files", 600 * 1024 * 1024), ("/uploads/{upload}/parts", 100 * 1024 * 1024)],
    ids=["file_600MB", "part_100MB"],
)
def test_declared_length_over_limit(
    server: ServerHandle, objs: dict[str, str], validator: ResponseValidator, path: str, length: int
) -> None:
    path = _fill(path, objs)
    response = _declared_length_response(server, path, length)
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    validator.check("POST", f"/v1{path}", response.status_code, response.content)


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        (
            "/threads/{thread}/messages",
            {"role": "user", "content": "x" * 256_001},
            "content",
            "Invalid 'content': string too long. Expected a string with maximum length 256000, but got a string "
            "with length 256001 instead.",
        ),
        ("/threads", {"messages": [{"role": "user", "content": "x" * 256_001}]}, "messages[0].content", None),
        ("/threads/{thread}/messages", {"role": "user", "content": 5}, "content", None),
        ("/threads", {"metadata": {"k": "\ud800"}}, "metadata.k", None),
        ("/threads", {"metadata": {"\ud800": "v"}}, "metadata", None),
        (
            "/assistants",
            {"model": "m", "tools": [_function(_deep(253))]},
            "tools[0].function.parameters",
            "Invalid 'tools[0].function.parameters': object is nested too deeply. Expected at most 64 levels of "
            "nesting, but got 253 levels instead.",
        ),
        (
            "/assistants",
            {"model": "m", "response_format": _json_schema(_deep(70))},
            "response_format.json_schema.schema",
            None,
        ),
        (SEARCH, {"query": "q", "filters": {"type": "in", "key": "k", "value": False}}, "filters.value", None),
        (
            SEARCH,
            {"query": "q", "filters": {"type": "or", "filters": [{"type": "eq", "key": "k", "value": [1]}]}},
            "filters.filters[0].value",
            None,
        ),
        (SEARCH, {"query": "q", "filters": {"type": "and", "filters": []}}, "filters.filters", None),
    ],
    ids=[
        "message_content_too_long",
        "thread_message_content_too_long",
        "message_content_int",
        "metadata_value_surrogate",
        "metadata_key_surrogate",
        "parameters_depth",
        "schema_depth",
        "filter_in_boolean",
        "filter_nested_eq_array",
        "filter_and_empty",
    ],
)
def test_error_names_the_request_field(
    http: Any, objs: dict[str, str], path: str, body: dict[str, Any], param: str, message: str | None
) -> None:
    """`param` is the field as the client sent it, never a pydantic label such as `content.constrained-str`."""
    r = http.post(_fill(path, objs), content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    check_error_response(r, 400)
    err = r.json()["error"]
    assert err["param"] == param, err
    assert f"'{param}'" in err["message"], err
    if message is not None:
        assert err["message"] == message


@pytest.mark.parametrize(
    ("content", "content_type", "got"),
    [
        (b"[]", "application/json", "an array"),
        (b'"x"', "application/json", "a string"),
        (b'{"metadata": {}}', "text/plain", "a body that is not application/json"),
    ],
)
def test_body_that_is_not_an_object(http: Any, content: bytes, content_type: str, got: str) -> None:
    """The body as a whole has no field name: param is null, not an empty string."""
    r = http.post("/threads", content=content, headers={"Content-Type": content_type})
    check_error_response(r, 400)
    err = r.json()["error"]
    assert err["param"] is None, err
    assert err["message"] == f"Invalid body: expected a JSON object, but got {got} instead.", err

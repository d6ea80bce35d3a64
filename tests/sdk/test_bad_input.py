"""Bad input against every foundation endpoint, with raw HTTP: always a 4xx in the OpenAI error envelope, never a 500.

Each case is one request. Bodies are given as `json=` (serialised by httpx), `content=` (raw bytes, sent as
application/json unless headers say otherwise), or `files=`/`data=` (multipart). Path placeholders such as {asst}
are filled with real objects created once per server.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from support.schemas import ResponseValidator
from support.sdk import raw_http_client
from support.server import ServerHandle

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
]
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
        if name not in ("create_thread", "modify_thread", "modify_assistant", "modify_message"):  # bodies optional
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
    ]
    prefixes = {"asst": "asst_", "thread": "thread_", "msg": "msg_", "file": "file-", "upload": "upload_"}
    wrong = {"asst": "thread_abc", "thread": "asst_abc", "msg": "thread_abc", "file": "file_abc", "upload": "part_abc"}
    bodies = {
        "/messages": {"role": "user", "content": "x"},
        "/complete": {"part_ids": ["part_x"]},
        "/assistants/{}": {"name": "x"},
        "/threads/{}": {"metadata": {}},
        "/messages/{}": {"metadata": {}},
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
        return ids


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, object_id in ids.items():
            value = value.replace("{" + key + "}", object_id)
        return value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def check_error_response(response: Any, expected: int) -> None:
    """4xx (the expected one), JSON, and exactly the OpenAI error envelope."""
    what = f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:500]}"
    assert response.status_code < 500, f"server error: {what}"
    assert response.status_code == expected, f"expected {expected}: {what}"
    assert response.headers.get("content-type", "").startswith("application/json"), what
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, what
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, what
    assert isinstance(err["message"], str) and err["message"].strip(), what
    assert isinstance(err["type"], str) and err["type"], what
    assert err["param"] is None or isinstance(err["param"], str), what
    assert err["code"] is None or isinstance(err["code"], str), what
    assert "Traceback" not in err["message"] and "pydantic" not in err["message"].lower(), what


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
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    http, validator = table_http
    kwargs = _fill(kwargs, objs)
    if "content" in kwargs:
        kwargs.setdefault("headers", {}).setdefault("Content-Type", "application/json")
    try:
        response = http.request(method, _fill(path, objs), **kwargs)
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


def _declared_length_response(server: ServerHandle, path: str, length: int) -> tuple[int, bytes]:
    """Send only headers declaring a huge multipart body; the server must answer without reading it."""
    request = (
        f"POST /v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer test\r\n"
        f"Content-Type: multipart/form-data; boundary=zzz\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
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
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize(
    ("path", "length"),
    [("/files", 600 * 1024 * 1024), ("/uploads/{upload}/parts", 100 * 1024 * 1024)],
    ids=["file_600MB", "part_100MB"],
)
def test_declared_length_over_limit(
    server: ServerHandle, objs: dict[str, str], validator: ResponseValidator, path: str, length: int
) -> None:
    path = _fill(path, objs)
    status, body = _declared_length_response(server, path, length)
    assert 400 <= status < 500, (status, body)
    validator.check("POST", f"/v1{path}", status, body)


def _stream(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block[:n]
        sent += n


def test_real_part_over_64mb(http: Any, objs: dict[str, str], server: ServerHandle) -> None:
    """A part of 64 MB + 1 byte, streamed without Content-Length, is rejected after reading (the limit is real)."""
    up = http.post(
        "/uploads",
        json={"filename": "big.bin", "purpose": "assistants", "bytes": 70_000_000, "mime_type": "text/plain"},
    ).json()
    boundary = "partboundary"
    size = 64 * 1024 * 1024 + 1

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="data"; filename="upload"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from _stream(size)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = http.post(
        f"/uploads/{up['id']}/parts",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=120,
    )
    check_error_response(r, 400)
    # The upload is still usable.
    ok = http.post(f"/uploads/{up['id']}/parts", files={"data": ("upload", b"fine")})
    assert ok.status_code == 200, ok.text

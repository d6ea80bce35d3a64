"""Small assertions shared by the SDK tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
import openai
import pytest


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    """The `error` object of an SDK exception ({message, type, param, code})."""
    body = exc.body
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    return body.get("error", body) if "message" not in body else body


def expect_error(
    kind: type[openai.APIStatusError],
    call: Callable[[], Any],
    message: str | None = None,
    *,
    code: str | None | type[Ellipsis] = ...,
    param: str | None | type[Ellipsis] = ...,
    contains: str | None = None,
) -> dict[str, Any]:
    """Run call(), expect exactly the SDK exception `kind`, check the message; returns the error object."""
    with pytest.raises(openai.APIStatusError) as info:
        call()
    assert type(info.value) is kind, f"expected {kind.__name__}, got {type(info.value).__name__}: {info.value}"
    err = error_body(info.value)
    assert set(err) >= {"message", "type", "param", "code"}, err
    if message is not None:
        assert err["message"] == message
    if contains is not None:
        assert contains in err["message"], err["message"]
    if code is not ...:
        assert err["code"] == code, err
    if param is not ...:
        assert err["param"] == param, err
    return err


def check_pagination(
    list_sdk: Callable[..., Any],
    http: Any,
    path: str,
    ids_in_creation_order: Sequence[str],
    *,
    exact: bool,
    before: bool = True,
    query: dict[str, Any] | None = None,
) -> None:
    """SDK auto-pagination in both orders with limit=4, plus raw after/before/has_more/first_id/last_id.

    `list_sdk(**params)` is e.g. `client.beta.assistants.list`; `http` a raw client on the server's /v1, `path` the
    list path and `query` extra filters for it (matching list_sdk's). With exact=False the listing may hold other
    objects too (created by other tests of the module), so the ids must form a contiguous run in it.
    """
    created = list(ids_in_creation_order)
    asc = [o.id for o in list_sdk(limit=4, order="asc")]  # the SDK page iterator follows `after`
    desc = [o.id for o in list_sdk(limit=4, order="desc")]
    assert len(asc) == len(set(asc)), "duplicates in the ascending listing"
    assert desc == asc[::-1]
    if exact:
        assert asc == created
    else:
        start = asc.index(created[0])
        assert asc[start : start + len(created)] == created

    def raw(**params: Any) -> dict[str, Any]:
        response = http.get(path, params={**(query or {}), **params})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        ids = [o["id"] for o in body["data"]]
        assert (body["first_id"], body["last_id"]) == ((ids[0], ids[-1]) if ids else (None, None))
        return body

    page = raw(limit=4, order="asc", after=created[0])
    assert [o["id"] for o in page["data"]] == created[1:5]
    assert page["has_more"] is True

    # Walking pages by hand with `after`, the way a client without auto-pagination does.
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 4, "order": "desc"}
    while True:
        page = raw(**params)
        chunk = [o["id"] for o in page["data"]]
        assert len(chunk) <= 4
        seen.extend(chunk)
        if not page["has_more"]:
            break
        params["after"] = chunk[-1]
    assert seen == desc

    if exact:  # exactly `limit` items left: has_more must be false (no empty trailing page)
        last = raw(limit=4, order="asc", after=created[-5])
        assert [o["id"] for o in last["data"]] == created[-4:]
        assert last["has_more"] is False

    if before:
        # `before` = the page nearest the cursor, still in the requested order.
        assert [o["id"] for o in raw(limit=3, order="asc", before=created[10])["data"]] == created[7:10]
        assert [o["id"] for o in raw(limit=3, order="desc", before=created[10])["data"]] == created[13:10:-1]
        # after + before together bound the page on both sides.
        between = raw(limit=100, order="asc", after=created[2], before=created[6])
        assert [o["id"] for o in between["data"]] == created[3:6]


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


def parse_raw_response(data: bytes, method: str, url: str) -> httpx.Response:
    """An httpx.Response from the raw bytes of an HTTP/1.1 response (for requests sent over a bare socket)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = [tuple(p.strip() for p in ln.decode("latin-1").split(":", 1)) for ln in lines[1:] if b":" in ln]
    return httpx.Response(
        int(lines[0].split(b" ")[1]), headers=headers, content=body, request=httpx.Request(method, url)
    )

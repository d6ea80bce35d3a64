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
    "conversation": "conv_",
    "response": "resp_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
    "file_search_call": "fs_",
    "code_interpreter_call": "ci_",
    "compaction": "cmp_",
    "container": "cntr_",
    "container_file": "cfile_",
    "project": "proj_",
    "service_account": "svc_acct_",
    "audit_log": "audit_log-",
    "spend_alert": "alert_",
}
# A thread is a conversation: one threads row, shown as thread_X by the Assistants API and conv_X by the
# Conversations API (the same suffix), and either API accepts either id.
THREAD_PREFIXES = (PREFIXES["thread"], PREFIXES["conversation"])


def new_id(kind: str) -> str:
    # One read of the OS's random source instead of 24 secrets.choice calls (one each); bytes >= 248 are dropped
    # so that every character stays equally likely (248 = 4 * 62).
    chars: list[str] = []
    while len(chars) < 24:
        chars += [_ALPHABET[b % 62] for b in secrets.token_bytes(32) if b < 248]
    return PREFIXES[kind] + "".join(chars[:24])


def has_prefix(kind: str, value: str) -> bool:
    prefix = PREFIXES[kind]
    return value.startswith(prefix) and len(value) > len(prefix) and len(value) <= 128


def thread_row_id(value: str) -> str:
    """The threads row id (`thread_X`) of a thread or conversation id (`thread_X` or `conv_X`)."""
    if value.startswith(PREFIXES["conversation"]):
        return PREFIXES["thread"] + value[len(PREFIXES["conversation"]) :]
    return value


def conversation_id(thread_id: str) -> str:
    """The Conversations API id (`conv_X`) of a threads row (`thread_X`)."""
    return PREFIXES["conversation"] + thread_id.removeprefix(PREFIXES["thread"])

"""`prompt: {"id": "asst_…"}` on POST /v1/responses: an Assistants assistant as reusable settings (contract §7.4).

Real prompts are `pmpt_` dashboard templates (deprecated); naming an assistant in `prompt.id` is threadline's
extension. The response inherits the assistant's model, instructions, tools (with its tool_resources folded in),
temperature and top_p; each of them the request sends itself wins (`instructions` replace, as a run's do).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from ..store import Store, schema
from . import response_models as rm
from .errors import Invalid, NotFound, check_id

PARAM = "prompt.id"
TEMPLATES_UNSUPPORTED = (
    "Prompt templates ('pmpt_' ids) are not supported. 'prompt.id' may name an assistant ('asst_…'): the response "
    "then uses its model, instructions and tools."
)
_TOOL = TypeAdapter(rm.Tool)


def assistant_tools(assistant: dict[str, Any]) -> list[Any]:
    """An assistant's tools in Responses shapes (validated rm.Tool models): function tools flattened (`strict`
    explicit, false by default as in Assistants), file_search given the assistant's vector stores, code_interpreter
    an auto container holding the assistant's code_interpreter files."""
    resources = assistant.get("tool_resources") or {}
    out = []
    for tool in assistant.get("tools") or []:
        kind = tool.get("type")
        if kind == "function":
            fn = tool.get("function") or {}
            shaped = {"type": "function", "name": fn.get("name"), "strict": bool(fn.get("strict") or False)}
            shaped |= {k: fn[k] for k in ("description", "parameters") if fn.get(k) is not None}
        elif kind == "file_search":
            config = tool.get("file_search") or {}
            stores = (resources.get("file_search") or {}).get("vector_store_ids") or []
            shaped = {"type": "file_search", "vector_store_ids": list(stores)}
            if config.get("max_num_results") is not None:
                shaped["max_num_results"] = config["max_num_results"]
            ranking = config.get("ranking_options")
            if ranking:  # the Assistants ranker names (underscores) have no Responses twin but "auto"
                shaped["ranking_options"] = {"ranker": "auto", "score_threshold": ranking.get("score_threshold", 0.0)}
        elif kind == "code_interpreter":
            files = (resources.get("code_interpreter") or {}).get("file_ids") or []
            shaped = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": list(files)}}
        else:
            continue
        out.append(_TOOL.validate_python(shaped))
    return out


def with_assistant(store: Store, body: rm.ResponseCreate) -> rm.ResponseCreate:
    """`body` with the settings of the assistant its `prompt.id` names filled in where the request left them out
    (`body` itself without a prompt). Raises Invalid (a `pmpt_` or other non-assistant id, `variables`) or NotFound
    (404, param `prompt.id`). Blocking (one read)."""
    prompt = body.prompt
    if prompt is None:
        return body
    if prompt.id.startswith("pmpt_"):
        raise Invalid(TEMPLATES_UNSUPPORTED, param=PARAM, code="invalid_value")
    check_id("assistant", prompt.id, PARAM)
    if prompt.variables:
        raise Invalid(
            "Invalid 'prompt.variables': an assistant has no template variables.",
            param="prompt.variables",
            code="invalid_value",
        )
    with store.read() as conn:
        assistant = Store.fetch(conn, schema.assistants, prompt.id)
    if assistant is None:
        missing = NotFound("assistant", prompt.id)
        missing.param = PARAM
        raise missing
    sent = body.model_fields_set
    update: dict[str, Any] = {}
    if not body.model:
        update["model"] = assistant.get("model")
    if "instructions" not in sent or body.instructions is None:
        update["instructions"] = assistant.get("instructions")
    if "tools" not in sent or body.tools is None:
        update["tools"] = assistant_tools(assistant)
    for key in ("temperature", "top_p"):
        if getattr(body, key) is None and assistant.get(key) is not None:
            update[key] = assistant[key]
    return body.model_copy(update=update)


__all__ = ["assistant_tools", "with_assistant"]

"""Assistants: creation, modification, reading and deletion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from ..ids import new_id
from ..store import Page, Store, now, schema
from ..store.sql import ListParams
from . import tool_resources
from .deps import Deps
from .errors import NotFound, check_id
from .tool_resources import ToolResources

T = schema.assistants


@dataclass
class NewAssistant:
    """An assistant to create; `tools` and `response_format` are already in their wire form."""

    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_resources: ToolResources | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = "auto"


class AssistantChanges(TypedDict, total=False):
    """The fields a modify request sent (`model` None leaves the model as it is)."""

    name: str | None
    description: str | None
    instructions: str | None
    model: str | None
    tools: list[dict[str, Any]]
    metadata: dict[str, str] | None
    temperature: float | None
    top_p: float | None
    response_format: Any
    tool_resources: ToolResources | None


def create(deps: Deps, new: NewAssistant) -> dict[str, Any]:
    """Create an assistant; raises Invalid / NotFound for a file or vector store its tool_resources name."""
    with deps.store.write() as conn:
        assistant_id = new_id("assistant")
        obj = {
            "id": assistant_id,
            "object": "assistant",
            "created_at": now(),
            "name": new.name,
            "description": new.description,
            "model": new.model,
            "instructions": new.instructions,
            "tools": new.tools,
            "tool_resources": tool_resources.resolve(deps, conn, new.tool_resources, owner=assistant_id),
            "metadata": new.metadata or {},
            "top_p": 1.0 if new.top_p is None else new.top_p,
            "temperature": 1.0 if new.temperature is None else new.temperature,
            "response_format": new.response_format,
        }
        Store.insert(conn, T, obj)
    return obj


def list_assistants(store: Store, params: ListParams) -> Page:
    return store.page(T, **params.__dict__)


def get_raw(store: Store, assistant_id: str) -> str:
    """The stored assistant as JSON text; raises Invalid / NotFound."""
    check_id("assistant", assistant_id, "assistant_id")
    raw = store.get_raw(T, assistant_id)
    if raw is None:
        raise NotFound("assistant", assistant_id)
    return raw


def modify(deps: Deps, assistant_id: str, changes: AssistantChanges) -> dict[str, Any]:
    """Apply a modify request's fields and save the assistant."""
    check_id("assistant", assistant_id, "assistant_id")
    with deps.store.write() as conn:
        obj = Store.fetch(conn, T, assistant_id, lock=True)
        if obj is None:
            raise NotFound("assistant", assistant_id)
        for name in ("name", "description", "instructions", "model", "tools", "response_format"):
            if name in changes and (name != "model" or changes["model"] is not None):
                obj[name] = changes[name]  # type: ignore[literal-required]
        if "metadata" in changes:
            obj["metadata"] = changes["metadata"] or {}
        if "temperature" in changes:
            obj["temperature"] = 1.0 if changes["temperature"] is None else changes["temperature"]
        if "top_p" in changes:
            obj["top_p"] = 1.0 if changes["top_p"] is None else changes["top_p"]
        if "tool_resources" in changes:
            obj["tool_resources"] = tool_resources.resolve(
                deps, conn, changes["tool_resources"], owner=assistant_id, existing=obj.get("tool_resources")
            )
        Store.update(conn, T, obj)
    return obj


def delete(store: Store, assistant_id: str) -> None:
    check_id("assistant", assistant_id, "assistant_id")
    with store.write() as conn:
        if not Store.delete(conn, T, assistant_id):
            raise NotFound("assistant", assistant_id)

"""Request models (api/models.py) turned into the services' commands."""

from __future__ import annotations

from ..services.messages import Attachment, NewMessage
from ..services.threads import NewThread
from ..services.tool_resources import FileSearchResources, ToolResources
from ..services.vector_stores import NewVectorStore
from . import models


def chunking(value: models.AutoChunking | models.StaticChunking | None) -> dict | None:
    return value.model_dump() if value is not None else None


def tool_resources(value: models.ToolResources | models.ToolResourcesIds | None) -> ToolResources | None:
    if value is None:
        return None
    out = ToolResources()
    if value.code_interpreter is not None:
        out.code_interpreter = list(value.code_interpreter.file_ids)
    fs = value.file_search
    if fs is not None:
        helpers = getattr(fs, "vector_stores", None)
        out.file_search = FileSearchResources(
            vector_store_ids=fs.vector_store_ids,
            vector_stores=None
            if helpers is None
            else [
                NewVectorStore(
                    file_ids=list(h.file_ids), chunking_strategy=chunking(h.chunking_strategy), metadata=h.metadata
                )
                for h in helpers
            ],
        )
    return out


def new_message(body: models.MessageCreate) -> NewMessage:
    content = body.content if isinstance(body.content, str) else [part.model_dump() for part in body.content]
    attachments = None
    if body.attachments is not None:
        attachments = [Attachment(att.file_id, [t.type for t in att.tools]) for att in body.attachments]
    return NewMessage(role=body.role, content=content, attachments=attachments, metadata=body.metadata)


def new_thread(body: models.ThreadCreate) -> NewThread:
    return NewThread(
        messages=[new_message(m) for m in body.messages or []],
        tool_resources=tool_resources(body.tool_resources),
        metadata=body.metadata,
    )

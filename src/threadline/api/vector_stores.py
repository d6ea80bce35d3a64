"""/v1/vector_stores: stores, their files, file batches, and search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import Field, field_validator, model_validator

from ..file_search import score_details
from ..retrieval.filters import validate_filter
from ..retrieval.index import CANDIDATES, HYBRID_VECTOR_WEIGHT
from ..services import vector_stores
from ..services.vector_stores import FileToAdd, NewVectorStore, StoreChanges
from . import commands, models
from .common import (
    ListParams,
    check_id,
    deleted,
    frees_storage,
    json,
    list_params,
    page_response,
    poll_headers,
    runtime,
)
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"], route_class=JSONRoute)

# -- request bodies ------------------------------------------------------------------------------------------------

AttributeValue = Annotated[str, Field(max_length=512)] | float | bool


def check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > 16:
        raise ValueError(
            "Invalid 'attributes': too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(value)} properties instead."
        )
    for key in value:
        if len(key) > 64:
            raise ValueError(f"Invalid 'attributes': keys must be at most 64 characters, got {len(key)}.")
    return value


class ExpiresAfter(models.Strict):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class StoreCreate(models.WithMetadata):
    file_ids: Annotated[list[str], Field(max_length=500)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    description: Annotated[str, Field(max_length=512)] | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: models.ChunkingStrategy | None = None


class StoreModify(models.WithMetadata):
    name: Annotated[str, Field(max_length=256)] | None = None
    expires_after: ExpiresAfter | None = None


class FileAttach(models.Strict):
    file_id: str
    chunking_strategy: models.ChunkingStrategy | None = None
    attributes: dict[str, AttributeValue] | None = None

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict | None) -> dict | None:
        return check_attributes(value)


class FileUpdate(models.Strict):
    attributes: dict[str, AttributeValue] | None

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict | None) -> dict | None:
        return check_attributes(value)


class BatchCreate(models.Strict):
    file_ids: Annotated[list[str], Field(min_length=1, max_length=2000)] | None = None
    files: Annotated[list[FileAttach], Field(min_length=1, max_length=2000)] | None = None
    chunking_strategy: models.ChunkingStrategy | None = None
    attributes: dict[str, AttributeValue] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> BatchCreate:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("Exactly one of 'file_ids' or 'files' must be provided.")
        return self


class SearchRanking(models.Strict):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class SearchRequest(models.Strict):
    query: (
        Annotated[str, Field(min_length=1, max_length=4096)] | Annotated[list[str], Field(min_length=1, max_length=10)]
    )
    rewrite_query: bool = False
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    filters: dict[str, Any] | None = None
    ranking_options: SearchRanking | None = None

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            validate_filter(value)
        return value


# -- stores --------------------------------------------------------------------------------------------------------


@router.post("")
def create_store(body: StoreCreate, request: Request) -> Response:
    new = NewVectorStore(
        name=body.name,
        file_ids=body.file_ids or [],
        chunking_strategy=commands.chunking(body.chunking_strategy),
        metadata=body.metadata,
        expires_after=body.expires_after.model_dump() if body.expires_after else None,
    )
    return json(vector_stores.create(runtime(request), new))


@router.get("")
def list_stores(request: Request, params: ListParams = Depends(list_params)) -> Response:
    return page_response(vector_stores.list_stores(runtime(request), params))


@router.get("/{vs_id}")
def get_store(vs_id: str, request: Request) -> Response:
    return json(vector_stores.get(runtime(request), vs_id))


@router.post("/{vs_id}")
def modify_store(vs_id: str, body: StoreModify, request: Request) -> Response:
    changes: StoreChanges = {}
    fields = body.model_fields_set
    if "name" in fields:
        changes["name"] = body.name
    if "metadata" in fields:
        changes["metadata"] = body.metadata
    if "expires_after" in fields:
        changes["expires_after"] = body.expires_after.model_dump() if body.expires_after else None
    return json(vector_stores.modify(runtime(request), vs_id, changes))


@router.delete("/{vs_id}")
@frees_storage
def delete_store(vs_id: str, request: Request) -> Response:
    vector_stores.delete(runtime(request), vs_id)
    return deleted(vs_id, "vector_store.deleted")


@router.get("/{vs_id}/stats")
def store_stats(vs_id: str, request: Request) -> Response:
    """threadline extension: what is in the index (chunks, sizes, embedding model, chunking per file)."""
    return json(vector_stores.stats(runtime(request), vs_id))


@router.post("/{vs_id}/search")
async def search_store(
    vs_id: str, body: SearchRequest, request: Request, explain: bool = Query(False, include_in_schema=False)
) -> Response:
    """Search a store. threadline extension: `?explain=true` adds each result's keyword, vector and fused scores,
    chunk and matching query, and a top-level `ranking` (mode, hybrid weight); without it the body is OpenAI's."""
    rt = runtime(request)
    queries = [body.query] if isinstance(body.query, str) else body.query
    ranking = body.ranking_options or SearchRanking()

    def run() -> dict[str, Any]:
        hits = vector_stores.search(
            rt,
            vs_id,
            queries,
            k=body.max_num_results,
            filters=body.filters,
            score_threshold=ranking.score_threshold,
            rerank=ranking.ranker != "none",
        )
        out: dict[str, Any] = {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [
                {
                    "file_id": h.file_id,
                    "filename": h.filename,
                    "score": h.score,
                    "attributes": h.attributes,
                    "content": [{"type": "text", "text": h.text}],
                    **(score_details(h) if explain else {}),
                }
                for h in hits
            ],
            "has_more": False,
            "next_page": None,
        }
        if explain:
            out["ranking"] = {
                "mode": rt.retrieval.mode,
                "hybrid_vector_weight": HYBRID_VECTOR_WEIGHT,
                "candidates": CANDIDATES,
                "score_threshold": ranking.score_threshold,
                "filters": body.filters,
            }
        return out

    return json(await run_in_threadpool(run))


# -- files in a store ----------------------------------------------------------------------------------------------


@router.post("/{vs_id}/files")
def attach(vs_id: str, body: FileAttach, request: Request) -> Response:
    obj = vector_stores.add_file(
        runtime(request), vs_id, body.file_id, commands.chunking(body.chunking_strategy), body.attributes
    )
    return json(obj, headers=poll_headers(request))


@router.get("/{vs_id}/files")
def list_files(
    vs_id: str, request: Request, params: ListParams = Depends(list_params), filter: str | None = Query(None)
) -> Response:
    return page_response(vector_stores.list_files(runtime(request), vs_id, params, status=filter))


@router.get("/{vs_id}/files/{file_id}")
def get_vs_file(vs_id: str, file_id: str, request: Request) -> Response:
    return json(vector_stores.get_file(runtime(request), vs_id, file_id), headers=poll_headers(request))


@router.post("/{vs_id}/files/{file_id}")
def update_vs_file(vs_id: str, file_id: str, body: FileUpdate, request: Request) -> Response:
    return json(vector_stores.update_file(runtime(request), vs_id, file_id, body.attributes))


@router.delete("/{vs_id}/files/{file_id}")
@frees_storage
def detach(vs_id: str, file_id: str, request: Request) -> Response:
    vector_stores.remove_file(runtime(request), vs_id, file_id)
    return deleted(file_id, "vector_store.file.deleted")


@router.get("/{vs_id}/files/{file_id}/content")
def vs_file_content(vs_id: str, file_id: str, request: Request) -> Response:
    chunks = vector_stores.file_content(runtime(request), vs_id, file_id)
    return json(
        {
            "object": "vector_store.file_content.page",
            "data": [{"type": "text", "text": text} for text in chunks],
            "has_more": False,
            "next_page": None,
        }
    )


# -- batches -------------------------------------------------------------------------------------------------------


@router.post("/{vs_id}/file_batches")
def create_batch(vs_id: str, body: BatchCreate, request: Request) -> Response:
    default = commands.chunking(body.chunking_strategy)
    if body.files is not None:
        entries = [
            FileToAdd(f.file_id, commands.chunking(f.chunking_strategy) or default, f.attributes) for f in body.files
        ]
    else:
        entries = [FileToAdd(file_id, default, body.attributes) for file_id in body.file_ids or []]
    return json(vector_stores.create_batch(runtime(request), vs_id, entries), headers=poll_headers(request))


@router.get("/{vs_id}/file_batches/{batch_id}")
def get_batch(vs_id: str, batch_id: str, request: Request) -> Response:
    return json(vector_stores.get_batch(runtime(request), vs_id, batch_id), headers=poll_headers(request))


@router.post("/{vs_id}/file_batches/{batch_id}/cancel")
def cancel_batch(vs_id: str, batch_id: str, request: Request) -> Response:
    return json(vector_stores.cancel_batch(runtime(request), vs_id, batch_id), headers=poll_headers(request))


@router.get("/{vs_id}/file_batches/{batch_id}/files")
def list_batch_files(
    vs_id: str,
    batch_id: str,
    request: Request,
    params: ListParams = Depends(list_params),
    filter: str | None = Query(None),
) -> Response:
    check_id("file_batch", batch_id, "batch_id")
    return page_response(vector_stores.list_files(runtime(request), vs_id, params, status=filter, batch_id=batch_id))

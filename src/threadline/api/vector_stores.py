"""/v1/vector_stores: stores, their files, file batches, and search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import Field, field_validator, model_validator

from .. import vector_stores as vs
from ..file_search import score_details
from ..ids import new_id
from ..retrieval.filters import validate_filter
from ..retrieval.index import CANDIDATES, HYBRID_VECTOR_WEIGHT
from ..store import Store, dumps, loads, now, schema
from ..store.storage import is_disk_full
from . import models
from .common import (
    ListParams,
    check_id,
    deleted,
    frees_storage,
    json,
    list_params,
    load,
    page_response,
    poll_headers,
    runtime,
)
from .errors import bad_request, not_found
from .jsonbody import JSONRoute
from .resources import check_file

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"], route_class=JSONRoute)

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")

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


# -- helpers -------------------------------------------------------------------------------------------------------


def _auto(request: Request) -> dict[str, int]:
    return runtime(request).retrieval.auto_chunking


def _load_store(conn: sa.Connection, vs_id: str, lock: bool = False) -> dict[str, Any]:
    check_id("vector_store", vs_id, "vector_store_id")
    return load(conn, schema.vector_stores, vs_id, "vector store", lock=lock)


def _vsf_row(conn: sa.Connection, vs_id: str, file_id: str, lock: bool = False) -> dict[str, Any]:
    t = schema.vector_store_files
    query = sa.select(t.c.data).where(t.c.vector_store_id == vs_id, t.c.file_id == file_id)
    raw = conn.execute(query.with_for_update() if lock else query).scalar()
    if raw is None:
        raise not_found("vector store file", file_id)
    return loads(raw)


def create_in_tx(
    conn: sa.Connection,
    rt: Any,
    *,
    name: str | None,
    file_ids: list[str],
    chunking: Any,
    metadata: dict | None,
    expires_after: dict | None,
    owner: str | None = None,
) -> dict[str, Any]:
    obj = vs.store_object(name, metadata, expires_after, owner)
    vs.insert_store(conn, obj)
    strategy = vs.chunking_object(chunking, rt.retrieval.auto_chunking)
    for i, file_id in enumerate(file_ids):
        check_file(conn, file_id, f"file_ids[{i}]")
        vs.attach_file(conn, obj["id"], file_id, strategy, None)
    return obj


# -- stores --------------------------------------------------------------------------------------------------------


@router.post("")
def create_store(body: StoreCreate, request: Request) -> Response:
    rt = runtime(request)
    with rt.store.write() as conn:
        obj = create_in_tx(
            conn,
            rt,
            name=body.name,
            file_ids=body.file_ids or [],
            chunking=body.chunking_strategy,
            metadata=body.metadata,
            expires_after=body.expires_after.model_dump() if body.expires_after else None,
        )
        out = vs.present_store(conn, obj)
    rt.ingestor.wake()
    return json(out)


@router.get("")
def list_stores(request: Request, params: ListParams = Depends(list_params)) -> Response:
    rt = runtime(request)
    with rt.store.read() as conn:
        page = rt.store.page(schema.vector_stores, conn=conn, **params.__dict__)
        page.items = [dumps(vs.present_store(conn, loads(item))) for item in page.items]
    return page_response(page)


@router.get("/{vs_id}")
def get_store(vs_id: str, request: Request) -> Response:
    with runtime(request).store.read() as conn:
        return json(vs.present_store(conn, _load_store(conn, vs_id)))


@router.post("/{vs_id}")
def modify_store(vs_id: str, body: StoreModify, request: Request) -> Response:
    rt = runtime(request)
    with rt.store.write() as conn:
        obj = _load_store(conn, vs_id, lock=True)
        fields = body.model_fields_set
        if "name" in fields:
            obj["name"] = body.name or ""
        if "metadata" in fields:
            obj["metadata"] = body.metadata or {}
        if "expires_after" in fields:
            obj["expires_after"] = body.expires_after.model_dump() if body.expires_after else None
            base = obj.get("last_active_at") or now()
            obj["expires_at"] = base + obj["expires_after"]["days"] * vs.day_s() if obj["expires_after"] else None
        Store.update(conn, schema.vector_stores, obj, expires_at=obj["expires_at"])
        out = vs.present_store(conn, obj)
    return json(out)


@router.delete("/{vs_id}")
@frees_storage
def delete_store(vs_id: str, request: Request) -> Response:
    rt = runtime(request)
    with rt.store.write() as conn:
        _load_store(conn, vs_id, lock=True)
        for table in (schema.vector_store_files, schema.file_batches):
            conn.execute(table.delete().where(table.c.vector_store_id == vs_id))
        Store.delete(conn, schema.vector_stores, vs_id)
    rt.retrieval.delete_store(vs_id)
    return deleted(vs_id, "vector_store.deleted")


@router.get("/{vs_id}/stats")
def store_stats(vs_id: str, request: Request) -> Response:
    """threadline extension: what is in the index (chunks, sizes, embedding model, chunking per file)."""
    rt = runtime(request)
    with rt.store.read() as conn:
        _load_store(conn, vs_id)
        files = [
            loads(r)
            for r in conn.execute(
                sa.select(schema.vector_store_files.c.data).where(schema.vector_store_files.c.vector_store_id == vs_id)
            ).scalars()
        ]
    stats = rt.retrieval.stats(vs_id)
    per_file = rt.retrieval.file_stats(vs_id)
    empty = {"chunk_count": 0, "text_bytes": 0, "embedding_bytes": 0}
    return json(
        {
            "object": "vector_store.stats",
            "vector_store_id": vs_id,
            **stats,
            "files": [
                {
                    "file_id": f["id"],
                    "status": f["status"],
                    "usage_bytes": f["usage_bytes"],
                    "chunking_strategy": f["chunking_strategy"],
                    "last_error": f.get("last_error"),
                    **per_file.get(f["id"], empty),
                }
                for f in files
            ],
        }
    )


@router.post("/{vs_id}/search")
async def search_store(
    vs_id: str, body: SearchRequest, request: Request, explain: bool = Query(False, include_in_schema=False)
) -> Response:
    """Search a store. threadline extension: `?explain=true` adds each result's keyword, vector and fused scores,
    chunk and matching query, and a top-level `ranking` (mode, hybrid weight); without it the body is OpenAI's."""
    rt = runtime(request)

    def check(conn: sa.Connection) -> None:
        if vs.is_expired(_load_store(conn, vs_id)):
            raise bad_request(f"Vector store {vs_id} has expired.")

    def run() -> dict[str, Any]:
        try:
            with rt.store.write() as conn:
                check(conn)
                vs.touch(conn, [vs_id])
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            with rt.store.read() as conn:  # a search is a read: on a full disk it works, untouched
                check(conn)
        queries = [body.query] if isinstance(body.query, str) else body.query
        ranking = body.ranking_options or SearchRanking()
        hits = rt.retrieval.search(
            [vs_id],
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
    rt = runtime(request)
    with rt.store.write() as conn:
        _load_store(conn, vs_id, lock=True)
        check_file(conn, body.file_id, "file_id")
        obj = vs.attach_file(
            conn, vs_id, body.file_id, vs.chunking_object(body.chunking_strategy, _auto(request)), body.attributes
        )
    rt.ingestor.wake()
    return json(obj, headers=poll_headers(request))


def _list_files(request: Request, vs_id: str, params: ListParams, status: str | None, batch_id: str | None) -> Response:
    rt = runtime(request)
    t = schema.vector_store_files
    where = t.c.vector_store_id == vs_id
    if batch_id is not None:
        where = where & (t.c.batch_id == batch_id)
    if status is not None:
        if status not in FILE_STATUSES:
            raise bad_request(
                f"Invalid value: '{status}'. Supported values are: 'in_progress', 'completed', 'failed', and "
                "'cancelled'.",
                param="filter",
                code="invalid_value",
            )
        where = where & (t.c.status == status)
    with rt.store.read() as conn:
        _load_store(conn, vs_id)
        if batch_id is not None:
            batch = Store.fetch(conn, schema.file_batches, batch_id)
            if batch is None or batch["vector_store_id"] != vs_id:
                raise not_found("vector store file batch", batch_id)
        page = rt.store.page(t, where=where, id_column="file_id", conn=conn, **params.__dict__)
    return page_response(page)


@router.get("/{vs_id}/files")
def list_files(
    vs_id: str, request: Request, params: ListParams = Depends(list_params), filter: str | None = Query(None)
) -> Response:
    return _list_files(request, vs_id, params, filter, None)


@router.get("/{vs_id}/files/{file_id}")
def get_vs_file(vs_id: str, file_id: str, request: Request) -> Response:
    with runtime(request).store.read() as conn:
        _load_store(conn, vs_id)
        check_id("file", file_id, "file_id")
        return json(_vsf_row(conn, vs_id, file_id), headers=poll_headers(request))


@router.post("/{vs_id}/files/{file_id}")
def update_vs_file(vs_id: str, file_id: str, body: FileUpdate, request: Request) -> Response:
    rt = runtime(request)
    t = schema.vector_store_files
    with rt.store.write() as conn:
        _load_store(conn, vs_id)
        check_id("file", file_id, "file_id")
        obj = _vsf_row(conn, vs_id, file_id, lock=True)  # ingestion may be finishing it meanwhile
        obj["attributes"] = body.attributes
        conn.execute(t.update().where(t.c.vector_store_id == vs_id, t.c.file_id == file_id).values(data=dumps(obj)))
    rt.retrieval.update_attributes(vs_id, file_id, body.attributes)
    return json(obj)


@router.delete("/{vs_id}/files/{file_id}")
@frees_storage
def detach(vs_id: str, file_id: str, request: Request) -> Response:
    rt = runtime(request)
    t = schema.vector_store_files
    with rt.store.write() as conn:
        _load_store(conn, vs_id)
        check_id("file", file_id, "file_id")
        _vsf_row(conn, vs_id, file_id)
        conn.execute(t.delete().where(t.c.vector_store_id == vs_id, t.c.file_id == file_id))
    rt.retrieval.delete_file(vs_id, file_id)
    return deleted(file_id, "vector_store.file.deleted")


@router.get("/{vs_id}/files/{file_id}/content")
def vs_file_content(vs_id: str, file_id: str, request: Request) -> Response:
    rt = runtime(request)
    with rt.store.read() as conn:
        _load_store(conn, vs_id)
        check_id("file", file_id, "file_id")
        _vsf_row(conn, vs_id, file_id)
    chunks = rt.retrieval.file_chunks(vs_id, file_id)
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
    rt = runtime(request)
    auto = _auto(request)
    with rt.store.write() as conn:
        _load_store(conn, vs_id, lock=True)
        batch = {
            "id": new_id("file_batch"),
            "object": "vector_store.files_batch",
            "created_at": now(),
            "vector_store_id": vs_id,
            "status": "in_progress",
            "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0},
        }
        Store.insert(conn, schema.file_batches, batch, vector_store_id=vs_id)
        if body.files is not None:
            entries = [(f.file_id, f.chunking_strategy or body.chunking_strategy, f.attributes) for f in body.files]
        else:
            entries = [(fid, body.chunking_strategy, body.attributes) for fid in body.file_ids or []]
        for i, (file_id, chunking, attributes) in enumerate(entries):
            check_file(conn, file_id, f"file_ids[{i}]")
            vs.attach_file(conn, vs_id, file_id, vs.chunking_object(chunking, auto), attributes, batch_id=batch["id"])
        out = vs.present_batch(conn, batch)
    rt.ingestor.wake()
    return json(out, headers=poll_headers(request))


def _load_batch(conn: sa.Connection, vs_id: str, batch_id: str, lock: bool = False) -> dict[str, Any]:
    _load_store(conn, vs_id)
    check_id("file_batch", batch_id, "batch_id")
    batch = Store.fetch(conn, schema.file_batches, batch_id, lock=lock)
    if batch is None or batch["vector_store_id"] != vs_id:
        raise not_found("vector store file batch", batch_id)
    return batch


@router.get("/{vs_id}/file_batches/{batch_id}")
def get_batch(vs_id: str, batch_id: str, request: Request) -> Response:
    with runtime(request).store.read() as conn:
        return json(vs.present_batch(conn, _load_batch(conn, vs_id, batch_id)), headers=poll_headers(request))


@router.post("/{vs_id}/file_batches/{batch_id}/cancel")
def cancel_batch(vs_id: str, batch_id: str, request: Request) -> Response:
    rt = runtime(request)
    t = schema.vector_store_files
    with rt.store.write() as conn:
        batch = _load_batch(conn, vs_id, batch_id, lock=True)
        rows = conn.execute(
            sa.select(t.c.seq, t.c.data).where(t.c.batch_id == batch_id, t.c.status == "in_progress").with_for_update()
        ).all()
        for seq, raw in rows:
            obj = loads(raw)
            obj["status"] = "cancelled"
            conn.execute(t.update().where(t.c.seq == seq).values(status="cancelled", data=dumps(obj)))
        batch["status"] = "cancelled"
        Store.update(conn, schema.file_batches, batch)
        out = vs.present_batch(conn, batch)
    return json(out, headers=poll_headers(request))


@router.get("/{vs_id}/file_batches/{batch_id}/files")
def list_batch_files(
    vs_id: str,
    batch_id: str,
    request: Request,
    params: ListParams = Depends(list_params),
    filter: str | None = Query(None),
) -> Response:
    check_id("file_batch", batch_id, "batch_id")
    return _list_files(request, vs_id, params, filter, batch_id)

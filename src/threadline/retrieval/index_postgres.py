"""PostgreSQL chunk index: tsvector/GIN full text and a pgvector column.

Embeddings live in an untyped `vector` column with a `dim` column; HNSW (cosine) indexes are partial expression
indexes per dimension (`(embedding::vector(384)) ... WHERE dim = 384`), so a deployment can switch embedding
models. Small candidate sets (few chunks in the searched stores, or an attribute filter) are searched exactly by
ordering on the plain column, which the planner cannot serve from the HNSW index; large ones use HNSW with
pgvector's iterative scan so the store filter does not starve the result.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import sqlalchemy as sa

from . import index as ix
from .filters import matches
from .index_sql import SqlChunkIndex

EXACT_SCAN_MAX_CHUNKS = 20_000
HNSW_EF_SEARCH = 200


def _vec_literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v.tolist()) + "]"


class PostgresChunkIndex(SqlChunkIndex):
    _embedding_sql = "CAST(:e AS vector)"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._indexed_dims: set[int] = set()
        self._lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _embedding_value(self, v: np.ndarray) -> object:
        return _vec_literal(v)

    def _clean_text(self, text: str) -> str:
        return text.replace("\x00", "")  # PostgreSQL text cannot hold NUL

    def _prepare_dims(self, dims: set[int]) -> None:
        for dim in dims:
            self._ensure_hnsw(dim)

    def _ensure_hnsw(self, dim: int) -> None:
        with self._lock:
            if dim in self._indexed_dims:
                return
        with self.engine.connect() as conn, conn.begin():
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS ix_chunks_hnsw_{dim} ON chunks "
                    f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WHERE dim = {dim}"
                )
            )
        with self._lock:
            self._indexed_dims.add(dim)

    def search(
        self,
        vector_store_ids: list[str],
        query: str,
        query_embedding: np.ndarray,
        *,
        k: int,
        filters: dict | None = None,
        mode: str = "hybrid",
        score_threshold: float = 0.0,
    ) -> list[ix.SearchHit]:
        q = ix.check_search_args(vector_store_ids, query_embedding, k, filters, mode)
        store_ids = list(dict.fromkeys(vector_store_ids))
        if not store_ids:
            return []
        n = max(ix.CANDIDATES, k)
        dim = int(q.shape[0])
        qlit = _vec_literal(q)
        with self.engine.connect() as conn, conn.begin():
            files = conn.execute(
                sa.text("SELECT file_id, attributes, chunk_count FROM chunk_files WHERE vector_store_id = ANY(:ids)")
                if filters is not None
                else sa.text(
                    "SELECT NULL, NULL, coalesce(sum(chunk_count), 0) FROM chunk_files "
                    "WHERE vector_store_id = ANY(:ids)"
                ),
                {"ids": store_ids},
            ).all()
            allowed: list[str] | None = None
            if filters is not None:
                allowed = [f for f, raw, _ in files if matches(filters, ix.loads_attributes(raw))]
                if not allowed:
                    return []
                allowed_set = set(allowed)
                total = sum(c for f, _, c in files if f in allowed_set)
            else:
                total = int(files[0][2]) if files else 0
            vec: dict[int, float] = {}
            if mode != "keyword":
                vec = self._vector_candidates(
                    conn, store_ids, qlit, dim, n, allowed, exact=total <= EXACT_SCAN_MAX_CHUNKS
                )
            kw: dict[int, float] = {}
            terms = ix.keyword_terms(query)
            if mode != "vector" and terms:
                kw = self._keyword_candidates(conn, store_ids, terms, n, allowed)
                missing = [cid for cid in kw if cid not in vec]
                if mode == "hybrid" and missing:
                    rows = conn.execute(
                        sa.text(
                            "SELECT id, 1 - (embedding <=> CAST(:q AS vector)) FROM chunks "
                            "WHERE id = ANY(:ids) AND dim = :d"
                        ),
                        {"q": qlit, "ids": missing, "d": dim},
                    ).all()
                    vec.update({int(cid): max(float(s), 0.0) for cid, s in rows})
            top = ix.select_top(ix.fuse(vec, kw, mode), k, score_threshold)
            return self._hits(conn, top)

    @staticmethod
    def _vector_candidates(
        conn: sa.Connection,
        store_ids: list[str],
        qlit: str,
        dim: int,
        n: int,
        allowed: list[str] | None,
        *,
        exact: bool,
    ) -> dict[int, float]:
        params: dict = {"ids": store_ids, "q": qlit, "n": n, "d": dim}
        where = "vector_store_id = ANY(:ids) AND dim = :d"
        if allowed is not None:
            where += " AND file_id = ANY(:files)"
            params["files"] = allowed
        if exact:
            # The plain column does not match the HNSW index expression: an exact, store-restricted scan.
            dist = "embedding <=> CAST(:q AS vector)"
        else:
            conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, n)}"))
            conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            dist = f"embedding::vector({dim}) <=> CAST(:q AS vector({dim}))"
        rows = conn.execute(
            sa.text(f"SELECT id, 1 - ({dist}) AS s FROM chunks WHERE {where} ORDER BY {dist} LIMIT :n"), params
        ).all()
        return {int(cid): max(float(s), 0.0) for cid, s in rows}

    @staticmethod
    def _keyword_candidates(
        conn: sa.Connection, store_ids: list[str], terms: list[str], n: int, allowed: list[str] | None
    ) -> dict[int, float]:
        # Terms are letters/digits only, so joining them with | always yields a valid tsquery.
        params: dict = {"ids": store_ids, "tsq": " | ".join(terms), "n": n}
        sql = (
            "SELECT id, ts_rank(tsv, query, 1) AS s FROM chunks, to_tsquery('english', :tsq) query "
            "WHERE tsv @@ query AND vector_store_id = ANY(:ids)"
        )
        if allowed is not None:
            sql += " AND file_id = ANY(:files)"
            params["files"] = allowed
        sql += " ORDER BY s DESC LIMIT :n"
        rows = conn.execute(sa.text(sql), params).all()
        return {int(cid): float(s) for cid, s in rows}

    @staticmethod
    def _hits(conn: sa.Connection, top: list[tuple[int, float, float, float]]) -> list[ix.SearchHit]:
        if not top:
            return []
        rows = {
            r[0]: r
            for r in conn.execute(
                sa.text(
                    "SELECT c.id, c.vector_store_id, c.file_id, c.chunk_index, c.text, f.attributes FROM chunks c "
                    "LEFT JOIN chunk_files f ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id "
                    "WHERE c.id = ANY(:ids)"
                ),
                {"ids": [t[0] for t in top]},
            )
        }
        hits = []
        for cid, score, kw, vec in top:
            r = rows.get(cid)
            if r is None:
                continue
            hits.append(
                ix.SearchHit(
                    file_id=r[2],
                    chunk_index=r[3],
                    text=r[4],
                    score=min(max(score, 0.0), 1.0),
                    attributes=ix.loads_attributes(r[5]),
                    vector_store_id=r[1],
                    keyword_score=kw,
                    vector_score=vec,
                )
            )
        return hits

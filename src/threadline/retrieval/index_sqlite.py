"""SQLite chunk index: FTS5 (BM25) for keywords, exact cosine over cached per-store numpy matrices.

Embeddings are float32 blobs in `chunks`. Each process keeps, per vector store, a matrix of that store's
embeddings; `chunk_stores.version` is set to a fresh random token on every write, and a search reloads any
matrix whose token changed, so caches stay correct across processes and workers.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from . import index as ix
from .filters import matches
from .index_sql import SqlChunkIndex

# Upper bound on the summed document frequencies of the terms sent to FTS5 (see _select_terms; the default of
# THREADLINE_KEYWORD_POSTINGS_BUDGET). 5000 was best on SciFact train (hybrid nDCG@10 0.745 vs 0.744 unbounded)
# and bounds FTS5 time at ~10 ms.
KEYWORD_POSTINGS_BUDGET = 5000
INDEX_CACHE_MB = 2048  # the default of THREADLINE_INDEX_CACHE_MB
DF_CACHE_SECONDS = 30.0


@dataclass
class _Matrix:
    version: int
    dim: int
    ids: np.ndarray  # int64 chunk ids, ascending
    files: np.ndarray  # int32 code into file_ids per row
    file_ids: list[str]
    vectors: np.ndarray  # float32 (n, dim)

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes + self.ids.nbytes + self.files.nbytes


class SqliteChunkIndex(SqlChunkIndex):
    def __init__(
        self, engine: sa.Engine, *, cache_bytes: int | None = None, keyword_postings_budget: int | None = None
    ) -> None:
        """`cache_bytes`: memory for the per-store embedding matrices; `keyword_postings_budget`: see
        _select_terms (both default to the module's defaults)."""
        self.engine = engine
        self.cache_bytes = cache_bytes if cache_bytes is not None else INDEX_CACHE_MB * 1024 * 1024
        self.keyword_postings_budget = keyword_postings_budget or KEYWORD_POSTINGS_BUDGET
        self._cache: OrderedDict[str, _Matrix] = OrderedDict()
        self._lock = threading.Lock()
        self._df_cache: dict[str, tuple[int, float]] = {}

    # ---- writes ----------------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.info["write"] = True  # threadline's SQLite engine then opens BEGIN IMMEDIATE
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["write"] = False

    def _embedding_value(self, v: np.ndarray) -> object:
        return v.tobytes()

    def _forget(self, store_ids: set[str]) -> None:
        with self._lock:
            for vs in store_ids:
                self._cache.pop(vs, None)
        self._df_cache.clear()

    # ---- reads -----------------------------------------------------------------------------------------------

    def _matrices(self, conn: sa.Connection, store_ids: list[str], dim: int) -> dict[str, _Matrix]:
        stmt = sa.text("SELECT vector_store_id, version FROM chunk_stores WHERE vector_store_id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)
        )
        versions = dict(conn.execute(stmt, {"ids": store_ids}).all())
        out: dict[str, _Matrix] = {}
        for vs, version in versions.items():
            with self._lock:
                m = self._cache.get(vs)
                if m is not None and m.version == version and m.dim == dim:
                    self._cache.move_to_end(vs)
                    out[vs] = m
                    continue
            m = self._load(conn, vs, version, dim)
            out[vs] = m
            with self._lock:
                self._cache[vs] = m
                self._cache.move_to_end(vs)
                total = sum(x.nbytes for x in self._cache.values())
                while total > self.cache_bytes and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    total -= old.nbytes
        return out

    @staticmethod
    def _load(conn: sa.Connection, vs: str, version: int, dim: int) -> _Matrix:
        rows = conn.execute(
            sa.text("SELECT id, file_id, embedding FROM chunks WHERE vector_store_id = :vs AND dim = :d ORDER BY id"),
            {"vs": vs, "d": dim},
        ).all()
        codes: dict[str, int] = {}
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        files = np.fromiter((codes.setdefault(r[1], len(codes)) for r in rows), dtype=np.int32, count=len(rows))
        blob = b"".join(r[2] for r in rows)
        vectors = (
            np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dim) if rows else np.zeros((0, dim), np.float32)
        )
        return _Matrix(version=version, dim=dim, ids=ids, files=files, file_ids=list(codes), vectors=vectors)

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
        with self.engine.connect() as conn:
            allowed: set[str] | None = None
            if filters is not None:
                allowed = self._allowed_files(conn, store_ids, filters)
                if not allowed:
                    return []
            matrices = self._matrices(conn, store_ids, q.shape[0]) if mode != "keyword" else {}
            vec = self._vector_candidates(matrices, q, n, allowed) if matrices else {}
            kw: dict[int, float] = {}
            terms = ix.keyword_terms(query)
            if mode != "vector" and terms:
                kw = self._keyword_candidates(conn, store_ids, terms, n, allowed)
                if mode == "hybrid":
                    # Keyword-only candidates still get their exact cosine.
                    vec.update(self._exact_cosines(matrices, q, [cid for cid in kw if cid not in vec]))
            top = ix.select_top(ix.fuse(vec, kw, mode), k, score_threshold)
            return self._hits(conn, top)

    def _allowed_files(self, conn: sa.Connection, store_ids: list[str], filters: dict) -> set[str]:
        stmt = sa.text("SELECT file_id, attributes FROM chunk_files WHERE vector_store_id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)
        )
        return {
            fid for fid, raw in conn.execute(stmt, {"ids": store_ids}) if matches(filters, ix.loads_attributes(raw))
        }

    @staticmethod
    def _vector_candidates(
        matrices: dict[str, _Matrix], q: np.ndarray, n: int, allowed: set[str] | None
    ) -> dict[int, float]:
        ids_parts, score_parts = [], []
        for m in matrices.values():
            if m.vectors.shape[0] == 0:
                continue
            scores = m.vectors @ q
            if allowed is not None:
                ok = np.fromiter((f in allowed for f in m.file_ids), dtype=bool, count=len(m.file_ids))
                scores = np.where(ok[m.files], scores, -np.inf)
            take = min(n, scores.shape[0])
            idx = np.argpartition(-scores, take - 1)[:take] if take < scores.shape[0] else np.arange(scores.shape[0])
            idx = idx[np.isfinite(scores[idx])]
            ids_parts.append(m.ids[idx])
            score_parts.append(scores[idx])
        if not ids_parts:
            return {}
        ids = np.concatenate(ids_parts)
        scores = np.concatenate(score_parts)
        if ids.shape[0] > n:
            keep = np.argpartition(-scores, n - 1)[:n]
            ids, scores = ids[keep], scores[keep]
        return {int(i): max(float(s), 0.0) for i, s in zip(ids, scores, strict=True)}

    @staticmethod
    def _exact_cosines(matrices: dict[str, _Matrix], q: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        if not chunk_ids:
            return out
        wanted = np.asarray(sorted(chunk_ids), dtype=np.int64)
        for m in matrices.values():
            if m.ids.shape[0] == 0:
                continue
            pos = np.searchsorted(m.ids, wanted)
            pos = np.minimum(pos, m.ids.shape[0] - 1)
            hit = m.ids[pos] == wanted
            if hit.any():
                scores = m.vectors[pos[hit]] @ q
                for cid, s in zip(wanted[hit], scores, strict=True):
                    out[int(cid)] = max(float(s), 0.0)
        return out

    def _doc_freqs(self, conn: sa.Connection, terms: list[str]) -> dict[str, int]:
        # Only used to choose which terms to send, so a few seconds of staleness are harmless.
        now = time.monotonic()
        out = {}
        for t in terms:
            hit = self._df_cache.get(t)
            if hit is None or now - hit[1] > DF_CACHE_SECONDS:
                df = conn.exec_driver_sql(
                    "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{t}"',)
                ).scalar_one()
                hit = (int(df), now)
                if len(self._df_cache) > 100_000:
                    self._df_cache.clear()
                self._df_cache[t] = hit
            out[t] = hit[0]
        return out

    def _select_terms(self, conn: sa.Connection, terms: list[str]) -> list[str]:
        """Drop the most common query terms when scoring every row they match would be slow.

        FTS5 computes bm25 for every matching row before sorting, so an OR query's cost grows with the number of
        matches. Terms are taken rarest first while their document frequencies add up to keyword_postings_budget;
        the dropped common terms carry little weight (low idf) and the vector side still sees the whole query.
        """
        dfs = self._doc_freqs(conn, terms)
        if sum(dfs.values()) <= self.keyword_postings_budget:
            return [t for t in terms if dfs[t]]
        kept, total = [], 0
        for t in sorted((t for t in terms if dfs[t]), key=dfs.__getitem__):
            if kept and total + dfs[t] > self.keyword_postings_budget:
                break
            kept.append(t)
            total += dfs[t]
        return kept

    def _keyword_candidates(
        self, conn: sa.Connection, store_ids: list[str], terms: list[str], n: int, allowed: set[str] | None
    ) -> dict[int, float]:
        terms = self._select_terms(conn, terms)
        if not terms:
            return {}
        match = " OR ".join(f'"{t}"' for t in terms)
        sql = (
            "SELECT c.id, -bm25(chunks_fts) AS s FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
            "WHERE chunks_fts MATCH :m AND c.vector_store_id IN :ids"
        )
        params: dict = {"m": match, "ids": store_ids, "n": n}
        binds = [sa.bindparam("ids", expanding=True)]
        if allowed is not None:
            sql += " AND c.file_id IN (SELECT value FROM json_each(:files))"
            params["files"] = json.dumps(sorted(allowed))
        sql += " ORDER BY s DESC LIMIT :n"
        rows = conn.execute(sa.text(sql).bindparams(*binds), params).all()
        return {int(cid): float(s) for cid, s in rows}

    @staticmethod
    def _hits(conn: sa.Connection, top: list[tuple[int, float, float, float]]) -> list[ix.SearchHit]:
        if not top:
            return []
        stmt = sa.text(
            "SELECT c.id, c.vector_store_id, c.file_id, c.chunk_index, c.text, f.attributes FROM chunks c "
            "LEFT JOIN chunk_files f ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id "
            "WHERE c.id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        rows = {r[0]: r for r in conn.execute(stmt, {"ids": [t[0] for t in top]})}
        hits = []
        for cid, score, kw, vec in top:
            r = rows.get(cid)
            if r is None:  # deleted between the candidate query and now
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

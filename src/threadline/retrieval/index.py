"""The chunk index: chunks of vector-store files with embeddings and a keyword index, in threadline's database.

`make_index(engine)` returns the SQLite or PostgreSQL implementation. Both answer `search` the same way:

* candidates: the top `CANDIDATES` chunks by cosine similarity and the top `CANDIDATES` by keyword rank, both
  restricted to the requested stores and to the files whose attributes pass `filters` (before truncation);
* scores, all in 0..1: vector = max(cosine, 0); keyword = rank score / best rank score among the candidates
  (so the best keyword match scores 1); hybrid = w * vector + (1 - w) * keyword with w = HYBRID_VECTOR_WEIGHT,
  where a candidate missing from the keyword list has keyword 0 and its exact cosine is always used;
* `score_threshold` drops hits below it, then the best `k` are returned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import sqlalchemy as sa

from .filters import validate_filter

if TYPE_CHECKING:
    from ..config import Settings

# Tuned on SciFact train queries (bench/bench_retrieval.py --split train --tune): nDCG@10 with 200/100 chunks is
# 0.693 at w=0, 0.731 at 0.5, 0.737-0.743 on the 0.6-0.8 plateau (best 0.75), 0.682 at w=1; 0.7 sits mid-plateau.
HYBRID_VECTOR_WEIGHT = 0.7
CANDIDATES = 100
MODES = ("hybrid", "keyword", "vector")


@dataclass
class ChunkRecord:
    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    token_count: int
    embedding: np.ndarray
    attributes: dict | None = None


@dataclass
class SearchHit:
    file_id: str
    chunk_index: int
    text: str
    score: float
    attributes: dict | None
    vector_store_id: str = ""
    keyword_score: float = 0.0
    vector_score: float = 0.0


class ChunkIndex(Protocol):
    def add(self, records: list[ChunkRecord]) -> None: ...

    def delete_file(self, vector_store_id: str, file_id: str) -> None: ...

    def delete_store(self, vector_store_id: str) -> None: ...

    def prune(self) -> int: ...

    def update_attributes(self, vector_store_id: str, file_id: str, attributes: dict | None) -> None: ...

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
    ) -> list[SearchHit]: ...

    def stats(self, vector_store_id: str) -> dict: ...

    def file_stats(self, vector_store_id: str) -> dict[str, dict[str, int]]: ...


def make_index(engine: sa.Engine, settings: Settings | None = None) -> ChunkIndex:
    """The chunk index for `engine`'s database (tables come from migration 0002); `settings` (default: the
    environment's) size SQLite's keyword query budget and embedding cache."""
    if engine.dialect.name == "sqlite":
        from ..config import Settings
        from .index_sqlite import SqliteChunkIndex

        settings = settings or Settings.load()
        return SqliteChunkIndex(
            engine,
            cache_bytes=settings.index_cache_mb * 1024 * 1024,
            keyword_postings_budget=settings.keyword_postings_budget,
        )
    if engine.dialect.name == "postgresql":
        from .index_postgres import PostgresChunkIndex

        return PostgresChunkIndex(engine)
    raise ValueError(f"no chunk index for database dialect {engine.dialect.name!r}")


# ---- shared helpers -------------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "you",
        "your",
    ]
)
_TERM = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_TERMS = 64


def keyword_terms(query: str) -> list[str]:
    """Lower-cased word terms of `query` (letters and digits only, so they are always safe inside a full-text
    query), stop words dropped unless nothing else is left, deduplicated, at most MAX_QUERY_TERMS."""
    words = [w.lower() for w in _TERM.findall(query or "")]
    kept = [w for w in words if w not in _STOPWORDS] or words
    return list(dict.fromkeys(kept))[:MAX_QUERY_TERMS]


def check_search_args(vector_store_ids: list[str], query_embedding: np.ndarray, k: int, filters, mode) -> np.ndarray:  # noqa: ANN001
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if filters is not None:
        validate_filter(filters)
    q = np.asarray(query_embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(q))
    return q / norm if norm > 0 else q


def fuse(
    vec: dict[int, float], kw: dict[int, float], mode: str, weight: float = HYBRID_VECTOR_WEIGHT
) -> dict[int, tuple[float, float, float]]:
    """chunk id -> (score, keyword_score, vector_score), all 0..1. `kw` holds raw rank scores (higher better)."""
    top = max(kw.values(), default=0.0)
    kw_norm = {cid: (s / top if top > 0 else 0.0) for cid, s in kw.items()}
    out: dict[int, tuple[float, float, float]] = {}
    if mode == "keyword":
        for cid, s in kw_norm.items():
            out[cid] = (s, s, vec.get(cid, 0.0))
    elif mode == "vector":
        for cid, v in vec.items():
            out[cid] = (v, kw_norm.get(cid, 0.0), v)
    else:
        for cid in vec.keys() | kw_norm.keys():
            v, s = vec.get(cid, 0.0), kw_norm.get(cid, 0.0)
            out[cid] = (weight * v + (1.0 - weight) * s, s, v)
    return out


def select_top(
    fused: dict[int, tuple[float, float, float]], k: int, score_threshold: float
) -> list[tuple[int, float, float, float]]:
    ranked = sorted(((cid, *vals) for cid, vals in fused.items()), key=lambda r: (-r[1], r[0]))
    return [r for r in ranked if r[1] >= score_threshold][:k]


def dumps_attributes(attributes: dict | None) -> str | None:
    return None if attributes is None else json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)


def loads_attributes(raw: str | None) -> dict | None:
    return None if raw is None else json.loads(raw)


def group_records(records: list[ChunkRecord]) -> dict[tuple[str, str], list[ChunkRecord]]:
    groups: dict[tuple[str, str], list[ChunkRecord]] = {}
    for r in records:
        groups.setdefault((r.vector_store_id, r.file_id), []).append(r)
    for recs in groups.values():
        if len({r.chunk_index for r in recs}) != len(recs):
            raise ValueError("duplicate chunk_index within one file")
    return groups


def as_vector(embedding: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))
    if not np.all(np.isfinite(v)):
        raise ValueError("embedding contains NaN or infinite values")
    return v


@dataclass
class _Stats:
    chunk_count: int = 0
    file_count: int = 0
    text_bytes: int = 0
    embedding_bytes: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "chunk_count": self.chunk_count,
            "file_count": self.file_count,
            "text_bytes": self.text_bytes,
            "embedding_bytes": self.embedding_bytes,
            "usage_bytes": self.text_bytes + self.embedding_bytes,
            **self.extra,
        }

"""Glue for the vector-store endpoints: chunking strategy resolution and file -> ChunkRecords.

text = extract_text(data, filename)                      # UnsupportedFile / InvalidFile -> last_error
max_t, overlap = resolve_chunking(request_strategy, embedder)
index.add(build_records(vs_id, file_id, text, embedder, max_t, overlap, attributes))
reported = {"type": "static", "static": {"max_chunk_size_tokens": max_t, "chunk_overlap_tokens": overlap}}
"""

from __future__ import annotations

from .chunking import (
    AUTO_MAX_TOKENS,
    AUTO_OVERLAP_TOKENS,
    OPENAI_AUTO_CHUNKING,
    chunk_text,
    validate_static,
)
from .embeddings import Embedder
from .index import ChunkRecord

EMBED_BATCH = 64


def resolve_chunking(strategy: dict | None, embedder: Embedder) -> tuple[int, int]:
    """(max_chunk_size_tokens, chunk_overlap_tokens) for a request's chunking_strategy (None or auto -> the
    size that suits the embedder). Raises ValueError for an invalid static strategy."""
    kind = (strategy or {}).get("type", "auto")
    if kind == "auto":
        if embedder.max_tokens >= 1024:  # long-context provider embeddings: OpenAI's documented auto values
            return OPENAI_AUTO_CHUNKING["max_chunk_size_tokens"], OPENAI_AUTO_CHUNKING["chunk_overlap_tokens"]
        return AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS
    if kind != "static":
        raise ValueError(f"unknown chunking_strategy type {kind!r}")
    static = strategy.get("static") or {}
    try:
        max_tokens = int(static["max_chunk_size_tokens"])
        overlap = int(static["chunk_overlap_tokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("static chunking needs max_chunk_size_tokens and chunk_overlap_tokens") from exc
    validate_static(max_tokens, overlap)
    return max_tokens, overlap


def build_records(
    vector_store_id: str,
    file_id: str,
    text: str,
    embedder: Embedder,
    max_tokens: int,
    overlap_tokens: int,
    attributes: dict | None = None,
) -> list[ChunkRecord]:
    """Chunk and embed one file's text. Empty list when the text has no content."""
    chunks = chunk_text(text, max_tokens, overlap_tokens)
    records: list[ChunkRecord] = []
    for start in range(0, len(chunks), EMBED_BATCH):
        part = chunks[start : start + EMBED_BATCH]
        vectors = embedder.embed([c.text for c in part])
        for offset, (chunk, vec) in enumerate(zip(part, vectors, strict=True)):
            records.append(
                ChunkRecord(vector_store_id, file_id, start + offset, chunk.text, chunk.token_count, vec, attributes)
            )
    return records

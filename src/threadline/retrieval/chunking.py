"""Token-window chunking with overlap, counted in cl100k_base tokens (the tokenizer of OpenAI's embedding
models, which is what file_search chunk sizes are expressed in)."""

from __future__ import annotations

from dataclasses import dataclass

from threadline.tokens import get_encoding

CHUNK_ENCODING = "cl100k_base"
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096

# The `auto` strategy. The wire contract describes auto as 800/400, but the local embedder (MiniLM) reads at
# most 256 word pieces per window, so 800-token chunks are embedded as an average of windows, which blurs them.
# SciFact train queries (809, int8 model, `bench/bench_retrieval.py --split train --tune --chunk M O`), nDCG@10:
#   chunking   vector (w=1)   keyword (w=0)   hybrid (w=0.7)
#   800/400    0.645         0.702          0.735
#   400/200    0.647         0.704          0.739
#   200/100    0.682         0.693          0.742   <- auto
# 200 cl100k tokens is about what fits in 256 MiniLM word pieces, so each chunk is embedded whole.
AUTO_MAX_TOKENS = 200
AUTO_OVERLAP_TOKENS = 100
AUTO_CHUNKING = {"max_chunk_size_tokens": AUTO_MAX_TOKENS, "chunk_overlap_tokens": AUTO_OVERLAP_TOKENS}
# What an OpenAI-hosted store reports for `auto`; used when the embedder has a long context (provider embeddings).
OPENAI_AUTO_CHUNKING = {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}


@dataclass(frozen=True)
class Chunk:
    text: str
    token_count: int
    start_char: int  # offsets into the extracted text, end exclusive
    end_char: int


def validate_static(max_tokens: int, overlap_tokens: int) -> None:
    if not MIN_CHUNK_TOKENS <= max_tokens <= MAX_CHUNK_TOKENS:
        raise ValueError(f"max_chunk_size_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}")
    if overlap_tokens < 0 or overlap_tokens > max_tokens // 2:
        raise ValueError("chunk_overlap_tokens must be non-negative and not exceed half of max_chunk_size_tokens")


def chunk_text(text: str, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Split `text` into windows of at most `max_tokens` tokens, consecutive windows sharing `overlap_tokens`.

    Windows are cut on token boundaries; text is sliced on the character offsets of those tokens, so chunk
    texts are exact substrings of `text`. Whitespace-only windows are dropped.
    """
    if max_tokens <= 0 or overlap_tokens < 0 or overlap_tokens >= max_tokens:
        raise ValueError("need max_tokens > overlap_tokens >= 0")
    enc = get_encoding(CHUNK_ENCODING)
    tokens = enc.encode(text, disallowed_special=())
    n = len(tokens)
    if n == 0:
        return []
    starts = _char_starts(enc, tokens, text)
    step = max_tokens - overlap_tokens
    chunks: list[Chunk] = []
    start = 0
    while True:
        end = min(start + max_tokens, n)
        a = starts[start]
        b = starts[end] if end < n else len(text)
        if b > a and text[a:b].strip():
            chunks.append(Chunk(text=text[a:b], token_count=end - start, start_char=a, end_char=b))
        if end >= n:
            break
        start += step
    return chunks


def _char_starts(enc, tokens: list[int], text: str) -> list[int]:  # noqa: ANN001
    """Character offset in `text` at which each token starts (a token beginning mid-character maps to that
    character's start, so slices never split a code point)."""
    decoded, offsets = enc.decode_with_offsets(tokens)
    if decoded != text:  # cannot happen for str input, but never return wrong slices
        raise ValueError("tokenizer round trip changed the text")
    # decode_with_offsets can report the next character for a token that starts inside a multibyte character;
    # keep offsets monotonic so windows stay well formed.
    out = []
    last = 0
    for off in offsets:
        last = max(last, min(off, len(text)))
        out.append(last)
    return out

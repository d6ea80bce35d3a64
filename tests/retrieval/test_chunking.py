import pytest

from threadline.retrieval.chunking import (
    AUTO_MAX_TOKENS,
    AUTO_OVERLAP_TOKENS,
    CHUNK_ENCODING,
    chunk_text,
    validate_static,
)
from threadline.tokens import get_encoding

TEXT = " ".join(f"Sentence number {i} talks about topic {i % 7} with some détails – 日本語 {i}." for i in range(400))


def test_windows_have_exact_sizes_and_overlap():
    enc = get_encoding(CHUNK_ENCODING)
    total = len(enc.encode(TEXT))
    chunks = chunk_text(TEXT, 100, 30)
    assert all(c.token_count == 100 for c in chunks[:-1])
    assert 0 < chunks[-1].token_count <= 100
    # Consecutive windows advance by max - overlap tokens and the last one reaches the end.
    assert len(chunks) == 1 + -(-(total - 100) // 70)
    assert chunks[-1].end_char == len(TEXT)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_char < a.end_char  # overlap
        assert TEXT[b.start_char : a.end_char] == a.text[b.start_char - a.start_char :]
    for c in chunks:
        assert TEXT[c.start_char : c.end_char] == c.text
        assert abs(len(enc.encode(c.text)) - c.token_count) <= 2


def test_no_overlap_partitions_text():
    chunks = chunk_text(TEXT, 128, 0)
    assert "".join(c.text for c in chunks) == TEXT
    assert sum(c.token_count for c in chunks) == len(get_encoding(CHUNK_ENCODING).encode(TEXT))


def test_short_and_empty_text():
    assert chunk_text("", 100, 50) == []
    assert chunk_text("   \n\t ", 100, 50) == []
    [only] = chunk_text("Just one short paragraph.", 800, 400)
    assert only.text == "Just one short paragraph." and only.start_char == 0


def test_multibyte_boundaries_never_split_characters():
    text = "🎉日本語テキスト" * 300
    chunks = chunk_text(text, 100, 20)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.start_char : c.end_char] == c.text
        c.text.encode("utf-8")  # no lone surrogates


def test_special_token_text_is_plain_text():
    chunks = chunk_text("before <|endoftext|> after " * 50, 100, 0)
    assert "<|endoftext|>" in chunks[0].text


@pytest.mark.parametrize(("size", "overlap"), [(99, 0), (4097, 0), (100, 51), (800, 401), (800, -1)])
def test_static_validation_rejects(size, overlap):
    with pytest.raises(ValueError):
        validate_static(size, overlap)


@pytest.mark.parametrize(("size", "overlap"), [(100, 50), (4096, 2048), (800, 400), (100, 0)])
def test_static_validation_accepts(size, overlap):
    validate_static(size, overlap)


def test_auto_fits_embedder_window():
    validate_static(AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)
    assert AUTO_MAX_TOKENS <= 256


def test_resolve_chunking_and_build_records(embedder):
    from threadline.retrieval.ingest import build_records, resolve_chunking

    assert resolve_chunking(None, embedder) == (AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)
    assert resolve_chunking({"type": "auto"}, embedder) == (AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)
    static = {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}}
    assert resolve_chunking(static, embedder) == (300, 0)
    for bad in [
        {"type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}},
        {"type": "static"},
        {"type": "semantic"},
    ]:
        with pytest.raises(ValueError):
            resolve_chunking(bad, embedder)
    records = build_records("vs_1", "file-1", TEXT, embedder, 300, 0, {"k": "v"})
    assert [r.chunk_index for r in records] == list(range(len(records)))
    assert all(r.token_count <= 300 and r.embedding.shape == (embedder.dim,) for r in records)
    assert "".join(r.text for r in records) == TEXT and records[0].attributes == {"k": "v"}

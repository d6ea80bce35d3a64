import random

import numpy as np
import pytest

from fakes.fake_openai import FakeOpenAI
from threadline.config import Settings, SettingsError
from threadline.retrieval.embeddings import (
    EmbeddingModelMissing,
    OnnxEmbedder,
    OpenAIEmbedder,
    embedder_for,
)


def test_shape_dtype_and_norm(embedder):
    v = embedder.embed(["hello world", "", "a" * 5000])
    assert v.shape == (3, embedder.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_paraphrase_closer_than_unrelated(embedder):
    a, b, c, d = embedder.embed(
        [
            "How long do I have to return a product for a refund?",
            "What is the deadline for sending items back to get my money returned?",
            "The mitochondrion produces ATP through oxidative phosphorylation.",
            "Cellular respiration in mitochondria generates adenosine triphosphate.",
        ]
    )
    assert a @ b > 0.5 and c @ d > 0.5
    assert a @ b > a @ c + 0.3
    assert c @ d > b @ d + 0.3


# Lengths from an empty string to several 256-piece windows, so batches mix padding, truncation and windowing.
BATCH_TEXTS = [
    "",
    "short",
    "Photosynthesis",
    "a somewhat longer sentence about vector stores and search",
    "Refunds are issued within 14 days of receiving the returned item, minus the shipping costs.",
    "The mitochondrion produces ATP through oxidative phosphorylation. " * 4,
    "x " * 100,
    "Quarterly revenue grew 12% while operating costs fell, driven by lower logistics spending. " * 12,
    " ".join(f"token{i}" for i in range(700)),
]


def test_batching_and_padding_do_not_change_vectors(embedder):
    """A text's vector must not depend on its batch-mates: documents are embedded in ingestion batches of
    whatever happens to be pending, queries alone, and both must land on the same vector for the same text."""
    alone = {t: embedder.embed([t])[0] for t in BATCH_TEXTS}
    rng = random.Random(20261130)
    for _ in range(12):
        batch = rng.choices(BATCH_TEXTS, k=rng.randint(2, 24))
        together = embedder.embed(batch)
        for text, vec in zip(batch, together, strict=True):
            assert np.array_equal(vec, alone[text]), (text[:40], float(vec @ alone[text]))


def test_long_text_is_windowed_not_truncated(embedder):
    first = "Solar panels convert sunlight into electricity using photovoltaic cells. " * 30
    second = "The recipe calls for flour, butter, sugar and two eggs, baked for forty minutes. " * 30
    [combined] = embedder.embed([first + second])
    [head] = embedder.embed([first])
    [tail] = embedder.embed([second])
    # A truncating embedder would only see the first part; the windowed average sees both.
    assert combined @ tail > 0.4
    assert abs(combined @ head - combined @ tail) < 0.4


def test_missing_model_error_tells_operator(tmp_path):
    with pytest.raises(EmbeddingModelMissing, match="make setup"):
        OnnxEmbedder(tmp_path)


def test_factory_local_is_cached(monkeypatch):
    monkeypatch.delenv("THREADLINE_EMBEDDINGS", raising=False)
    e1 = embedder_for(Settings.load())
    assert isinstance(e1, OnnxEmbedder) and e1 is embedder_for(Settings.load())


def test_factory_rejects_unknown_kind():
    with pytest.raises(SettingsError, match="THREADLINE_EMBEDDINGS"):
        Settings.from_mapping({"THREADLINE_EMBEDDINGS": "magic"})


def test_openai_embedder_over_http():
    with FakeOpenAI() as fake:
        env = {
            "THREADLINE_EMBEDDINGS": "openai",
            "THREADLINE_EMBEDDINGS_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-test",
            "THREADLINE_EMBEDDINGS_MODEL": "fake-embedding",
        }
        emb = embedder_for(Settings.from_mapping(env))
        assert isinstance(emb, OpenAIEmbedder)
        assert emb.dim == 16  # probed from the endpoint
        v = emb.embed(["alpha", "beta", "alpha"])
        assert v.shape == (3, 16)
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        assert np.allclose(v[0], v[2]) and not np.allclose(v[0], v[1])
        sized = OpenAIEmbedder(fake.base_url, "sk-test", "text-embedding-3-small", 64, batch_size=2)
        assert sized.embed(["a", "b", "c"]).shape == (3, 64)  # `dimensions` sent, batches of 2

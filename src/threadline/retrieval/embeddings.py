"""Text embedders: the local ONNX MiniLM (default) and any OpenAI-compatible /embeddings endpoint."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ..config import Settings

LOCAL_MODEL_NAME = "all-minilm-l6-v2"
_REPO = Path(__file__).resolve().parents[3]


@runtime_checkable
class Embedder(Protocol):
    model_name: str
    dim: int
    max_tokens: int  # longest input embedded in one window; longer texts are windowed and averaged

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised."""
        ...


class EmbeddingModelMissing(RuntimeError):
    pass


def default_models_dir() -> Path:
    """THREADLINE_MODELS_DIR (Settings.models_dir), else <repo>/.cache/models in a checkout, else ./.cache/models."""
    from ..config import Settings

    configured = Settings.load().models_dir
    if configured:
        return configured
    if (_REPO / "pyproject.toml").is_file():
        return _REPO / ".cache" / "models"
    return Path.cwd() / ".cache" / "models"


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class OnnxEmbedder:
    """all-MiniLM-L6-v2 exported by scripts/build-embedding-model.sh (mean pooling + L2 norm in the graph).

    Texts longer than the model's 256 word-piece window are split into overlapping windows whose embeddings are
    averaged (then re-normalised), so every part of a long chunk contributes.

    Each window is run through the model on its own, never padded into a batch: the int8 model scales its
    activations over the whole input tensor, so in a batch a text's vector would depend on its batch-mates and
    their padding. Alone, a text gets the same vector bit for bit whether it is a query or a chunk in any
    ingestion batch. Without padding this is also as fast as batches of 32 (see docs/benchmarks.md).
    """

    def __init__(
        self,
        models_dir: str | Path | None = None,
        *,
        threads: int | None = None,
        window_stride: int = 32,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        root = Path(models_dir) if models_dir is not None else default_models_dir()
        model_dir = root if (root / "model.onnx").is_file() else root / LOCAL_MODEL_NAME
        onnx_path, tok_path = model_dir / "model.onnx", model_dir / "tokenizer.json"
        if not onnx_path.is_file() or not tok_path.is_file():
            raise EmbeddingModelMissing(
                f"local embedding model not found in {model_dir} (expected model.onnx and tokenizer.json). "
                "Run `make setup` (scripts/build-embedding-model.sh) to build it, or set THREADLINE_MODELS_DIR."
            )
        manifest_path = model_dir / "manifest.json"
        self.manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        self.model_name = LOCAL_MODEL_NAME
        self.dim = int(self.manifest.get("dim", 384))
        self.max_tokens = int(self.manifest.get("max_seq_length", 256))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT worker threads otherwise spin for a while after each call, stealing the CPU that the search
        # (SQLite, numpy) running right after a query embedding needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        tok = Tokenizer.from_file(str(tok_path))
        tok.no_padding()
        # Overflowing windows share `window_stride` word pieces with their neighbour.
        tok.enable_truncation(max_length=self.max_tokens, stride=window_stride)
        self._tok = tok
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # tokenizers' Tokenizer is not documented as thread safe
            encodings = self._tok.encode_batch([t if t.strip() else " " for t in texts])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, enc in enumerate(encodings):
            parts = [enc, *enc.overflowing]
            vecs = [self._run(part.ids, part.attention_mask) for part in parts]
            out[i] = vecs[0] if len(vecs) == 1 else _normalise(np.sum(vecs, axis=0, keepdims=True))[0]
        return out

    def _run(self, ids: list[int], mask: list[int]) -> np.ndarray:
        """One window, shape (1, n) with no padding -> its (dim,) vector."""
        feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.array([mask], dtype=np.int64)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return self._session.run(["sentence_embedding"], feed)[0][0]


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, Ollama, LiteLLM, ...)."""

    _KNOWN_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        model: str = "text-embedding-3-small",
        dim: int | None = None,
        *,
        max_tokens: int = 8191,
        batch_size: int = 256,
        timeout: float = 60.0,
    ) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout, max_retries=3)
        self.model_name = model
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        # text-embedding-3 models can shorten their output; other models return their native size.
        self._send_dimensions = dim is not None and model.startswith("text-embedding-3")
        self.dim = dim or self._KNOWN_DIMS.get(model) or self._probe_dim()

    def _probe_dim(self) -> int:
        return int(self._request(["dimension probe"]).shape[1])

    def _request(self, texts: list[str]) -> np.ndarray:
        kwargs = {"dimensions": self.dim} if self._send_dimensions else {}
        resp = self._client.embeddings.create(model=self.model_name, input=texts, **kwargs)
        rows = sorted(resp.data, key=lambda d: d.index)
        return np.asarray([r.embedding for r in rows], dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        from threadline.tokens import get_encoding

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = get_encoding("cl100k_base")
        clipped = []
        for t in texts:
            toks = enc.encode(t, disallowed_special=())
            clipped.append(enc.decode(toks[: self.max_tokens]) if len(toks) > self.max_tokens else (t or " "))
        parts = [self._request(clipped[i : i + self.batch_size]) for i in range(0, len(clipped), self.batch_size)]
        out = np.concatenate(parts, axis=0)
        if out.shape[1] != self.dim:
            raise ValueError(f"embedding endpoint returned dimension {out.shape[1]}, expected {self.dim}")
        return _normalise(out)


_cached: dict[tuple, Embedder] = {}
_cached_lock = threading.Lock()


def embedder_for(settings: Settings) -> Embedder:
    """Build (once per configuration) the embedder `settings.embeddings` selects: `local` (THREADLINE_MODELS_DIR)
    or `openai` (THREADLINE_EMBEDDINGS_MODEL, THREADLINE_EMBEDDINGS_BASE_URL or OPENAI_BASE_URL, OPENAI_API_KEY,
    optional THREADLINE_EMBEDDINGS_DIM)."""
    if settings.embeddings == "local":
        key: tuple = ("local", str(settings.models_dir or default_models_dir()))
    else:
        key = (
            "openai",
            settings.embeddings_base_url or settings.openai_base_url,
            settings.openai_api_key,
            settings.embeddings_model,
            settings.embeddings_dim,
        )
    with _cached_lock:
        if key not in _cached:
            _cached[key] = OnnxEmbedder(key[1]) if key[0] == "local" else OpenAIEmbedder(*key[1:])
        return _cached[key]

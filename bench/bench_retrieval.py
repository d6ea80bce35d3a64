"""SciFact retrieval quality, latency and embedding throughput through threadline.retrieval.

Indexes the BEIR SciFact corpus (each document = one file holding "title\\n\\ntext") into a fresh SQLite
database created by the real migrations, then runs the queries of one split and reports nDCG@10 and
recall@100 for keyword-only, vector-only and hybrid retrieval (documents ranked by their best chunk).

    .venv/bin/python bench/bench_retrieval.py                      # test split, default configuration
    .venv/bin/python bench/bench_retrieval.py --split train --tune  # fusion-weight sweep on train queries
    .venv/bin/python bench/bench_retrieval.py --chunk 800 400       # another chunking (static sizes)
    .venv/bin/python bench/bench_retrieval.py --skip-synthetic      # without the 100k-chunk latency run

Chunk embeddings are cached under .cache/bench/ (keyed by model sha256 and chunking), so reruns take seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import scifact_dir  # noqa: E402
from threadline.retrieval import index as ix  # noqa: E402
from threadline.retrieval.chunking import AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS, chunk_text  # noqa: E402
from threadline.retrieval.embeddings import OnnxEmbedder  # noqa: E402
from threadline.store.db import create_engine  # noqa: E402
from threadline.store.migrate import upgrade  # noqa: E402

DATA = scifact_dir()
CACHE = REPO / ".cache" / "bench"
STORE = "vs_scifact"


def lines(path: Path | str) -> list[str]:
    with open(path) as f:
        return f.readlines()


def load_split(split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    queries = {}
    for line in lines(DATA / "queries.jsonl"):
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(DATA / "qrels" / f"{split}.tsv") as f:
        next(f)
        for line in f:
            qid, did, rel = line.rstrip("\n").split("\t")
            if int(rel) > 0:
                qrels.setdefault(qid, {})[did] = int(rel)
    return {qid: queries[qid] for qid in qrels}, qrels


def ndcg_at(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rels: dict[str, int], k: int = 100) -> float:
    return len(set(ranked[:k]) & set(rels)) / len(rels)


def build_chunks(max_tokens: int, overlap: int) -> list[tuple[str, int, str, int]]:
    out = []
    for line in lines(DATA / "corpus.jsonl"):
        d = json.loads(line)
        content = f"{d['title']}\n\n{d['text']}" if d.get("title") else d["text"]
        for i, c in enumerate(chunk_text(content, max_tokens, overlap)):
            out.append((d["_id"], i, c.text, c.token_count))
    return out


def embed_cached(emb: OnnxEmbedder, chunks: list, tag: str) -> np.ndarray:
    sha = emb.manifest.get("sha256", {}).get("model.onnx", "unknown")[:12]
    path = CACHE / f"scifact-{sha}-{tag}-per-window.npy"  # vectors from one window per model call
    if path.is_file():
        vecs = np.load(path)
        if vecs.shape[0] == len(chunks):
            return vecs
    t0 = time.perf_counter()
    vecs = np.concatenate([emb.embed([c[2] for c in chunks[i : i + 256]]) for i in range(0, len(chunks), 256)])
    print(f"embedded {len(chunks)} chunks in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def build_index(chunks: list, vecs: np.ndarray, db: Path):
    engine = create_engine(f"sqlite:///{db}")
    upgrade(engine)
    index = ix.make_index(engine)
    by_file: dict[str, list[ix.ChunkRecord]] = {}
    for (fid, i, text, ntok), v in zip(chunks, vecs, strict=True):
        by_file.setdefault(fid, []).append(ix.ChunkRecord(STORE, fid, i, text, ntok, v, {"source": "scifact"}))
    t0 = time.perf_counter()
    batch: list[ix.ChunkRecord] = []
    for recs in by_file.values():
        batch.extend(recs)
        if len(batch) >= 2000:
            index.add(batch)
            batch = []
    index.add(batch)
    print(f"indexed {len(chunks)} chunks in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return engine, index


def doc_ranking(hits: list[ix.SearchHit], weight: float | None = None) -> list[str]:
    if weight is not None:  # re-fuse the returned components with another weight
        scored = sorted(hits, key=lambda h: -(weight * h.vector_score + (1 - weight) * h.keyword_score))
    else:
        scored = hits
    seen: dict[str, None] = {}
    for h in scored:
        seen.setdefault(h.file_id, None)
    return list(seen)


def evaluate(index, emb, queries, qrels, modes=("keyword", "vector", "hybrid")) -> dict:
    qids = list(queries)
    qvecs = emb.embed([queries[q] for q in qids])
    results = {}
    for mode in modes:
        nd, rc = [], []
        for qid, qv in zip(qids, qvecs, strict=True):
            hits = index.search([STORE], queries[qid], qv, k=400, mode=mode)
            ranked = doc_ranking(hits)
            nd.append(ndcg_at(ranked, qrels[qid]))
            rc.append(recall_at(ranked, qrels[qid]))
        results[mode] = (float(np.mean(nd)), float(np.mean(rc)))
    return results


def tune(index, emb, queries, qrels) -> list[tuple[float, float, float]]:
    qids = list(queries)
    qvecs = emb.embed([queries[q] for q in qids])
    # CANDIDATES per modality at k=10 in production; take the union of both pools once, re-fuse offline.
    pools = [
        index.search([STORE], queries[q], v, k=2 * ix.CANDIDATES, mode="hybrid")
        for q, v in zip(qids, qvecs, strict=True)
    ]
    rows = []
    for w in [round(x, 2) for x in np.arange(0.0, 1.01, 0.05)]:
        nd = [ndcg_at(doc_ranking(p, w), qrels[q]) for q, p in zip(qids, pools, strict=True)]
        rc = [recall_at(doc_ranking(p, w), qrels[q]) for q, p in zip(qids, pools, strict=True)]
        rows.append((w, float(np.mean(nd)), float(np.mean(rc))))
    return rows


def latency(index, emb, queries: list[str], store_ids: list[str], k: int = 10, rounds: int = 1) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        for q in queries:
            t0 = time.perf_counter()
            qv = emb.embed([q])[0]
            index.search(store_ids, q, qv, k=k, mode="hybrid")
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def synthetic_store(engine, index, n: int, chunks: list, vecs: np.ndarray) -> str:
    """A 100k-chunk store: SciFact chunk texts repeated with clustered, perturbed copies of their embeddings."""
    rng = np.random.default_rng(0)
    store = "vs_synthetic"
    if index.stats(store)["chunk_count"] >= n:
        return store
    t0 = time.perf_counter()
    batch = []
    for j in range(n):
        src = j % len(chunks)
        v = vecs[src] + rng.normal(0, 0.02, vecs.shape[1]).astype(np.float32)
        v /= np.linalg.norm(v)
        batch.append(ix.ChunkRecord(store, f"file-syn{j // 20}", j % 20, chunks[src][2], chunks[src][3], v, None))
        if len(batch) >= 5000:
            index.add(batch)
            batch = []
    if batch:
        index.add(batch)
    print(f"synthetic store: {n} chunks in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return store


def throughput(emb: OnnxEmbedder, n: int = 320) -> float:
    """chunks/s for chunks of exactly 256 word pieces (the model window), batch 32 (embedder default)."""
    texts, buf = [], ""
    for line in lines(DATA / "corpus.jsonl"):
        buf += " " + json.loads(line)["text"]
        ids = emb._tok.encode(buf).ids
        if len(ids) >= 256:
            texts.append(emb._tok.decode(ids[1:255]))
            buf = ""
        if len(texts) == n:
            break
    emb.embed(texts[:32])
    best = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        emb.embed(texts)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in lines("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return f"{platform.platform()}, {cpu}, {len(os.sched_getaffinity(0))} cores, load avg {load:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="test", choices=["test", "train"])
    ap.add_argument("--chunk", nargs=2, type=int, metavar=("MAX", "OVERLAP"))
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--tune", action="store_true", help="sweep the hybrid weight on the chosen split")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--synthetic-size", type=int, default=100_000)
    ap.add_argument("--db", default=None, help="keep the SQLite database here (default: temporary)")
    args = ap.parse_args()

    max_tokens, overlap = args.chunk or (AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)
    emb = OnnxEmbedder(args.models_dir)
    chunks = build_chunks(max_tokens, overlap)
    vecs = embed_cached(emb, chunks, f"{max_tokens}-{overlap}")
    tmp = tempfile.TemporaryDirectory()
    db = Path(args.db) if args.db else Path(tmp.name) / "bench.db"
    engine, index = build_index(chunks, vecs, db)
    queries, qrels = load_split(args.split)
    quant = emb.manifest.get("quantisation", "?")
    print(f"\n## threadline retrieval on SciFact ({args.split}, {len(queries)} queries)\n")
    print(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"- machine: {machine()}")
    print(f"- embedder: {emb.model_name} ONNX {quant}; chunking {max_tokens}/{overlap} tokens -> {len(chunks)} chunks")
    print(f"- hybrid weight (vector) {ix.HYBRID_VECTOR_WEIGHT}, candidates per modality {ix.CANDIDATES}\n")
    if args.tune:
        print("| vector weight | nDCG@10 | recall@100 |\n| --- | --- | --- |")
        for w, nd, rc in tune(index, emb, queries, qrels):
            print(f"| {w:.2f} | {nd:.4f} | {rc:.4f} |")
        return 0
    res = evaluate(index, emb, queries, qrels)
    print("| mode | nDCG@10 | recall@100 |\n| --- | --- | --- |")
    for mode, (nd, rc) in res.items():
        print(f"| {mode} | {nd:.4f} | {rc:.4f} |")
    print("| (anchor) BM25 | 0.665 | |\n| (anchor) OpenAI file_search | 0.717 | |\n")
    qtexts = list(queries.values())
    p50, p95 = latency(index, emb, qtexts, [STORE])
    print("| measurement | value |\n| --- | --- |")
    print(f"| hybrid search latency, SciFact store ({len(chunks)} chunks), p50 / p95 | {p50:.1f} / {p95:.1f} ms |")
    if not args.skip_synthetic:
        syn = synthetic_store(engine, index, args.synthetic_size, chunks, vecs)
        latency(index, emb, qtexts[:5], [syn])  # load the store matrix once
        p50, p95 = latency(index, emb, qtexts, [syn])
        print(
            f"| hybrid search latency, synthetic {args.synthetic_size} chunks, p50 / p95 | {p50:.1f} / {p95:.1f} ms |"
        )
    print(f"| embedding throughput, 256-token chunks ({quant}) | {throughput(emb):.1f} chunks/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

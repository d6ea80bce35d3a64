"""Local embedding: one window per model call (OnnxEmbedder) against padded batches of 32, in one run.

The two ways of running the same model alternate round by round, so load from other processes on a shared
machine falls on both alike and the ratios stay meaningful even when the absolute numbers do not. Several
model directories (as written by scripts/build-embedding-model.sh) can be compared the same way.

    .venv/bin/python bench/bench_embeddings.py [MODEL_DIR ...] [--chunks 160] [--rounds 3]

Reported per model and way of running it:
- chunks/s and CPU ms per chunk on chunks of exactly 256 word pieces (the model window);
- chunks/s on SciFact chunks as ingestion makes them (200/100-token chunking, mixed lengths);
- single-query embedding latency p50 / p95 (SciFact test queries, one at a time);
- batching drift: max |difference| between a text embedded alone and inside random mixed-length batches;
- cosine to the first row on the SciFact chunks (min / mean).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import machine, machine_line, percentile, scifact_dir  # noqa: E402
from threadline.retrieval.chunking import AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS, chunk_text  # noqa: E402
from threadline.retrieval.embeddings import OnnxEmbedder  # noqa: E402


def full_windows(emb: OnnxEmbedder, corpus: list[dict], n: int) -> list[str]:
    texts, buf = [], ""
    for doc in corpus:
        buf += " " + doc["text"]
        ids = emb._tok.encode(buf).ids
        if len(ids) >= 256:
            texts.append(emb._tok.decode(ids[1:255]))
            buf = ""
            if len(texts) == n:
                break
    return texts


class Padded:
    """The earlier way of running the model: windows sorted by length, padded batches of `size`."""

    def __init__(self, emb: OnnxEmbedder, size: int = 32) -> None:
        self.emb, self.size, self.manifest = emb, size, emb.manifest

    def embed(self, texts: list[str]) -> np.ndarray:
        encodings = self.emb._tok.encode_batch([t if t.strip() else " " for t in texts])
        windows, owner = [], []
        for i, enc in enumerate(encodings):
            for part in [enc, *enc.overflowing]:
                windows.append(part.ids)
                owner.append(i)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        vecs = np.empty((len(windows), self.emb.dim), dtype=np.float32)
        for b in range(0, len(order), self.size):
            idx = order[b : b + self.size]
            ids = np.zeros((len(idx), max(len(windows[i]) for i in idx)), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : len(windows[i])] = windows[i]
            feed = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": ids * 0}
            vecs[idx] = self.emb._session.run(["sentence_embedding"], feed)[0]
        out = np.zeros((len(texts), self.emb.dim), dtype=np.float32)
        np.add.at(out, np.asarray(owner), vecs)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def timed(emb: OnnxEmbedder | Padded, texts: list[str]) -> tuple[float, float]:
    """(chunks/s wall, CPU ms per chunk of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    emb.embed(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(texts) / wall, cpu / len(texts) * 1000


def drift(emb: OnnxEmbedder | Padded, texts: list[str], rounds: int = 8) -> float:
    alone = {t: emb.embed([t])[0] for t in texts}
    rng = random.Random(0)
    worst = 0.0
    for _ in range(rounds):
        batch = rng.choices(texts, k=rng.randint(2, 24))
        for t, v in zip(batch, emb.embed(batch), strict=True):
            worst = max(worst, float(np.abs(v - alone[t]).max()))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model directories (default: the one the server uses)")
    ap.add_argument("--chunks", type=int, default=160, help="chunks per measurement")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    data = scifact_dir()
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").read_text().splitlines()]
    queries = queries[: args.queries]
    models: list[tuple[str, OnnxEmbedder | Padded]] = []
    for path in args.models or [None]:
        emb = OnnxEmbedder(path)
        name = Path(path).name if path else "default"
        models += [(f"{name}, padded batches of 32", Padded(emb)), (f"{name}, one window per call", emb)]
    windows = full_windows(models[-1][1], corpus, args.chunks)
    mixed: list[str] = []
    for doc in corpus[len(corpus) // 2 :]:
        mixed += [c.text for c in chunk_text(f"{doc['title']}\n\n{doc['text']}", AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)]
        if len(mixed) >= args.chunks:
            break
    mixed = mixed[: args.chunks]

    stats: dict[str, dict[str, list[float]]] = {
        p: {"full": [], "cpu": [], "mixed": [], "mcpu": [], "q": []} for p, _ in models
    }
    for _, emb in models:  # warm-up
        emb.embed(windows[:32])
        emb.embed(queries[:5])
    load = []
    for _ in range(args.rounds):
        for path, emb in models:
            load.append(os.getloadavg()[0])
            rate, cpu = timed(emb, windows)
            stats[path]["full"].append(rate)
            stats[path]["cpu"].append(cpu)
            rate, cpu = timed(emb, mixed)
            stats[path]["mixed"].append(rate)
            stats[path]["mcpu"].append(cpu)
            for q in queries:
                t0 = time.perf_counter()
                emb.embed([q])
                stats[path]["q"].append((time.perf_counter() - t0) * 1000)
    reference = models[0][1].embed(mixed)
    pool = [""] + queries[:6] + mixed[:6] + windows[:3] + [" ".join(f"token{i}" for i in range(700))]

    print(f"\n## Local embedding ({len(models)} ways), {args.rounds} alternating rounds\n")
    print(f"- machine: {machine_line(machine())}; load average during the run {min(load):.1f}–{max(load):.1f}")
    print(f"- {len(windows)} chunks of 256 word pieces, {len(mixed)} SciFact chunks, {len(queries)} queries\n")
    print(
        "| model, how it is run | quantisation | 256-piece chunks/s (best) | CPU ms/chunk (best) "
        "| SciFact chunks/s (best) | CPU ms/SciFact chunk (best) | query p50 / p95 ms | batching drift "
        "| cosine to first (min / mean) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path, emb in models:
        s = stats[path]
        cos = np.sum(emb.embed(mixed) * reference, axis=1)
        quant = emb.manifest.get("quantisation", "?")
        print(
            f"| {path} | {quant} | {max(s['full']):.1f} | {min(s['cpu']):.1f} "
            f"| {max(s['mixed']):.1f} | {min(s['mcpu']):.1f} "
            f"| {percentile(s['q'], 50):.1f} / {percentile(s['q'], 95):.1f} "
            f"| {drift(emb, pool):.1e} | {cos.min():.4f} / {cos.mean():.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

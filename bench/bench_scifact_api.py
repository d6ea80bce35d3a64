"""SciFact through the HTTP API: upload the corpus, ingest it into one vector store, query the search endpoint.

Starts a real threadline server (SQLite, fresh data dir), uploads each SciFact document as one file
("title\\n\\ntext", named <doc id>.txt), attaches them with file batches, waits for ingestion, then sends the
test queries to POST /v1/vector_stores/{id}/search and scores nDCG@10 and recall@100 (documents ranked by their
best chunk; max_num_results is 50, the endpoint's maximum, so recall is @50 — reported as such). Also reports
ingestion throughput (chunks/s end to end) and search latency (p50/p95, query embedding included).

    .venv/bin/python bench/bench_scifact_api.py [--limit-docs N] [--split test] [--mode hybrid|keyword|vector]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from common import scifact_dir

REPO = Path(__file__).resolve().parents[1]
DATA = scifact_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit-docs", type=int, default=0, help="only the first N documents (smoke runs)")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "keyword", "vector"])
    args = parser.parse_args()

    corpus = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text().splitlines()]
    if args.limit_docs:
        corpus = corpus[: args.limit_docs]
    doc_ids = {d["_id"] for d in corpus}
    queries = {q["_id"]: q["text"] for q in map(json.loads, (DATA / "queries.jsonl").read_text().splitlines())}
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA / "qrels" / f"{args.split}.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split()
        if did in doc_ids:
            qrels.setdefault(qid, {})[did] = int(score)

    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="tl-scifact-")
    env = dict(os.environ, THREADLINE_SEARCH_MODE=args.mode, THREADLINE_SANDBOX_WARM_POOL="0")
    server = subprocess.Popen(
        [str(REPO / ".venv/bin/threadline"), "serve", "--port", str(port), "--data-dir", data_dir],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        client = httpx.Client(base_url=base, timeout=120)
        for _ in range(100):
            try:
                client.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        t0 = time.perf_counter()

        def upload(doc: dict) -> tuple[str, str]:
            body = f"{doc['title']}\n\n{doc['text']}".encode()
            with httpx.Client(base_url=base, timeout=60) as c:
                r = c.post("/files", files={"file": (f"{doc['_id']}.txt", body)}, data={"purpose": "assistants"})
                r.raise_for_status()
                return r.json()["id"], doc["_id"]

        with ThreadPoolExecutor(8) as pool:
            file_to_doc = dict(pool.map(upload, corpus))
        upload_s = time.perf_counter() - t0
        store = client.post("/vector_stores", json={"name": "scifact"}).json()
        ids = list(file_to_doc)
        t1 = time.perf_counter()
        for i in range(0, len(ids), 2000):
            client.post(f"/vector_stores/{store['id']}/file_batches", json={"file_ids": ids[i : i + 2000]})
        while True:
            counts = client.get(f"/vector_stores/{store['id']}").json()["file_counts"]
            if counts["in_progress"] == 0:
                break
            time.sleep(1)
        ingest_s = time.perf_counter() - t1
        stats = client.get(f"/vector_stores/{store['id']}/stats").json()

        ndcgs, recalls, latencies = [], [], []
        for qid, rel in qrels.items():
            q0 = time.perf_counter()
            r = client.post(f"/vector_stores/{store['id']}/search", json={"query": queries[qid], "max_num_results": 50})
            latencies.append((time.perf_counter() - q0) * 1000)
            ranked: list[str] = []
            for hit in r.json()["data"]:
                doc = file_to_doc[hit["file_id"]]
                if doc not in ranked:
                    ranked.append(doc)
            ndcgs.append(ndcg_at(ranked, rel, 10))
            recalls.append(len(set(ranked[:50]) & set(rel)) / len(rel))
        lat = sorted(latencies)
        cpu = next(
            (
                x.split(":", 1)[1].strip()
                for x in Path("/proc/cpuinfo").read_text().splitlines()
                if x.startswith("model name")
            ),
            "",
        )
        print(f"## SciFact through the API ({args.split}, mode {args.mode})\n")
        print(
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, {cpu}, "
            f"Python {platform.python_version()}"
        )
        print(
            f"- documents: {len(corpus)}, queries: {len(qrels)}; chunks: {stats.get('chunk_count')}; "
            f"embedding model: {stats.get('embedding_model')}"
        )
        print(
            f"- upload: {upload_s:.1f} s ({len(corpus) / upload_s:.0f} files/s); ingestion: {ingest_s:.1f} s "
            f"({stats.get('chunk_count', 0) / ingest_s:.1f} chunks/s end to end)\n"
        )
        print("| metric | value |\n|---|---|")
        print(f"| nDCG@10 | {statistics.mean(ndcgs):.3f} |")
        print(f"| recall@50 | {statistics.mean(recalls):.3f} |")
        print(
            f"| search latency p50 / p95 (ms, HTTP, query embedding included) | {lat[len(lat) // 2]:.1f} / "
            f"{lat[int(len(lat) * 0.95) - 1]:.1f} |"
        )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())

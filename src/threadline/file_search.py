"""file_search: the retrieval service over vector stores, the server-side tool, and reliable citations.

Citations. The model sees each result behind a marker `【n†filename】` and is asked to cite with it. Small local
models often don't, or write `[n]`, `[n†...]` or `【n】` instead. So the reply is rewritten while it streams:
any of those forms that names a result is normalised to `【n†filename】` (text is held back only while a
bracket is open), and every normalised marker becomes a `file_citation` annotation with exact offsets. If a
reply that used search results contains no marker at all, the results that best support the reply (by word
overlap) are cited at its end, so a file_search answer never comes without its sources.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .engine.tools import StepDelta, ToolContext, ToolFatal, ToolOutcome
from .providers.base import ToolSpec
from .services import vector_stores as vs
from .store import Store, files, messages, schema, threads, vector_stores

if TYPE_CHECKING:
    from .services.deps import Deps

if TYPE_CHECKING:
    from .config import Settings
    from .retrieval.embeddings import Embedder
    from .retrieval.index import ChunkIndex
    from .store.blobs import BlobStore

DEFAULT_MAX_RESULTS = 20
THREAD_STORE_WAIT_S = 60.0
WORD = re.compile(r"[a-z0-9]{3,}")
STOPWORDS = frozenset(
    (  # noqa: SIM905
        "the and for are but not you all any can had her was one our out has have with this that from they "
        "will would there their what when which who how into than then them these those its also been were "
        "more most"
    ).split()
)


@dataclass
class Hit:
    """One search result. `score` is the fused score that ranks results; `keyword_score` and `vector_score` are
    its components (all 0..1, see retrieval/index.py), and `query` is the query that scored it best."""

    file_id: str
    filename: str
    score: float
    text: str
    attributes: dict | None
    chunk_index: int
    vector_store_id: str = ""
    keyword_score: float = 0.0
    vector_score: float = 0.0
    query: str = ""


class RetrievalService:
    """Parsing, chunking, embedding and hybrid search, behind one object the API and the tool share."""

    def __init__(self, store: Store, blobs: BlobStore, settings: Settings) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self._embedder: Embedder | None = None
        self._index: ChunkIndex | None = None
        self._lock = threading.Lock()
        self.mode = settings.search_mode

    @property
    def embedder_loaded(self) -> bool:
        """Whether the embedder was built (the local model loads on first use)."""
        return self._embedder is not None

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from .retrieval.embeddings import embedder_for

                self._embedder = embedder_for(self.settings)
            return self._embedder

    @property
    def index(self) -> ChunkIndex:
        with self._lock:
            if self._index is None:
                from .retrieval.index import make_index

                self._index = make_index(self.store.engine, self.settings)
            return self._index

    @property
    def auto_chunking(self) -> dict[str, int]:
        from .retrieval.chunking import AUTO_CHUNKING, OPENAI_AUTO_CHUNKING

        return dict(AUTO_CHUNKING if self.settings.embeddings == "local" else OPENAI_AUTO_CHUNKING)

    def index_files(
        self, files: list[tuple[str, str, str, dict, dict | None]], tokens: list[int] | None = None
    ) -> list[int]:
        """Chunk, embed and index files given as (store id, file id, text, chunking, attributes), replacing earlier
        chunks of each; returns the bytes each uses, and appends to `tokens` the tokens each file's chunks sent to
        the embedder (usage). All chunks are embedded in one call (large batches)."""
        from .retrieval.chunking import chunk_text
        from .retrieval.index import ChunkRecord

        chunked = []
        for _, _, text, chunking, _ in files:
            params = chunking.get("static") or self.auto_chunking
            chunked.append(chunk_text(text, params["max_chunk_size_tokens"], params["chunk_overlap_tokens"]))
        texts = [c.text for chunks in chunked for c in chunks]
        vectors = self.embedder.embed(texts) if texts else []
        dim = int(self.embedder.dim)
        records, usages, at = [], [], 0
        for (vs_id, file_id, _, _, attributes), chunks in zip(files, chunked, strict=True):
            if not chunks:
                self.index.delete_file(vs_id, file_id)
            for i, c in enumerate(chunks):
                records.append(ChunkRecord(vs_id, file_id, i, c.text, c.token_count, vectors[at + i], attributes))
            at += len(chunks)
            if tokens is not None:
                tokens.append(sum(c.token_count for c in chunks))
            usages.append(sum(len(c.text.encode()) + 4 * dim for c in chunks))
        if records:
            self.index.add(records)
        return usages

    def delete_file(self, vs_id: str, file_id: str) -> None:
        self.index.delete_file(vs_id, file_id)

    def delete_store(self, vs_id: str) -> None:
        self.index.delete_store(vs_id)

    def update_attributes(self, vs_id: str, file_id: str, attributes: dict | None) -> None:
        self.index.update_attributes(vs_id, file_id, attributes)

    def stats(self, vs_id: str) -> dict[str, Any]:
        out = dict(self.index.stats(vs_id))
        out["embedding_model"] = self.embedder.model_name
        out["embedding_dim"] = int(self.embedder.dim)
        out["search_mode"] = self.mode
        return out

    def file_stats(self, vs_id: str) -> dict[str, dict[str, int]]:
        """file id -> its chunk count and bytes in the index (files not indexed yet are absent)."""
        return self.index.file_stats(vs_id)

    def file_chunks(self, vs_id: str, file_id: str) -> list[str]:
        from .retrieval.parse import ParseError, extract_text

        with self.store.read() as conn:
            stored = files.with_blob_keys(conn, [file_id]).get(file_id)
        if stored is None:
            return []
        obj, blob_key = stored
        try:
            with self.blobs.open(blob_key) as f:
                data = f.read()
            return [extract_text(data, obj["filename"])]
        except (ParseError, OSError):
            return []

    def search(
        self,
        vs_ids: list[str],
        queries: list[str],
        *,
        k: int,
        filters: dict | None = None,
        score_threshold: float = 0.0,
        rerank: bool = True,
    ) -> list[Hit]:
        if not vs_ids or not queries:
            return []
        vectors = self.embedder.embed(queries)
        best: dict[tuple[str, int], tuple[Any, str]] = {}
        for query, vector in zip(queries, vectors, strict=True):
            for hit in self.index.search(
                vs_ids, query, vector, k=k, filters=filters, mode=self.mode, score_threshold=score_threshold
            ):
                key = (hit.file_id, hit.chunk_index)
                if key not in best or hit.score > best[key][0].score:
                    best[key] = (hit, query)
        ranked = sorted(best.values(), key=lambda b: b[0].score, reverse=True)[:k]
        names = self._filenames({h.file_id for h, _ in ranked})
        return [
            Hit(
                h.file_id,
                names.get(h.file_id, h.file_id),
                round(float(h.score), 6),
                h.text,
                h.attributes,
                h.chunk_index,
                vector_store_id=getattr(h, "vector_store_id", ""),
                keyword_score=round(float(getattr(h, "keyword_score", 0.0)), 6),
                vector_score=round(float(getattr(h, "vector_score", 0.0)), 6),
                query=query,
            )
            for h, query in ranked
        ]

    def _filenames(self, file_ids: set[str]) -> dict[str, str]:
        if not file_ids:
            return {}
        with self.store.read() as conn:
            return files.filenames(conn, file_ids)


def score_details(hit: Hit) -> dict[str, Any]:
    """The threadline extension fields of one result: its score components, chunk and the query that found it."""
    return {
        "keyword_score": hit.keyword_score,
        "vector_score": hit.vector_score,
        "vector_store_id": hit.vector_store_id,
        "chunk_index": hit.chunk_index,
        "query": hit.query,
    }


# -- the tool -----------------------------------------------------------------------------------------------------


class FileSearchTool:
    type = "file_search"
    function_name = "file_search"

    def __init__(self, runtime: Deps) -> None:
        self.rt = runtime

    def spec(self, tool_config: dict[str, Any]) -> ToolSpec:
        return ToolSpec(
            name=self.function_name,
            description=(
                "Search the documents the user uploaded (files attached to this assistant and conversation). "
                "Returns the most relevant excerpts, each with a citation marker."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "queries": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "One to five search queries, each a self-contained question or key phrase.",
                    }
                },
                "required": ["queries"],
            },
        )

    def instructions(self, tool_config: dict[str, Any]) -> str:
        return (
            "You can search the user's files with the file_search tool. Each excerpt it returns starts with a marker "
            "such as 【0†report.pdf】. When you use an excerpt, put its marker right after the sentence that "
            "uses it, exactly as given."
        )

    def first_delta(self, call_id: str) -> dict[str, Any]:
        return {"id": call_id, "type": "file_search", "file_search": {}}

    def _queries(self, arguments: str, ctx: ToolContext) -> list[str]:
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            args = {"queries": [arguments]}
        queries = args.get("queries") if isinstance(args, dict) else None
        if isinstance(queries, str):
            queries = [queries]
        if not queries and isinstance(args, dict) and isinstance(args.get("query"), str):
            queries = [args["query"]]
        queries = [q.strip() for q in queries or [] if isinstance(q, str) and q.strip()][:5]
        if not queries:
            queries = [self._last_user_text(ctx)]
        return [q for q in queries if q]

    def _last_user_text(self, ctx: ToolContext) -> str:
        with self.rt.store.read() as conn:
            recent = messages.newest(conn, ctx.run["thread_id"], 20)
        for message in recent:
            if message["role"] == "user":
                return " ".join(p["text"]["value"] for p in message["content"] if p["type"] == "text")
        return ""

    def _store_ids(self, ctx: ToolContext) -> tuple[list[str], list[str]]:
        def ids(obj: dict) -> list[str]:
            return ((obj.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or []

        if "vector_store_ids" in ctx.tool_config:  # a Responses file_search tool names its stores itself
            return list(ctx.tool_config["vector_store_ids"]), []
        with self.rt.store.read() as conn:
            thread = threads.get(conn, ctx.run["thread_id"]) or {}
            assistant = Store.fetch(conn, schema.assistants, ctx.run["assistant_id"]) or {}
        return ids(assistant), ids(thread)

    def _prepare(self, thread_ids: list[str], all_ids: list[str]) -> list[str]:
        with self.rt.store.write() as conn:
            live = []
            for vs_id in all_ids:
                obj = vector_stores.get(conn, vs_id)
                if obj is None:
                    continue
                if vs.is_expired(obj):
                    if vs_id in thread_ids:
                        raise ToolFatal(f"The thread's vector store {vs_id} has expired.")
                    continue
                live.append(vs_id)
            vs.touch(conn, live)
        return live

    def _pending(self, vs_ids: list[str]) -> int:
        with self.rt.store.read() as conn:
            return vector_stores.pending_count(conn, vs_ids)

    async def execute(self, ctx: ToolContext, call_id: str, arguments: str, delta: StepDelta) -> ToolOutcome:
        opts = ctx.tool_config.get("file_search") or {}
        ranking = opts.get("ranking_options") or {"ranker": "auto", "score_threshold": 0.0}
        k = int(opts.get("max_num_results") or DEFAULT_MAX_RESULTS)
        threshold = float(ranking.get("score_threshold") or 0.0)
        queries = self._queries(arguments, ctx)
        assistant_ids, thread_ids = await asyncio.to_thread(self._store_ids, ctx)
        all_ids = list(dict.fromkeys(assistant_ids + thread_ids))
        waited = 0.0
        while thread_ids and waited < THREAD_STORE_WAIT_S and await asyncio.to_thread(self._pending, thread_ids):
            await asyncio.sleep(0.2)  # a thread's own store is waited for (up to 60 s), as OpenAI did
            waited += 0.2
        live = await asyncio.to_thread(self._prepare, thread_ids, all_ids)
        hits = await asyncio.to_thread(self.rt.retrieval.search, live, queries, k=k, score_threshold=threshold)
        offset = sum(len(r.get("results", [])) for r in ctx.prior)
        lines = []
        results = []
        refs = []
        for i, hit in enumerate(hits):
            n = offset + i
            lines.append(f"【{n}†{hit.filename}】 (score {hit.score:.2f})\n{hit.text}")
            results.append(
                {
                    "file_id": hit.file_id,
                    "file_name": hit.filename,
                    "score": hit.score,
                    "content": [{"type": "text", "text": hit.text}],
                    # threadline extensions (the spec allows extra fields here): why this result ranked where it did
                    **score_details(hit),
                }
            )
            refs.append({"n": n, "file_id": hit.file_id, "filename": hit.filename, "text": hit.text})
        output = "\n\n".join(lines) if lines else "No results found in the attached files."
        call = {
            "id": call_id,
            "type": "file_search",
            "file_search": {
                "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": threshold},
                "results": results,
                "queries": queries,  # threadline extension: what the model searched for
            },
        }
        # the stores searched: the call's usage row names its store when it searched one (store/usage.py)
        references = {"queries": queries, "results": refs, "vector_store_ids": live}
        return ToolOutcome(output=output, call=call, references=references)

    def text_processor(self, references: list[dict[str, Any]]) -> CitationProcessor | None:
        results = [r for ref in references for r in ref.get("results", [])]
        return CitationProcessor(results) if results else None


# -- citations ----------------------------------------------------------------------------------------------------

MARKER = re.compile(r"【(\d+)(?::\d+)?(?:†[^】]*)?】|\[(\d+)(?:†[^\]\n]*)?\]|\[(?:source|doc|Source|Doc)\s*(\d+)\]")
CANONICAL = re.compile(r"【(\d+)†[^】]*】")
HOLD_LIMIT = 80


class CitationProcessor:
    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = {r["n"]: r for r in results}
        self.buffer = ""

    def _normalise(self, text: str) -> str:
        def repl(m: re.Match) -> str:
            n = int(next(g for g in m.groups() if g is not None))
            result = self.results.get(n)
            return f"【{n}†{result['filename']}】" if result else m.group(0)

        return MARKER.sub(repl, text)

    def feed(self, text: str) -> str:
        self.buffer += text
        out = ""
        while self.buffer:
            start = min((i for i in (self.buffer.find("【"), self.buffer.find("[")) if i >= 0), default=-1)
            if start < 0:
                out += self.buffer
                self.buffer = ""
                break
            out += self.buffer[:start]
            self.buffer = self.buffer[start:]
            close = "】" if self.buffer[0] == "【" else "]"
            end = self.buffer.find(close)
            if end < 0:
                if len(self.buffer) > HOLD_LIMIT or "\n" in self.buffer:
                    out += self.buffer[0]  # not a marker after all: release the bracket
                    self.buffer = self.buffer[1:]
                    continue
                break  # hold: a marker may be completing
            out += self._normalise(self.buffer[: end + 1])
            self.buffer = self.buffer[end + 1 :]
        return out

    def flush(self, full_text: str) -> str:
        tail = self._normalise(self.buffer)
        self.buffer = ""
        text = full_text + tail
        if not CANONICAL.search(text) and text.strip():
            tail += self._fallback(text)
        return tail

    def annotations(self, text: str) -> list[dict[str, Any]]:
        out = []
        for m in CANONICAL.finditer(text):
            result = self.results.get(int(m.group(1)))
            if result is None:
                continue
            out.append(
                {
                    "type": "file_citation",
                    "text": m.group(0),
                    "start_index": m.start(),
                    "end_index": m.end(),
                    "file_citation": {"file_id": result["file_id"]},
                }
            )
        return out

    def _fallback(self, text: str) -> str:
        words = {w for w in WORD.findall(text.lower()) if w not in STOPWORDS}
        if not words:
            return ""
        scored = []
        for n, result in self.results.items():
            overlap = len(words & set(WORD.findall(result["text"].lower())))
            if overlap >= 2:
                scored.append((overlap, -n, n, result))
        scored.sort(reverse=True)
        seen, markers = set(), []
        for _, _, n, result in scored:
            if result["file_id"] in seen:
                continue
            seen.add(result["file_id"])
            markers.append(f"【{n}†{result['filename']}】")
            if len(markers) == 3:
                break
        return (" " + "".join(markers)) if markers else ""

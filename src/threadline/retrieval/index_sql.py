"""The SQL shared by both chunk-index backends: writing, deleting and describing a store's chunks.

Subclasses supply the dialect parts: how an embedding is bound (`_embedding_value`, `_embedding_sql`), per-
dimension preparation before writes (`_prepare_dims`), and what to forget when a store changes (`_forget`).
"""

from __future__ import annotations

import secrets
from contextlib import AbstractContextManager

import numpy as np
import sqlalchemy as sa

from . import index as ix

DELETE_BATCH = 500  # chunks per transaction when deleting (~2 MB of SQLite WAL with 384-dim embeddings)


class SqlChunkIndex:
    engine: sa.Engine
    _embedding_sql = ":e"

    def _write(self) -> AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _embedding_value(self, v: np.ndarray) -> object:
        raise NotImplementedError

    def _prepare_dims(self, dims: set[int]) -> None:
        pass

    def _clean_text(self, text: str) -> str:
        return text

    def _forget(self, store_ids: set[str]) -> None:
        pass

    def _bump(self, conn: sa.Connection, store_ids: set[str]) -> None:
        """Give each store a fresh version token (readers in any process reload what they cached)."""
        for vs in store_ids:
            conn.execute(
                sa.text(
                    "INSERT INTO chunk_stores (vector_store_id, version) VALUES (:vs, :v) "
                    "ON CONFLICT (vector_store_id) DO UPDATE SET version = excluded.version"
                ),
                {"vs": vs, "v": secrets.randbits(62)},
            )
        self._forget(store_ids)

    def add(self, records: list[ix.ChunkRecord]) -> None:
        groups = ix.group_records(records)
        if not groups:
            return
        self._prepare_dims({int(ix.as_vector(r.embedding).shape[0]) for r in records})
        with self._write() as conn:
            for (vs, fid), recs in groups.items():
                self._delete_file(conn, vs, fid)
                rows = []
                text_bytes = emb_bytes = 0
                for r in recs:
                    v = ix.as_vector(r.embedding)
                    rows.append(
                        {
                            "vs": vs,
                            "f": fid,
                            "i": r.chunk_index,
                            "t": self._clean_text(r.text),
                            "n": r.token_count,
                            "d": v.shape[0],
                            "e": self._embedding_value(v),
                        }
                    )
                    text_bytes += len(r.text.encode("utf-8"))
                    emb_bytes += v.nbytes
                conn.execute(
                    sa.text(
                        "INSERT INTO chunks (vector_store_id, file_id, chunk_index, text, token_count, dim, embedding)"
                        f" VALUES (:vs, :f, :i, :t, :n, :d, {self._embedding_sql})"
                    ),
                    rows,
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO chunk_files (vector_store_id, file_id, attributes, chunk_count, text_bytes,"
                        " embedding_bytes) VALUES (:vs, :f, :a, :c, :tb, :eb)"
                    ),
                    {
                        "vs": vs,
                        "f": fid,
                        "a": ix.dumps_attributes(recs[0].attributes),
                        "c": len(recs),
                        "tb": text_bytes,
                        "eb": emb_bytes,
                    },
                )
            self._bump(conn, {vs for vs, _ in groups})

    @staticmethod
    def _delete_file(conn: sa.Connection, vs: str, fid: str) -> None:
        params = {"vs": vs, "f": fid}
        conn.execute(sa.text("DELETE FROM chunks WHERE vector_store_id = :vs AND file_id = :f"), params)
        conn.execute(sa.text("DELETE FROM chunk_files WHERE vector_store_id = :vs AND file_id = :f"), params)

    def _delete_chunks_in_batches(self, where: str, params: dict, vector_store_id: str) -> None:
        """Delete chunks a batch per transaction: one transaction over a large store would need as much free
        space as the store's size (SQLite's WAL), which a full disk does not have; small ones reuse it."""
        while True:
            with self._write() as conn:
                deleted = conn.execute(
                    sa.text(
                        f"DELETE FROM chunks WHERE id IN (SELECT id FROM chunks WHERE {where} LIMIT {DELETE_BATCH})"
                    ),
                    params,
                ).rowcount
                self._bump(conn, {vector_store_id})
            if deleted < DELETE_BATCH:
                return

    def delete_file(self, vector_store_id: str, file_id: str) -> None:
        params = {"vs": vector_store_id, "f": file_id}
        self._delete_chunks_in_batches("vector_store_id = :vs AND file_id = :f", params, vector_store_id)
        with self._write() as conn:
            self._delete_file(conn, vector_store_id, file_id)
            self._bump(conn, {vector_store_id})

    def delete_store(self, vector_store_id: str) -> None:
        params = {"vs": vector_store_id}
        self._delete_chunks_in_batches("vector_store_id = :vs", params, vector_store_id)
        with self._write() as conn:
            for table in ("chunks", "chunk_files", "chunk_stores"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE vector_store_id = :vs"), params)
        self._forget({vector_store_id})

    def prune(self) -> int:
        """Delete the chunks of files no longer in their vector store (a clean-up after a delete that failed, e.g.
        on a full disk); returns how many (store, file) pairs went. Reads the API's `vector_store_files` table."""
        with self.engine.connect() as conn:
            pairs = conn.execute(
                sa.text(
                    "SELECT cf.vector_store_id, cf.file_id FROM chunk_files cf WHERE NOT EXISTS (SELECT 1 FROM"
                    " vector_store_files v WHERE v.vector_store_id = cf.vector_store_id AND v.file_id = cf.file_id)"
                )
            ).all()
        for vs, fid in pairs:
            self.delete_file(vs, fid)
        with self._write() as conn:
            gone = conn.execute(
                sa.text(
                    "SELECT vector_store_id FROM chunk_stores c WHERE NOT EXISTS"
                    " (SELECT 1 FROM vector_stores s WHERE s.id = c.vector_store_id)"
                )
            ).scalars()
            stale = set(gone)
            for vs in stale:
                conn.execute(sa.text("DELETE FROM chunk_stores WHERE vector_store_id = :vs"), {"vs": vs})
        self._forget(stale)
        return len(pairs)

    def update_attributes(self, vector_store_id: str, file_id: str, attributes: dict | None) -> None:
        with self._write() as conn:
            conn.execute(
                sa.text("UPDATE chunk_files SET attributes = :a WHERE vector_store_id = :vs AND file_id = :f"),
                {"a": ix.dumps_attributes(attributes), "vs": vector_store_id, "f": file_id},
            )

    def stats(self, vector_store_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT count(*), coalesce(sum(chunk_count), 0), coalesce(sum(text_bytes), 0),"
                    " coalesce(sum(embedding_bytes), 0) FROM chunk_files WHERE vector_store_id = :vs"
                ),
                {"vs": vector_store_id},
            ).one()
        return ix._Stats(
            file_count=int(row[0]), chunk_count=int(row[1]), text_bytes=int(row[2]), embedding_bytes=int(row[3])
        ).as_dict()

    def file_stats(self, vector_store_id: str) -> dict[str, dict[str, int]]:
        """file id -> {chunk_count, text_bytes, embedding_bytes} for the files indexed in a store."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT file_id, chunk_count, text_bytes, embedding_bytes FROM chunk_files"
                    " WHERE vector_store_id = :vs"
                ),
                {"vs": vector_store_id},
            ).all()
        return {r[0]: {"chunk_count": int(r[1]), "text_bytes": int(r[2]), "embedding_bytes": int(r[3])} for r in rows}

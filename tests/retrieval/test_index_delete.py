"""Deleting a large store or file from the SQLite chunk index needs little free space (it must work on a full disk).

One transaction over the whole store would append every changed page to the WAL first: as much free space as the
store's size. Deleting in batches lets SQLite checkpoint and reuse the WAL, so its size stays bounded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from threadline.retrieval.index import ChunkRecord, make_index
from threadline.store.db import create_engine
from threadline.store.migrate import upgrade

CHUNKS_PER_FILE = 100
FILES = 40  # 4000 chunks of ~1.2 KB text + 1.5 KB embedding: ~17 MB in the database


def fill(path: Path):  # noqa: ANN201
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    index = make_index(engine)
    rng = np.random.default_rng(7)
    records = [
        ChunkRecord("vs_big", f"file-{f}", i, f"chunk {i} of file {f} " * 60, 300, rng.random(384, np.float32))
        for f in range(FILES)
        for i in range(CHUNKS_PER_FILE)
    ]
    index.add(records)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return engine, index


def wal_mb(path: Path) -> float:
    return os.path.getsize(f"{path}-wal") / 1e6


def test_deleting_a_large_store_keeps_the_wal_small(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    engine, index = fill(db)
    assert os.path.getsize(db) / 1e6 > 12
    index.delete_store("vs_big")
    assert wal_mb(db) < 8, f"WAL grew to {wal_mb(db):.1f} MB"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM chunks").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM chunk_files").scalar() == 0
    assert index.search(["vs_big"], "chunk", np.ones(384, np.float32), k=5) == []


def test_deleting_a_large_file_keeps_the_wal_small(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    engine, index = fill(db)
    big = [ChunkRecord("vs_big", "file-huge", i, "huge " * 300, 300, np.ones(384, np.float32)) for i in range(3000)]
    index.add(big)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    index.delete_file("vs_big", "file-huge")
    assert wal_mb(db) < 8, f"WAL grew to {wal_mb(db):.1f} MB"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM chunks WHERE file_id = 'file-huge'").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM chunks").scalar() == FILES * CHUNKS_PER_FILE
    hits = index.search(["vs_big"], "huge", np.ones(384, np.float32), k=5)
    assert hits and all(h.file_id != "file-huge" for h in hits)

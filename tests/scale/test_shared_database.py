"""Processes starting together on one database: migrations serialised, ingestion claimed (no file embedded twice)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from support.server import INHERIT_NOT, ServerFactory
from threadline.store.db import create_engine
from threadline.store.migrate import current

from .conftest import Cluster, http_client

HEAD = "0012"
FILES = 6


def test_concurrent_migrations(server_factory: ServerFactory, backend: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = server_factory.database_url(backend, data_dir, migrated=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERIT_NOT)}
    cmd = [server_factory.python, "-m", "threadline.cli", "migrate", "--data-dir", str(data_dir)]
    cmd += ["--database-url", url]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    outputs = [p.communicate(timeout=180)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(outputs)
    engine = create_engine(url)
    try:
        assert current(engine) == HEAD
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 0
    finally:
        engine.dispose()


def test_two_processes_never_ingest_the_same_file(cluster: Cluster) -> None:
    first = cluster.api()
    second = cluster.api()
    with http_client(first) as http:
        file_ids = []
        for i in range(FILES):  # large enough that ingesting them takes longer than the other process's poll
            body = f"Document {i}. " + " ".join(f"Sentence {j} about topic {i} and item {j * i}." for j in range(400))
            upload = http.post(
                "/files",
                data={"purpose": "assistants"},
                files={"file": (f"doc{i}.txt", io.BytesIO(body.encode()), "text/plain")},
            )
            file_ids.append(upload.json()["id"])
        store = http.post("/vector_stores", json={"name": "s", "file_ids": file_ids}).json()
        deadline = time.monotonic() + 120
        while (counts := http.get(f"/vector_stores/{store['id']}").json()["file_counts"])["in_progress"]:
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)
        assert counts["completed"] == FILES, counts
    logs = first.log_text() + second.log_text()
    ingested = re.findall(r"ingesting (file-\w+)", logs)
    assert sorted(ingested) == sorted(file_ids), "every file is ingested exactly once across both processes"

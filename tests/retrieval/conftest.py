"""Fixtures for the retrieval tests: a migrated database per backend and the real local embedder.

db_engine  (function)  SQLAlchemy engine on a fresh database migrated to head, for "sqlite" and "postgres"
                       (restrict with THREADLINE_TEST_BACKENDS=sqlite)
embedder   (session)   OnnxEmbedder on the model built by scripts/build-embedding-model.sh
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from support.postgres import PostgresCluster
from support.server import selected_backends
from threadline.store.db import create_engine
from threadline.store.migrate import upgrade


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=selected_backends())
def db_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:  # noqa: ANN001
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'retrieval.db'}")
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        engine = create_engine(cluster.create_database())
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def embedder():  # noqa: ANN201
    from threadline.retrieval.embeddings import OnnxEmbedder

    return OnnxEmbedder()

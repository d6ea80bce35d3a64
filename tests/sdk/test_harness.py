"""The test harness itself: server start failures are reported, PostgreSQL databases come with pgvector."""

from __future__ import annotations

import httpx
import pytest

from support.postgres import PostgresCluster
from support.server import ServerError, ServerFactory, selected_backends


def test_start_failure_shows_the_log(server_factory: ServerFactory) -> None:
    with pytest.raises(ServerError) as info:
        server_factory.start(args=["--port", "notanumber"], timeout=20)  # argparse: last --port wins
    message = str(info.value)
    assert "exited with code 2 during start-up" in message
    assert "usage: threadline" in message


def test_stop_kill_restart_keep_port_and_data(server_factory: ServerFactory) -> None:
    handle = server_factory.start()
    base = handle.base_url
    thread = httpx.post(f"{base}/threads", json={"metadata": {"k": "v"}}).json()["id"]
    handle.kill()
    assert not handle.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{handle.root_url}/health", timeout=2)
    handle.start()
    assert handle.base_url == base
    assert httpx.get(f"{base}/threads/{thread}").json()["metadata"] == {"k": "v"}
    handle.stop()
    assert handle.stop() is None  # idempotent
    assert handle.log_text().count("===== start #") == 2


@pytest.mark.skipif("postgres" not in selected_backends(), reason="PostgreSQL not selected")
def test_fresh_postgres_database_has_pgvector(pg_cluster: PostgresCluster) -> None:
    first, second = pg_cluster.create_database(), pg_cluster.create_database()
    assert first != second
    name = second.rsplit("/", 1)[1]
    with pg_cluster.connect(name) as conn:
        version = conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()
        assert version is not None and version[0].startswith("0.8")
        distance = conn.execute("select '[1,0,0]'::vector <=> '[0,1,0]'::vector").fetchone()[0]
        assert distance == pytest.approx(1.0)
        tables = conn.execute("select count(*) from information_schema.tables where table_schema='public'").fetchone()
        assert tables[0] == 0
    with pg_cluster.connect() as conn:
        owner = conn.execute("select usename from pg_stat_activity where pid = pg_backend_pid()").fetchone()[0]
        assert owner == "postgres"

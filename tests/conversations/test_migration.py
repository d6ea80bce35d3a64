"""Migration 0004 on both backends: existing messages become `message` rows of their thread's log (the Assistants
views keep showing them, the conversation view lists them), and the `responses` table takes response rows."""

from __future__ import annotations

from pathlib import Path

import orjson
import sqlalchemy as sa

from support.server import ServerFactory
from threadline.services import conversations
from threadline.store import Store
from threadline.store import items as log
from threadline.store import responses as response_rows
from threadline.store.db import create_engine
from threadline.store.migrate import current, upgrade


def test_migration_keeps_messages_and_adds_responses(backend: str, server_factory: ServerFactory, tmp_path: Path):
    url = server_factory.database_url(backend, tmp_path, migrated=False)
    engine = create_engine(url)
    try:
        upgrade(engine, "0003")
        thread = {"id": "thread_m", "object": "thread", "created_at": 1, "metadata": {}, "tool_resources": {}}
        rows = [{"id": "thread_m", "created_at": 1, "data": orjson.dumps(thread).decode()}]
        messages = []
        for i in range(5):
            content = [{"type": "text", "text": {"value": f"message {i}", "annotations": []}}]
            role = "assistant" if i % 2 else "user"
            message = {
                "id": f"msg_{i}",
                "object": "thread.message",
                "created_at": 1,
                "thread_id": "thread_m",
                "role": role,
                "status": "completed",
                "content": content,
            }
            messages.append(
                {"id": f"msg_{i}", "created_at": 1, "data": orjson.dumps(message).decode(), "t": "thread_m"}
            )
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO threads (id, created_at, data) VALUES (:id, :created_at, :data)"), rows)
            conn.execute(
                sa.text(
                    "INSERT INTO messages (id, created_at, data, thread_id, token_count) "
                    "VALUES (:id, :created_at, :data, :t, 2)"
                ),
                messages,
            )
        upgrade(engine, "0004")
        assert current(engine) == "0004"
        with engine.connect() as conn:
            types = dict(conn.execute(sa.text("SELECT id, type FROM messages")).all())
            items = dict(conn.execute(sa.text("SELECT id, item FROM messages")).all())
            indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("messages")}
        assert types == {f"msg_{i}": "message" for i in range(5)}
        assert set(items.values()) == {None}
        assert "ix_messages_thread_type" in indexes
    finally:
        engine.dispose()

    store = Store(url)
    try:
        with store.read() as conn:
            page, more = log.page(conn, "thread_m", limit=10, order="asc", after=None)
            views = conversations.item_views(conn, page, set())
        assert not more and [v["id"] for v in views] == [f"msg_{i}" for i in range(5)]
        assert [v["content"][0]["type"] for v in views] == ["input_text", "output_text"] * 2 + ["input_text"]
        response = {"id": "resp_m", "object": "response", "created_at": 2, "status": "queued", "store": True}
        with store.write() as conn:
            response_rows.insert(conn, response, [{"id": "msg_x", "type": "message"}], thread_id="thread_m")
        with store.read() as conn:
            assert response_rows.fetch(conn, "resp_m") == response
            assert response_rows.input_items(conn, "resp_m") == [{"id": "msg_x", "type": "message"}]
            assert log.active_execution(conn, "thread_m") == "resp_m"
            row = conn.execute(sa.text("SELECT status, state, thread_id FROM responses WHERE id = 'resp_m'")).one()
        assert tuple(row) == ("queued", "{}", "thread_m")
    finally:
        store.close()

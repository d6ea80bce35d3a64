"""Stored token counts: every message's text tokens are counted when it is written (messages.token_count), a run's
prompt is built from those counts reading only the newest messages that fit, and migration 0003 counts existing
rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from fakes import Reply
from support.server import ServerFactory
from threadline.store.db import create_engine
from threadline.store.migrate import current, upgrade
from threadline.tokens import count_tokens


@pytest.fixture
def db(server) -> Iterator[sa.Engine]:  # noqa: ANN001 - the module's ServerHandle
    engine = create_engine(server.database_url)
    yield engine
    engine.dispose()


def stored(db: sa.Engine, message_id: str) -> int | None:
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT token_count FROM messages WHERE id = :id"), {"id": message_id}).scalar()


def text_tokens(message) -> int:  # noqa: ANN001 - an SDK Message
    return sum(count_tokens(p.text.value) for p in message.content if p.type == "text")


def test_counts_are_written_for_every_way_a_message_is_added(client, assistant, fake_llm, db):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "The quick brown fox jumps over the lazy dog."}]
    )
    client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Look at this picture,"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": " please: what is in it?"},
        ],
    )
    fake_llm.script(Reply(text="A cat sitting on a mat, looking rather pleased with itself."), Reply(text="Two."))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "Answer in one sentence, thanks."}],
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    second = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "How many legs does a bird have?"}]},
        poll_interval_ms=20,
    )
    assert second.status == "completed"
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    messages += client.beta.threads.messages.list(thread_id=second.thread_id, order="asc").data
    assert [m.role for m in messages] == ["user", "user", "user", "assistant", "user", "assistant"]
    for message in messages:
        expected = text_tokens(message)
        assert expected > 0
        assert stored(db, message.id) == expected, message

    # metadata changes keep the count
    client.beta.threads.messages.update(message_id=messages[0].id, thread_id=thread.id, metadata={"k": "v"})
    assert stored(db, messages[0].id) == text_tokens(messages[0])


def test_prompt_uses_stored_counts_and_reads_only_the_window(client, assistant, fake_llm, db):
    thread = client.beta.threads.create()
    ids = []
    for i in range(60):
        ids.append(client.beta.threads.messages.create(thread_id=thread.id, role="user", content=f"m{i}").id)

    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    sent = [m["content"] for m in fake_llm.requests[-1]["messages"][1:]]
    assert sent == [f"m{i}" for i in range(60)]

    # A stored count larger than the whole context window: the prompt builder believes it (it does not
    # re-tokenise old messages), so that message and everything older fall out of the window.
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE messages SET token_count = 1000000 WHERE id = :id"), {"id": ids[39]})
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="last")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    sent = [m["content"] for m in fake_llm.requests[-1]["messages"][1:]]
    assert sent[:20] == [f"m{i}" for i in range(40, 60)]
    assert sent[-1] == "last"
    assert "m39" not in sent and "m0" not in sent


def test_migration_counts_existing_messages(backend: str, server_factory: ServerFactory, tmp_path: Path):
    url = server_factory.database_url(backend, tmp_path, migrated=False)
    engine = create_engine(url)
    try:
        upgrade(engine, "0002")
        texts = ["hello there", "", "The quick brown fox jumps over the lazy dog. " * 30]
        rows = []
        for i, text in enumerate(texts * 400):  # more than one backfill batch
            content = [{"type": "text", "text": {"value": text, "annotations": []}}]
            if i % 3 == 1:
                content.append({"type": "image_url", "image_url": {"url": "https://example.com/x.png"}})
            message = {"id": f"msg_{i}", "object": "thread.message", "role": "user", "content": content}
            rows.append({"id": f"msg_{i}", "created_at": 1, "data": orjson.dumps(message).decode(), "t": "thread_1"})
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO messages (id, created_at, data, thread_id) VALUES (:id, :created_at, :data, :t)"),
                rows,
            )
        upgrade(engine, "0003")
        assert current(engine) == "0003"
        with engine.connect() as conn:
            counts = dict(conn.execute(sa.text("SELECT id, token_count FROM messages")).all())
        assert len(counts) == len(rows)
        for i, text in enumerate(texts * 400):
            assert counts[f"msg_{i}"] == count_tokens(text)
        assert counts["msg_2"] > 300
    finally:
        engine.dispose()

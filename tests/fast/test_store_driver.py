"""The store's driver-SQL path (store/driver.py) behaves as the SQLAlchemy statements it replaced: the same pages
for every cursor and order, and driver errors raised as SQLAlchemy's exception classes (which the API's error
mapping and the disk-full handling catch)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from threadline.store import Store, schema
from threadline.store import messages as messages_repo
from threadline.store.sql import ListParams


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 't.db'}")
    s.migrate()
    with s.write() as conn:
        for i in range(7):
            message = {
                "id": f"msg_{i}",
                "object": "thread.message",
                "created_at": i,
                "thread_id": "thread_a",
                "role": "user",
                "content": [{"type": "text", "text": {"value": f"m{i}", "annotations": []}}],
            }
            messages_repo.insert(conn, message)
        other = {
            "id": "msg_x",
            "object": "thread.message",
            "created_at": 9,
            "thread_id": "thread_b",
            "role": "user",
            "content": [],
        }
        messages_repo.insert(conn, other)
    yield s
    s.close()


def test_text_page_matches_the_sqlalchemy_page(store: Store) -> None:
    t = schema.messages
    where = (t.c.thread_id == "thread_a") & (t.c.type == "message")
    cursors = [None, "msg_0", "msg_3", "msg_6", "msg_x", "msg_missing"]
    with store.read() as conn:
        for limit, order, after, before in itertools.product((1, 2, 20), ("asc", "desc"), cursors, cursors):
            params = ListParams(limit, order, after, before)
            expected = store.page(t, where=where, conn=conn, **params.__dict__)
            got = messages_repo.page(store, conn, "thread_a", params, run_id=None)
            assert got.to_json() == expected.to_json(), params


def test_driver_errors_are_sqlalchemy_errors(store: Store) -> None:
    duplicate = {"id": "msg_0", "object": "thread.message", "created_at": 1, "thread_id": "thread_a", "content": []}
    with pytest.raises(sa.exc.IntegrityError), store.write() as conn:
        messages_repo.insert(conn, duplicate)
    with store.read() as conn:  # the failed transaction was rolled back and its connection is usable again
        assert Store.fetch(conn, schema.messages, "msg_0")["content"][0]["text"]["value"] == "m0"


def test_unknown_column_still_raises_sqlalchemys_error(store: Store) -> None:
    with pytest.raises(sa.exc.CompileError), store.write() as conn:
        Store.insert(conn, schema.threads, {"id": "thread_z", "created_at": 1}, no_such_column=1)

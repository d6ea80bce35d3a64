"""A stored key's `last_used_at` is written at most once per TOUCH_EVERY_S per key and process (the request path
stays a read), and the write itself skips a row another process touched within that time."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from threadline.auth import TOUCH_EVERY_S, KeyChecker, hash_key
from threadline.store import Store, schema
from threadline.store.projects import create_project, create_service_account, touch_keys


def test_a_key_use_is_written_once_a_minute(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    keys = KeyChecker(store, ["sk-env-key-000000"])
    try:
        with store.write() as conn:
            pid = create_project(conn, "P")["id"]
            value = create_service_account(conn, pid, "svc")["api_key"]["value"]
        assert keys.used(value) is True
        assert [keys.used(value) for _ in range(100)] == [False] * 100
        assert keys.used("sk-env-key-000000") is False  # THREADLINE_API_KEYS keys have no row to write
        keys.touch(value)
        t = schema.project_api_keys
        with store.read() as conn:
            first = conn.execute(sa.select(t.c.last_used_at)).scalar()
        assert first is not None
        with store.write() as conn:  # another process, a few seconds later: nothing to write yet
            touch_keys(conn, [hash_key(value)], first + 5, TOUCH_EVERY_S)
            assert conn.execute(sa.select(t.c.last_used_at)).scalar() == first
            touch_keys(conn, [hash_key(value)], first + TOUCH_EVERY_S, TOUCH_EVERY_S)
            assert conn.execute(sa.select(t.c.last_used_at)).scalar() == first + TOUCH_EVERY_S
    finally:
        keys.close()
        store.close()

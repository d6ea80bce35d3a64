"""The store: SQL access shared by the SQLite and PostgreSQL backends (SQLAlchemy Core).

Writes happen inside `store.write()`; everything a response reports is committed when that block exits.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from ..tokens import item_text_tokens, message_text_tokens
from . import schema
from .db import create_engine

ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
ACTIVE_RESPONSE_STATUSES = ("queued", "in_progress")
MESSAGE = "message"  # messages.type of the rows the Assistants message views show


def now() -> int:
    return int(time.time())


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def _derived(table: sa.Table, obj: dict[str, Any]) -> dict[str, Any]:
    """Columns computed from a document whenever it is written, so they can never disagree with `data`."""
    if table is schema.messages:
        # a message row holds an Assistants message object; any other row holds a conversation item
        tokens = message_text_tokens(obj) if obj.get("object") == "thread.message" else item_text_tokens(obj)
        return {"token_count": tokens}
    return {}


@dataclass
class ListParams:
    """A list request's cursor pagination: `limit` items in `order` ("asc" or "desc" by creation), after/before
    the object with that id."""

    limit: int = 20
    order: str = "desc"
    after: str | None = None
    before: str | None = None


@dataclass
class Page:
    items: list[str]  # JSON texts of the objects, in page order
    ids: list[str]
    has_more: bool

    def to_json(self) -> bytes:
        first = orjson.dumps(self.ids[0]).decode() if self.ids else "null"
        last = orjson.dumps(self.ids[-1]).decode() if self.ids else "null"
        has_more = "true" if self.has_more else "false"
        return (
            f'{{"object":"list","data":[{",".join(self.items)}],"first_id":{first},'
            f'"last_id":{last},"has_more":{has_more}}}'
        ).encode()


class Store:
    """One interface over both backends; the dialect-specific parts are engine setup and row locking."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        # SQLite allows one writer at a time; queueing writers here is far cheaper than SQLite's busy handler,
        # which sleeps up to 100 ms between retries. PostgreSQL writers need no such gate.
        self._write_gate = threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()

    @property
    def backend(self) -> str:
        return "sqlite" if self.dialect == "sqlite" else "postgres"

    def migrate(self) -> None:
        from .migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        with self._write_gate, self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["write"] = False

    # -- documents -------------------------------------------------------------------------------------------

    @staticmethod
    def insert(conn: sa.Connection, table: sa.Table, obj: dict[str, Any], **cols: Any) -> None:
        cols.update(_derived(table, obj))
        conn.execute(table.insert().values(id=obj["id"], created_at=obj["created_at"], data=dumps(obj), **cols))

    @staticmethod
    def update(conn: sa.Connection, table: sa.Table, obj: dict[str, Any], **cols: Any) -> None:
        cols.update(_derived(table, obj))
        conn.execute(table.update().where(table.c.id == obj["id"]).values(data=dumps(obj), **cols))

    @staticmethod
    def delete(conn: sa.Connection, table: sa.Table, object_id: str) -> bool:
        return conn.execute(table.delete().where(table.c.id == object_id)).rowcount > 0

    @staticmethod
    def fetch(conn: sa.Connection, table: sa.Table, object_id: str, *, lock: bool = False) -> dict | None:
        query = sa.select(table.c.data).where(table.c.id == object_id)
        if lock:
            query = query.with_for_update()
        raw = conn.execute(query).scalar()
        return loads(raw) if raw is not None else None

    def get(self, table: sa.Table, object_id: str) -> dict | None:
        with self.read() as conn:
            return self.fetch(conn, table, object_id)

    def get_raw(self, table: sa.Table, object_id: str) -> str | None:
        with self.read() as conn:
            return conn.execute(sa.select(table.c.data).where(table.c.id == object_id)).scalar()

    def exists(self, conn: sa.Connection, table: sa.Table, object_id: str) -> bool:
        return conn.execute(sa.select(table.c.seq).where(table.c.id == object_id)).first() is not None

    def page(
        self,
        table: sa.Table,
        *,
        where: sa.ColumnElement[bool] | None = None,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
        id_column: str = "id",
        conn: sa.Connection | None = None,
    ) -> Page:
        idc = table.c[id_column]
        query = sa.select(idc, table.c.data)
        if where is not None:
            query = query.where(where)
        scope = where if where is not None else sa.true()

        def cursor_seq(cursor: str) -> sa.ScalarSelect:
            return sa.select(table.c.seq).where(idc == cursor, scope).scalar_subquery()

        asc = order == "asc"
        if after:
            query = query.where(table.c.seq > cursor_seq(after) if asc else table.c.seq < cursor_seq(after))
        reverse = False
        if before:
            query = query.where(table.c.seq < cursor_seq(before) if asc else table.c.seq > cursor_seq(before))
            reverse = not after  # take the page nearest the cursor, then restore the requested order
        ascending = asc != reverse
        query = query.order_by(table.c.seq.asc() if ascending else table.c.seq.desc()).limit(limit + 1)

        def run(c: sa.Connection) -> list[sa.Row]:
            return list(c.execute(query))

        if conn is not None:
            rows = run(conn)
        else:
            with self.read() as c:
                rows = run(c)
        has_more = len(rows) > limit
        rows = rows[:limit]
        if reverse:
            rows.reverse()
        return Page(items=[r[1] for r in rows], ids=[r[0] for r in rows], has_more=has_more)

    def referenced_blob_keys(self, keys: list[str]) -> set[str]:
        """The subset of `keys` that a File, an upload part or a container file still references."""
        wanted = set(keys)
        found: set[str] = set()
        with self.read() as conn:
            for table in (schema.files, schema.upload_parts, schema.container_files):
                # Blobs are keyed by their object's id: look up by the primary key first; only the rest (orphan
                # candidates, normally none) costs a scan of blob_key.
                rows = conn.execute(sa.select(table.c.blob_key).where(table.c.id.in_(keys))).scalars()
                found.update(k for k in rows if k in wanted)
                rest = [k for k in keys if k not in found]
                if rest:
                    found.update(conn.execute(sa.select(table.c.blob_key).where(table.c.blob_key.in_(rest))).scalars())
        return found

    # -- threads and runs ------------------------------------------------------------------------------------

    @staticmethod
    def active_run_id(conn: sa.Connection, thread_id: str) -> str | None:
        """The id of the run (or response: the thread is its conversation) that holds the thread's lock, or None."""
        t = schema.runs
        run_id = conn.execute(
            sa.select(t.c.id).where(t.c.thread_id == thread_id, t.c.status.in_(ACTIVE_RUN_STATUSES)).limit(1)
        ).scalar()
        if run_id is not None:
            return run_id
        r = schema.responses
        return conn.execute(
            sa.select(r.c.id).where(r.c.thread_id == thread_id, r.c.status.in_(ACTIVE_RESPONSE_STATUSES)).limit(1)
        ).scalar()

    def lock_thread(self, conn: sa.Connection, thread_id: str) -> dict | None:
        """Load a thread, holding its row lock (PostgreSQL) for the rest of the write transaction."""
        return self.fetch(conn, schema.threads, thread_id, lock=True)

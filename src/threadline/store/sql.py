"""The store: SQL access shared by the SQLite and PostgreSQL backends (SQLAlchemy Core).

Writes happen inside `store.write()`; everything a response reports is committed when that block exits.

Projects: the rows of an owned table (schema `info["owned"]`: every object table) belong to one project. Inserts
record `tenancy.project_id()`; every read, update and delete here (and the repositories' own queries, through
`owned` / `owned_sql`) sees only the rows of `tenancy.current_project` when one is set, so another project's id
is exactly as absent as an id that never existed. With no current project (system scope: start-up, the sweeper,
the CLI) they see every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..tenancy import current_project
from ..tokens import item_text_tokens, message_text_tokens
from . import driver, schema
from .db import create_engine
from .write_gate import WriteGate

T = TypeVar("T")

ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
ACTIVE_RESPONSE_STATUSES = ("queued", "in_progress")
MESSAGE = "message"  # messages.type of the rows the Assistants message views show


def now() -> int:
    return int(time.time())


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def scope(table: sa.Table) -> str | None:
    """The project whose rows of `table` the current work may see: the current project for an owned table; None
    (every row) in system scope or for a table no project owns."""
    return current_project.get() if table.info.get("owned") else None


def owned(table: sa.Table, *conds: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """`conds` (and-ed) restricted to the current project's rows of `table` (see `scope`)."""
    project = scope(table)
    if project is not None:
        conds = (*conds, table.c.project_id == project)
    return sa.and_(sa.true(), *conds)


def owned_sql(table: sa.Table, where: str, args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """A driver SQL condition (`?` placeholders for `args`) restricted to the current project's rows of `table`."""
    project = scope(table)
    if project is None:
        return where, args
    return f"{where} AND project_id = ?", (*args, project)


def _derived(table: sa.Table, obj: dict[str, Any]) -> dict[str, Any]:
    """Columns computed from a document whenever it is written, so they can never disagree with `data`."""
    if table is schema.messages:
        # a message row holds an Assistants message object; any other row holds a conversation item
        tokens = message_text_tokens(obj) if obj.get("object") == "thread.message" else item_text_tokens(obj)
        return {"token_count": tokens}
    return {}


_ACTIVE_RUN_SQL = (
    f"SELECT id FROM runs WHERE thread_id = ? AND status IN ({','.join('?' * len(ACTIVE_RUN_STATUSES))}) LIMIT 1"
)
_ACTIVE_RESPONSE_SQL = (
    f"SELECT id FROM responses WHERE thread_id = ? AND status IN ({','.join('?' * len(ACTIVE_RESPONSE_STATUSES))}) "
    "LIMIT 1"
)


@functools.lru_cache(maxsize=256)
def _insert_sql(table: sa.Table, names: tuple[str, ...]) -> str | None:
    """INSERT of `names` into `table` as driver SQL, or None when a name is not one of its columns."""
    if not all(name in table.c for name in names):
        return None
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


@functools.lru_cache(maxsize=256)
def _update_sql(table: sa.Table, names: tuple[str, ...], scoped: bool) -> str | None:
    """UPDATE of `names` of the row with a given id (`scoped`: and project), as driver SQL, or None when a name is
    not a column."""
    if not all(name in table.c for name in names):
        return None
    sql = f"UPDATE {table.name} SET {', '.join(f'{name} = ?' for name in names)} WHERE id = ?"
    return sql + " AND project_id = ?" if scoped else sql


@functools.lru_cache(maxsize=256)
def _by_id_sql(table: sa.Table, columns: str, scoped: bool, lock: str) -> str:
    """SELECT `columns` of the row with a given id (`scoped`: and project), as driver SQL; `lock`: FOR UPDATE or ''."""
    sql = f"SELECT {columns} FROM {table.name} WHERE id = ?"
    return (sql + " AND project_id = ?" if scoped else sql) + lock


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


class LeaveLoop(BaseException):
    """Raised by `leave_loop()` inside a write that `Store.run_write` runs on the event loop, when the write is
    about to block on something other than the database (a blob read): the transaction rolls back and the write
    runs again in a thread. A BaseException, so that handlers of `Exception` inside the write let it through."""


class _Busy(Exception):
    """Another process holds SQLite's write lock: the write on the event loop gives way to a thread."""


# The write `Store.run_write` is running on this thread (the event loop's), if any.
_on_loop = threading.local()

# Writes on the event loop between two checkpoints of the WAL, run in a thread (their connection never does it
# itself: a checkpoint writes and syncs up to a few MB).
CHECKPOINT_EVERY = 200


def leave_loop() -> None:
    """Call before blocking I/O other than the database inside a write transaction: raises LeaveLoop when the write
    runs on the event loop (Store.run_write then runs it in a thread), else does nothing."""
    if getattr(_on_loop, "store", None) is not None:
        raise LeaveLoop


def _is_busy(exc: sa.exc.OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code == 5 or (code is None and "database is locked" in str(exc.orig))  # SQLITE_BUSY


class Store:
    """One interface over both backends; the dialect-specific parts are engine setup and row locking."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        # SQLite allows one writer at a time: writers queue on the gate (store/write_gate.py), never in SQLite's
        # busy handler. PostgreSQL writers need no such gate.
        database = make_url(self.engine.url).database if self.dialect == "sqlite" else None
        in_file = database not in (None, "", ":memory:")
        self._gate = WriteGate(Path(database).resolve() if in_file else None) if self.dialect == "sqlite" else None
        self._write_gate: Any = self._gate or contextlib.nullcontext()
        # Short writes run on the event loop when the gate is free (run_write); their connections never wait for
        # a write lock taken behind the gate's back (busy timeout 0: they give way to a thread) and never
        # checkpoint.
        self._loop_engine: sa.Engine | None = None
        self.loop_writes = 0  # run_write calls that ran on the event loop, and those that ran in a thread
        self.offloaded_writes = 0
        if in_file:
            self._loop_engine = create_engine(url, busy_timeout_ms=0, pool_size=1, autocheckpoint=False)

    @property
    def backend(self) -> str:
        return "sqlite" if self.dialect == "sqlite" else "postgres"

    def migrate(self) -> None:
        from .migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        if self._loop_engine is not None:
            self._loop_engine.dispose()
        if self._gate is not None:
            self._gate.close()

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        if getattr(_on_loop, "store", None) is self:
            # inside run_write on the event loop, which holds the gate: its first write uses the loop's connection
            if not _on_loop.used:
                _on_loop.used = True
                with self._write_on_loop() as conn:
                    yield conn
                return
            gate: Any = contextlib.nullcontext()
        else:
            gate = self._write_gate
        with gate, self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["write"] = False

    @contextmanager
    def _write_on_loop(self) -> Iterator[sa.Connection]:
        assert self._loop_engine is not None
        try:
            conn = self._loop_engine.connect()
            conn.info["write"] = True
            try:
                tx = conn.begin()
            except BaseException:
                conn.info["write"] = False
                conn.close()
                raise
        except sa.exc.OperationalError as exc:
            if _is_busy(exc):
                raise _Busy from None
            raise
        try:
            with tx:
                yield conn
        finally:
            conn.info["write"] = False
            conn.close()

    async def run_write(
        self,
        fn: Callable[..., T],
        *args: Any,
        offload: Callable[..., Awaitable[T]] | None = None,
    ) -> T:
        """`fn(*args)`: a short blocking function whose first database use is one `store.write()` transaction.

        With an SQLite file, when no other thread or process is writing (the write gate is free), it runs right
        here on the event loop (a short write takes 50-300 µs; the hop to a thread and back costs about as much
        CPU again, and its wake-ups hold the GIL). Otherwise it runs in a thread, which waits for the gate. If
        SQLite's write lock is taken all the same (by a writer outside the gate), or `fn` calls `leave_loop()` (it
        is about to block on other I/O), the attempt on the loop rolls back before anything was committed and
        `fn(*args)` runs again in a thread: `offload(fn, *args)` (default `asyncio.to_thread`), as it always does
        with PostgreSQL. So `fn` must be safe to run twice when its first attempt wrote nothing. Returns what `fn`
        returns; raises what it raises."""
        if self._loop_engine is not None and self._gate is not None and self._gate.try_acquire():
            _on_loop.store, _on_loop.used = self, False
            try:
                result = fn(*args)
                self.loop_writes += 1
                return result
            except (_Busy, LeaveLoop):
                pass
            finally:
                _on_loop.store = None
                self._gate.release()
                if _on_loop.used and (self.loop_writes + 1) % CHECKPOINT_EVERY == 0:
                    asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        self.offloaded_writes += 1
        return await (offload or asyncio.to_thread)(fn, *args)

    def _checkpoint(self) -> None:
        with contextlib.suppress(sa.exc.DBAPIError), self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    # -- documents -------------------------------------------------------------------------------------------

    @staticmethod
    def insert(conn: sa.Connection, table: sa.Table, obj: dict[str, Any], **cols: Any) -> None:
        """Insert a document row (in the current project, for an owned table); `cols` are its other columns."""
        cols.update(_derived(table, obj))
        if table.info.get("owned") and "project_id" not in cols:
            project = current_project.get()
            if project is not None:  # else the column's default: the default project (system scope, as project_id())
                cols["project_id"] = project
        values = {"id": obj["id"], "created_at": obj["created_at"], "data": dumps(obj), **cols}
        sql = _insert_sql(table, tuple(values))
        if sql is not None and driver.primitive(values.values()):
            driver.run(conn, sql, tuple(values.values()))
        else:  # a column the table lacks raises SQLAlchemy's own error
            conn.execute(table.insert().values(**values))

    @staticmethod
    def update(conn: sa.Connection, table: sa.Table, obj: dict[str, Any], **cols: Any) -> None:
        cols.update(_derived(table, obj))
        values = {"data": dumps(obj), **cols}
        project = scope(table)
        sql = _update_sql(table, tuple(values), project is not None)
        if sql is not None and driver.primitive(values.values()) and type(obj["id"]) is str:
            key = (obj["id"],) if project is None else (obj["id"], project)
            driver.run(conn, sql, (*values.values(), *key))
        else:
            conn.execute(table.update().where(owned(table, table.c.id == obj["id"])).values(**values))

    @staticmethod
    def delete(conn: sa.Connection, table: sa.Table, object_id: str) -> bool:
        return conn.execute(table.delete().where(owned(table, table.c.id == object_id))).rowcount > 0

    @staticmethod
    def fetch(conn: sa.Connection, table: sa.Table, object_id: str, *, lock: bool = False) -> dict | None:
        raw = Store.fetch_raw(conn, table, object_id, lock=lock)
        return loads(raw) if raw is not None else None

    @staticmethod
    def fetch_raw(conn: sa.Connection, table: sa.Table, object_id: str, *, lock: bool = False) -> str | None:
        """The stored JSON text of an object (of the current project), or None."""
        if type(object_id) is not str:
            query = sa.select(table.c.data).where(owned(table, table.c.id == object_id))
            return conn.execute(query.with_for_update() if lock else query).scalar()
        project = scope(table)
        sql = _by_id_sql(table, "data", project is not None, driver.for_update(conn) if lock else "")
        return driver.scalar(conn, sql, (object_id,) if project is None else (object_id, project))

    def get(self, table: sa.Table, object_id: str) -> dict | None:
        with self.read() as conn:
            return self.fetch(conn, table, object_id)

    def get_raw(self, table: sa.Table, object_id: str) -> str | None:
        with self.read() as conn:
            return self.fetch_raw(conn, table, object_id)

    @staticmethod
    def exists(conn: sa.Connection, table: sa.Table, object_id: str) -> bool:
        """Whether the object exists (in the current project)."""
        if type(object_id) is not str:
            return conn.execute(sa.select(table.c.seq).where(owned(table, table.c.id == object_id))).first() is not None
        project = scope(table)
        sql = _by_id_sql(table, "seq", project is not None, "")
        return driver.one(conn, sql, (object_id,) if project is None else (object_id, project)) is not None

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
        """A cursor page of `table`'s rows matching `where` (of the current project), by `seq`."""
        idc = table.c[id_column]
        where = owned(table, *([where] if where is not None else []))
        query = sa.select(idc, table.c.data).where(where)

        def cursor_seq(cursor: str) -> sa.ScalarSelect:
            return sa.select(table.c.seq).where(idc == cursor, where).scalar_subquery()

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

    @staticmethod
    def text_page(
        conn: sa.Connection,
        table: sa.Table,
        where: str,
        args: tuple[Any, ...],
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page:
        """`page` for the hottest lists, as driver SQL: `where` is a condition with `?` placeholders for `args`
        (e.g. "thread_id = ? AND type = ?"); the cursors are looked up under the same condition, both restricted to
        the current project's rows."""
        where, args = owned_sql(table, where, args)
        sql = f"SELECT id, data FROM {table.name} WHERE {where}"
        params: list[Any] = list(args)
        cursor_seq = f"(SELECT seq FROM {table.name} WHERE id = ? AND {where})"
        asc = order == "asc"
        if after:
            sql += f" AND seq {'>' if asc else '<'} {cursor_seq}"
            params += [after, *args]
        reverse = False
        if before:
            sql += f" AND seq {'<' if asc else '>'} {cursor_seq}"
            params += [before, *args]
            reverse = not after  # take the page nearest the cursor, then restore the requested order
        ascending = asc != reverse
        sql += f" ORDER BY seq {'ASC' if ascending else 'DESC'} LIMIT ?"
        params.append(limit + 1)
        rows = driver.all_rows(conn, sql, params)
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
        run_id = driver.scalar(conn, _ACTIVE_RUN_SQL, (thread_id, *ACTIVE_RUN_STATUSES))
        if run_id is not None:
            return run_id
        return driver.scalar(conn, _ACTIVE_RESPONSE_SQL, (thread_id, *ACTIVE_RESPONSE_STATUSES))

    def lock_thread(self, conn: sa.Connection, thread_id: str) -> dict | None:
        """Load a thread, holding its row lock (PostgreSQL) for the rest of the write transaction."""
        return self.fetch(conn, schema.threads, thread_id, lock=True)

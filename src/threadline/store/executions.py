"""Executions: the SQL of anything the engine drives to an end under a lease (`runs` and `responses`).

An execution table is a document table (`id`, `data`, `seq`) with the execution columns `status`, `expires_at`,
`state` (the engine's JSON working state), `lease_owner` and `lease_until` (a process's claim on driving it,
renewed by its heartbeat). Every function here takes that table as a parameter, so a second wire API's executions
share the claim, the guarded writes, the lease and the sweeps' queries.

Statuses are the Assistants run's: `queued`, `in_progress`, `requires_action`, `cancelling`, and the terminal ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import sqlalchemy as sa

from . import driver
from .sql import Store, dumps, loads

T = TypeVar("T")

# An execution in one of these is driven by a live executor (or was, until its lease ran out).
EXECUTING = ("in_progress", "cancelling")
# Not yet finished; an expiry sweep may end these once expires_at passed.
UNFINISHED = ("queued", "requires_action", "in_progress", "cancelling")


class LeaseLost(Exception):
    """An owned write found the execution no longer `in_progress` under the writer's lease."""


def save(conn: sa.Connection, table: sa.Table, obj: dict[str, Any], **cols: Any) -> None:
    """Write the execution's wire object and its queried columns (status, expires_at), plus `cols` (e.g.
    lease_owner=None, state=...), in one UPDATE."""
    Store.update(conn, table, obj, status=obj["status"], expires_at=obj.get("expires_at"), **cols)


def transition(
    store: Store,
    table: sa.Table,
    object_id: str,
    expected: tuple[str, ...],
    mutate: Callable[[dict[str, Any], sa.Connection], dict[str, Any] | None],
) -> dict[str, Any] | None:
    """The one guarded transition: in a write transaction, lock the row, check its status is one of `expected`,
    apply `mutate(obj, conn)` (which may return extra columns to save with it) and save. Returns the saved object,
    or None when the execution is gone or in another status (someone else moved it first). Blocking."""
    with store.write() as conn:
        obj = Store.fetch(conn, table, object_id, lock=True)
        if obj is None or obj["status"] not in expected:
            return None
        cols = mutate(obj, conn) or {}
        save(conn, table, obj, **cols)
        return obj


def owned_write(store: Store, table: sa.Table, object_id: str, owner: str, fn: Callable[[sa.Connection], T]) -> T:
    """Run `fn(conn)` in a write transaction holding the execution's row lock, only while it is `in_progress` under
    `owner`'s lease. Raises LeaseLost otherwise (nothing is written). Blocking."""
    with store.write() as conn:
        sql = f"SELECT status, lease_owner FROM {table.name} WHERE id = ?" + driver.for_update(conn)
        row = driver.one(conn, sql, (object_id,))
        if row is None or row[0] != "in_progress" or row[1] != owner:
            raise LeaseLost
        return fn(conn)


def take_lease(
    conn: sa.Connection, table: sa.Table, object_id: str, owner: str, until: float
) -> tuple[dict[str, Any], str]:
    """Claim the execution for `owner` until `until` (clock seconds) inside the caller's transaction (the caller
    moves it to in_progress in the same one); returns its stored working state and the project it belongs to."""
    sql = f"UPDATE {table.name} SET lease_owner = ?, lease_until = ? WHERE id = ?"
    driver.run(conn, sql, (owner, until, object_id))
    row = driver.one(conn, f"SELECT state, project_id FROM {table.name} WHERE id = ?", (object_id,))
    assert row is not None, object_id  # the caller has just locked or inserted it
    return loads(row[0] or "{}"), row[1]


def renew_lease(store: Store, table: sa.Table, object_id: str, owner: str, until: float) -> None:
    """The heartbeat: extend `owner`'s lease to `until` (a no-op once another owner or nobody holds it). Blocking."""
    with store.write() as conn:
        sql = f"UPDATE {table.name} SET lease_until = ? WHERE id = ? AND lease_owner = ?"
        driver.run(conn, sql, (until, object_id, owner))


def state_columns(state: dict[str, Any], *, release: bool = False) -> dict[str, Any]:
    """Columns that save the working state (and, with `release`, give up the lease) with an execution's save."""
    cols: dict[str, Any] = {"state": dumps(state)}
    if release:
        cols["lease_owner"] = None
    return cols


def save_state(conn: sa.Connection, table: sa.Table, object_id: str, state: dict[str, Any]) -> None:
    driver.run(conn, f"UPDATE {table.name} SET state = ? WHERE id = ?", (dumps(state), object_id))


def unheld(table: sa.Table, ts: float) -> sa.ColumnElement[bool]:
    """No process holds the execution (or its hold / lease ran out before `ts`)."""
    return sa.or_(table.c.lease_owner.is_(None), table.c.lease_until.is_(None), table.c.lease_until < ts)


def queued_ids(conn: sa.Connection, table: sa.Table, ts: float | None = None, limit: int | None = None) -> list[str]:
    """Executions waiting in `queued`, oldest first: all of them, or (`ts` given) those nobody holds at `ts`;
    at most `limit`."""
    query = sa.select(table.c.id).where(table.c.status == "queued")
    if ts is not None:
        query = query.where(unheld(table, ts))
    query = query.order_by(table.c.seq)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def lock_queued(conn: sa.Connection, table: sa.Table, object_id: str) -> dict[str, Any] | None:
    """Lock `object_id` and return it if it is `queued` (None otherwise)."""
    query = sa.select(table.c.data).where(table.c.id == object_id, table.c.status == "queued").with_for_update()
    raw = conn.execute(query).scalar()
    return None if raw is None else loads(raw)


# Nobody holds the row at the bound time (as `unheld`), or the bound owner does.
_UNHELD = "(lease_owner IS NULL OR lease_until IS NULL OR lease_until < ?)"


def lock_oldest_claimable(conn: sa.Connection, table: sa.Table, ts: float) -> dict[str, Any] | None:
    """PostgreSQL: lock and return the oldest `queued` execution nobody holds at `ts`, skipping rows other
    transactions have locked (never waiting for them); None if there is none."""
    sql = (
        f"SELECT data FROM {table.name} WHERE status = 'queued' AND {_UNHELD} "
        "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    raw = driver.scalar(conn, sql, (ts,))
    return None if raw is None else loads(raw)


def lock_held(conn: sa.Connection, table: sa.Table, object_id: str, owner: str, ts: float) -> dict[str, Any] | None:
    """PostgreSQL: lock and return `object_id` if it is `queued` and held by `owner` or by nobody at `ts`; None if
    not, or if another transaction has it locked (claiming it right now)."""
    sql = (
        f"SELECT data FROM {table.name} WHERE id = ? AND status = 'queued' AND (lease_owner = ? OR {_UNHELD}) "
        "FOR UPDATE SKIP LOCKED"
    )
    raw = driver.scalar(conn, sql, (object_id, owner, ts))
    return None if raw is None else loads(raw)


def claimable_by(
    conn: sa.Connection, table: sa.Table, ts: float, owner: str, object_id: str | None = None
) -> dict[str, Any] | None:
    """SQLite (the write transaction already serialises writers): the oldest `queued` execution (or `object_id`)
    that nobody holds at `ts` or that `owner` holds; None if there is none."""
    query = sa.select(table.c.data).where(
        table.c.status == "queued", sa.or_(unheld(table, ts), table.c.lease_owner == owner)
    )
    if object_id is not None:
        query = query.where(table.c.id == object_id)
    raw = conn.execute(query.order_by(table.c.seq).limit(1)).scalar()
    return None if raw is None else loads(raw)


def hold(conn: sa.Connection, table: sa.Table, object_id: str, owner: str, until: float) -> None:
    """Reserve a queued execution for `owner` until `until` (clock seconds), in the caller's transaction."""
    driver.run(
        conn, f"UPDATE {table.name} SET lease_owner = ?, lease_until = ? WHERE id = ?", (owner, until, object_id)
    )


def lease_gone(table: sa.Table, ts: float, dead_owners: Iterable[str] = ()) -> sa.ColumnElement[bool]:
    """The execution's lease ran out before `ts`, or its owner is one of `dead_owners` (processes known gone)."""
    dead = list(dead_owners)
    cond = sa.or_(table.c.lease_until.is_(None), table.c.lease_until < ts)
    return sa.or_(cond, table.c.lease_owner.in_(dead)) if dead else cond


def orphaned(table: sa.Table, ts: float, every: bool, dead_owners: Iterable[str] = ()) -> sa.ColumnElement[bool]:
    """Left `in_progress` / `cancelling` by an executor that stopped: all of them (`every`, one process owns the
    store), or those whose lease ran out before `ts` or whose owner is dead."""
    cond = table.c.status.in_(EXECUTING)
    return cond if every else cond & lease_gone(table, ts, dead_owners)


def orphaned_ids(
    conn: sa.Connection, table: sa.Table, ts: float, every: bool, dead_owners: Iterable[str] = ()
) -> list[str]:
    """The executions `orphaned(...)` selects."""
    return list(conn.execute(sa.select(table.c.id).where(orphaned(table, ts, every, dead_owners))).scalars())


def expirable(table: sa.Table, ts: float, dead_owners: Iterable[str] = ()) -> sa.ColumnElement[bool]:
    """Past expires_at at `ts` and driven by no live lease holder (it expires its own)."""
    return (table.c.expires_at <= ts) & sa.or_(
        table.c.status.in_(("queued", "requires_action")),
        table.c.status.in_(EXECUTING) & lease_gone(table, ts, dead_owners),
    )


def expirable_ids(conn: sa.Connection, table: sa.Table, ts: float, dead_owners: Iterable[str] = ()) -> list[str]:
    """The executions `expirable(...)` selects."""
    return list(conn.execute(sa.select(table.c.id).where(expirable(table, ts, dead_owners))).scalars())


def lock_where(conn: sa.Connection, table: sa.Table, object_id: str, cond: sa.ColumnElement[bool]) -> dict | None:
    """Lock `object_id` and return it if it still matches `cond` (a sweep re-checking under the row lock that
    nobody took the execution meanwhile); None otherwise."""
    raw = conn.execute(sa.select(table.c.data).where(table.c.id == object_id, cond).with_for_update()).scalar()
    return None if raw is None else loads(raw)


def live_lease_owners(conn: sa.Connection, table: sa.Table, ts: float) -> set[str]:
    """Owners of holds and leases not run out at `ts` on unfinished executions."""
    query = (
        sa.select(table.c.lease_owner)
        .distinct()
        .where(
            table.c.status.in_(("queued", *EXECUTING)),
            table.c.lease_owner.is_not(None),
            table.c.lease_until >= ts,
        )
    )
    return set(conn.execute(query).scalars())


def release_holds(conn: sa.Connection, table: sa.Table, owners: list[str]) -> int:
    """Queued executions held by `owners` (dead processes) become free for the others; how many."""
    query = (
        table.update()
        .where(table.c.status == "queued", table.c.lease_owner.in_(owners))
        .values(lease_owner=None, lease_until=None)
    )
    return conn.execute(query).rowcount


def with_status(conn: sa.Connection, table: sa.Table, ids: list[str], status: str) -> list[str]:
    """Which of `ids` are in `status` now (the cancel signal's poll)."""
    query = sa.select(table.c.id).where(table.c.id.in_(ids), table.c.status == status)
    return list(conn.execute(query).scalars())

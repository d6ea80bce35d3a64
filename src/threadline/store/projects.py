"""Projects, their service accounts and their API keys (`/v1/organization/projects/...`, `threadline keys`), in
OpenAI's wire shapes. Keys are stored as SHA-256 hashes; the key itself is returned once, when it is created.

Every function takes the caller's connection, so a change and its audit record (store/audit.py) share one
transaction. A change to which keys are valid is announced (`announce_key_change`) in that transaction too, so every
server process following the announcements refuses a revoked key at once.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import sqlalchemy as sa

from ..ids import new_id
from . import schema
from .sql import now

# The NOTIFY channel of key changes (auth.KeyListener follows it).
KEY_CHANNEL = "threadline_api_keys"
# The one user of a self-hosted server: whoever holds the admin keys and the CLI.
OPERATOR = {"id": "user_operator", "name": "threadline operator", "email": "operator@localhost"}


_local_key_changes = 0


def local_key_changes() -> int:
    """How many key changes this process has made: its own key cache is dropped when this moves, without waiting
    for its NOTIFY to come back through the listener (a request right after an archive must already be refused)."""
    return _local_key_changes


def announce_key_change(conn: sa.Connection) -> None:
    """Tell every server process that keys changed (PostgreSQL NOTIFY, delivered when `conn` commits; this process
    at once, by `local_key_changes`). On SQLite each request looks its key up, so there is nothing to announce."""
    global _local_key_changes
    _local_key_changes += 1
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"NOTIFY {KEY_CHANNEL}"))


def hash_key(value: str) -> str:
    """The stored form of a key: its SHA-256 in hex."""
    return hashlib.sha256(value.encode()).hexdigest()


def public_key_id(value: str) -> str:
    """The public id of a key: `key_` + the first 16 hex digits of its SHA-256 (the usage API's `api_key_id`)."""
    return "key_" + hash_key(value)[:16]


def redact(value: str) -> str:
    return f"{value[:8]}...{value[-3:]}"


# -- projects ---------------------------------------------------------------------------------------------------------


def project_object(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "organization.project",
        "name": row.name,
        "created_at": row.created_at,
        "archived_at": row.archived_at,
        "status": row.status,
    }


def get_project(conn: sa.Connection, project_id: str) -> dict[str, Any] | None:
    """The Project object, or None if there is no project with that id."""
    t = schema.projects
    row = conn.execute(sa.select(t).where(t.c.id == project_id)).first()
    return project_object(row) if row is not None else None


def create_project(conn: sa.Connection, name: str) -> dict[str, Any]:
    """Create an active project named `name`. Returns its Project object."""
    row = {"id": new_id("project"), "name": name, "created_at": now(), "archived_at": None, "status": "active"}
    conn.execute(schema.projects.insert().values(**row))
    announce_key_change(conn)  # processes that cached the id as unknown (an `OpenAI-Project` header) learn of it
    return project_object(_Row(row))


def list_projects(
    conn: sa.Connection, *, after: str | None, limit: int, include_archived: bool
) -> tuple[list[dict[str, Any]], bool]:
    """A page of projects in creation order after the project `after` (None: from the start). Returns (objects,
    has_more); an unknown `after` gives an empty page."""
    t = schema.projects
    query = sa.select(t).order_by(t.c.seq).limit(limit + 1)
    if not include_archived:
        query = query.where(t.c.archived_at.is_(None))
    if after is not None:
        seq = conn.execute(sa.select(t.c.seq).where(t.c.id == after)).scalar()
        if seq is None:
            return [], False
        query = query.where(t.c.seq > seq)
    rows = conn.execute(query).all()
    return [project_object(r) for r in rows[:limit]], len(rows) > limit


def rename_project(conn: sa.Connection, project_id: str, name: str) -> dict[str, Any] | None:
    """Set a project's name. Returns the Project object, or None if there is no such project."""
    t = schema.projects
    if conn.execute(t.update().where(t.c.id == project_id).values(name=name)).rowcount == 0:
        return None
    return get_project(conn, project_id)


def archive_project(conn: sa.Connection, project_id: str) -> dict[str, Any] | None:
    """Archive a project (its keys are refused from the commit on, in every process). Archiving an archived
    project keeps its first `archived_at`. Returns the Project object, or None if there is no such project."""
    t = schema.projects
    changed = conn.execute(
        t.update().where(t.c.id == project_id, t.c.archived_at.is_(None)).values(archived_at=now(), status="archived")
    ).rowcount
    if changed:
        announce_key_change(conn)
    return get_project(conn, project_id)


# -- service accounts -------------------------------------------------------------------------------------------------


def service_account_object(row: Any) -> dict[str, Any]:
    return {
        "object": "organization.project.service_account",
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_at": row.created_at,
    }


def create_service_account(conn: sa.Connection, project_id: str, name: str, *, with_key: bool = True) -> dict[str, Any]:
    """Create a service account in `project_id` (which must exist) and, unless `with_key` is False, its API key.
    Returns OpenAI's ProjectServiceAccountCreateResponse: the key's `value` is in it, and nowhere else ever."""
    created = now()
    account = {
        "id": new_id("service_account"),
        "project_id": project_id,
        "name": name,
        "role": "member" if with_key else "none",
        "created_at": created,
    }
    conn.execute(schema.project_service_accounts.insert().values(**account))
    api_key = None
    if with_key:
        value = "sk-svcacct-" + secrets.token_urlsafe(48)
        key = _insert_key(conn, project_id, value, name, "service_account", account["id"], created)
        api_key = {
            "object": "organization.project.service_account.api_key",
            "value": value,
            "name": name,
            "created_at": created,
            "id": key["id"],
        }
    return {**service_account_object(_Row(account)), "api_key": api_key}


def get_service_account(conn: sa.Connection, project_id: str, account_id: str) -> dict[str, Any] | None:
    t = schema.project_service_accounts
    row = conn.execute(sa.select(t).where(t.c.id == account_id, t.c.project_id == project_id)).first()
    return service_account_object(row) if row is not None else None


def _page_rows(conn: sa.Connection, t: sa.Table, project_id: str, after: str | None, limit: int) -> list[sa.Row]:
    """Up to `limit` + 1 rows of the project's `t` in creation order, those after the row `after` (none when
    `after` is not one of them)."""
    query = sa.select(t).where(t.c.project_id == project_id).order_by(t.c.seq).limit(limit + 1)
    if after is not None:
        seq = conn.execute(sa.select(t.c.seq).where(t.c.id == after, t.c.project_id == project_id)).scalar()
        if seq is None:
            return []
        query = query.where(t.c.seq > seq)
    return list(conn.execute(query).all())


def list_service_accounts(
    conn: sa.Connection, project_id: str, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a project's service accounts in creation order. Returns (objects, has_more)."""
    rows = _page_rows(conn, schema.project_service_accounts, project_id, after, limit)
    return [service_account_object(r) for r in rows[:limit]], len(rows) > limit


def delete_service_account(conn: sa.Connection, project_id: str, account_id: str) -> list[str] | None:
    """Delete a service account and its keys. Returns the ids of the keys deleted, or None if the project has no
    such service account."""
    t, k = schema.project_service_accounts, schema.project_api_keys
    if conn.execute(t.delete().where(t.c.id == account_id, t.c.project_id == project_id)).rowcount == 0:
        return None
    key_ids = list(conn.execute(sa.select(k.c.id).where(k.c.owner_id == account_id)).scalars())
    conn.execute(k.delete().where(k.c.owner_id == account_id))
    announce_key_change(conn)
    return key_ids


# -- project API keys -------------------------------------------------------------------------------------------------


def _insert_key(
    conn: sa.Connection, project_id: str, value: str, name: str, owner_type: str, owner_id: str, created: int
) -> dict[str, Any]:
    row = {
        "id": public_key_id(value),
        "key_hash": hash_key(value),
        "project_id": project_id,
        "name": name,
        "redacted_value": redact(value),
        "owner_type": owner_type,
        "owner_id": owner_id,
        "created_at": created,
        "last_used_at": None,
    }
    conn.execute(schema.project_api_keys.insert().values(**row))
    announce_key_change(conn)
    return row


def create_user_key(conn: sa.Connection, project_id: str, name: str, *, value: str | None = None) -> dict[str, Any]:
    """A key of `project_id` owned by the operator (`threadline keys create-key --owner user`). Returns the
    ProjectApiKey object plus the key's `value` (shown once). Raises ValueError if the key is stored already."""
    value = value or "sk-proj-" + secrets.token_urlsafe(48)
    t = schema.project_api_keys
    if conn.execute(sa.select(t.c.seq).where(t.c.key_hash == hash_key(value))).first() is not None:
        raise ValueError("that key is stored already")
    row = _insert_key(conn, project_id, value, name, "user", OPERATOR["id"], now())
    return {**api_key_object(_Row(row)), "value": value}


def api_key_object(row: Any, accounts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ProjectApiKey object of a `project_api_keys` row; `accounts` maps service account ids to their rows
    (looked up by the caller for a page of keys)."""
    if row.owner_type == "service_account":
        account = (accounts or {}).get(row.owner_id)
        owner = {
            "type": "service_account",
            "service_account": {
                "id": row.owner_id,
                "name": account.name if account is not None else row.name,
                "created_at": account.created_at if account is not None else row.created_at,
                "role": account.role if account is not None else "member",
            },
        }
    else:
        owner = {"type": "user", "user": {**OPERATOR, "created_at": 0, "role": "owner"}}
    return {
        "object": "organization.project.api_key",
        "redacted_value": row.redacted_value,
        "name": row.name,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "id": row.id,
        "owner_project_access": "active",
        "owner": owner,
    }


def _with_owners(conn: sa.Connection, rows: list[Any]) -> list[dict[str, Any]]:
    t = schema.project_service_accounts
    owner_ids = {r.owner_id for r in rows if r.owner_type == "service_account"}
    accounts = {}
    if owner_ids:
        accounts = {a.id: a for a in conn.execute(sa.select(t).where(t.c.id.in_(owner_ids))).all()}
    return [api_key_object(r, accounts) for r in rows]


def get_api_key(conn: sa.Connection, project_id: str, key_id: str) -> dict[str, Any] | None:
    t = schema.project_api_keys
    row = conn.execute(sa.select(t).where(t.c.id == key_id, t.c.project_id == project_id)).first()
    return _with_owners(conn, [row])[0] if row is not None else None


def list_api_keys(
    conn: sa.Connection, project_id: str, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a project's API keys in creation order. Returns (objects, has_more)."""
    rows = _page_rows(conn, schema.project_api_keys, project_id, after, limit)
    return _with_owners(conn, rows[:limit]), len(rows) > limit


def project_of_key(conn: sa.Connection, key_id: str) -> str | None:
    """The project of the API key `key_id`, or None if there is no such key."""
    t = schema.project_api_keys
    return conn.execute(sa.select(t.c.project_id).where(t.c.id == key_id)).scalar()


def delete_api_key(conn: sa.Connection, project_id: str, key_id: str) -> bool:
    """Delete a project's key (refused from the commit on, in every process). False if the project has no such
    key."""
    t = schema.project_api_keys
    if conn.execute(t.delete().where(t.c.id == key_id, t.c.project_id == project_id)).rowcount == 0:
        return False
    announce_key_change(conn)
    return True


def touch_keys(conn: sa.Connection, digests: list[str], at: int, every_s: int = 0) -> None:
    """Set `last_used_at` (Unix seconds) of the project and admin keys with these SHA-256 digests, unless it was
    set less than `every_s` seconds before `at`."""
    for t in (schema.project_api_keys, schema.admin_api_keys):
        stale = sa.or_(t.c.last_used_at.is_(None), t.c.last_used_at <= at - every_s)
        conn.execute(t.update().where(t.c.key_hash.in_(digests), stale).values(last_used_at=at))


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

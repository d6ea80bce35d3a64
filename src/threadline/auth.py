"""API-key checking. With no keys configured the server is open (and says so at start-up)."""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa

from .store import Store, now, schema


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyChecker:
    """Keys come from THREADLINE_API_KEYS and from the api_keys table (stored as SHA-256 hashes)."""

    def __init__(self, store: Store, env_keys: list[str]) -> None:
        self.store = store
        self.env_hashes = {hash_key(k) for k in env_keys}
        self._table_hashes: set[str] = set()
        self.reload()

    def reload(self) -> None:
        with self.store.read() as conn:
            self._table_hashes = set(conn.execute(sa.select(schema.api_keys.c.key_hash)).scalars())

    @property
    def enabled(self) -> bool:
        return bool(self.env_hashes or self._table_hashes)

    def check(self, key: str) -> bool:
        digest = hash_key(key)
        return any(hmac.compare_digest(digest, h) for h in self.env_hashes | self._table_hashes)

    def add(self, key: str, name: str | None = None) -> None:
        with self.store.write() as conn:
            conn.execute(schema.api_keys.insert().values(key_hash=hash_key(key), name=name, created_at=now()))
        self.reload()

"""Persistence: one Store over SQLite (default) or PostgreSQL, plus blob storage for file bytes."""

from .blobs import BlobStore, LocalBlobStore
from .sql import ACTIVE_RUN_STATUSES, Page, Store, dumps, loads, now, owned

__all__ = ["ACTIVE_RUN_STATUSES", "BlobStore", "LocalBlobStore", "Page", "Store", "dumps", "loads", "now", "owned"]

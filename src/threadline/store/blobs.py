"""Blob storage for file bytes: a small interface with a local-disk implementation."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1 << 20


class BlobStore(Protocol):
    def put(self, key: str, source: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def concat(self, key: str, parts: list[str]) -> tuple[int, str]: ...
    def open(self, key: str) -> BinaryIO: ...
    def path(self, key: str) -> Path: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...


class TooLarge(Exception):
    pass


class LocalBlobStore:
    """Files under <root>/<2-char shard>/<key>; writes go to a temp file and are renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key[-2:] / key

    def _write(self, key: str, chunks, max_bytes: int | None) -> tuple[int, str]:  # noqa: ANN001
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        size = 0
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(size)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def put(self, key: str, source: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        return self._write(key, iter(lambda: source.read(CHUNK), b""), max_bytes)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, [data], None)

    def concat(self, key: str, parts: list[str]) -> tuple[int, str]:
        def chunks():
            for part in parts:
                with open(self.path(part), "rb") as f:
                    yield from iter(lambda f=f: f.read(CHUNK), b"")

        return self._write(key, chunks(), None)

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

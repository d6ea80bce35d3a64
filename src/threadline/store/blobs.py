"""Blob storage for file bytes: a small interface with a local-disk implementation."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1 << 20
SWEEP_BATCH = 500
TMP_SUFFIX = ".tmp"

log = logging.getLogger("threadline.blobs")


class BlobStore(Protocol):
    """File bytes by key. Keys are plain names (no "/", no leading "."). Every call blocks (run it in a thread).

    A missing blob raises FileNotFoundError; a failing medium raises another OSError. `put` raises TooLarge past
    `max_bytes` and leaves nothing behind; a blob appears whole or not at all.
    """

    def put(self, key: str, source: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def concat(self, key: str, parts: list[str]) -> tuple[int, str]: ...
    def open(self, key: str) -> BinaryIO: ...
    def open_sized(self, key: str) -> tuple[BinaryIO, int]: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def sweep(self, referenced: Callable[[list[str]], set[str]], min_age_s: float) -> tuple[int, int]: ...


def open_blob_store(url: str | None, default_dir: Path) -> BlobStore:
    """The store THREADLINE_BLOB_URL names: unset -> `default_dir`; a path or file:// URL -> that directory;
    s3://bucket/prefix -> the bucket (boto3; AWS variables configure endpoint and credentials).

    Raises ValueError for another scheme, OSError when the bucket cannot be used.
    """
    if not url:
        return LocalBlobStore(default_dir)
    if url.startswith("s3://"):
        from .blobs_s3 import S3BlobStore

        return S3BlobStore(url)
    if url.startswith("file://"):
        return LocalBlobStore(Path(url[len("file://") :]))
    if "://" in url:
        raise ValueError(f"THREADLINE_BLOB_URL must be a directory, file:///dir or s3://bucket/prefix, not {url!r}")
    return LocalBlobStore(Path(url))


@contextlib.contextmanager
def discard_on_error(blobs: BlobStore, keys: Iterable[str]) -> Iterator[None]:
    """Around the database write that will reference freshly written blobs: if it raises, delete the blobs.

    A write that fails or loses a race (e.g. two `complete`s of one upload) must not leave bytes that nothing
    references. Cancellation (BaseException) keeps them: the write may still commit; the start-up sweep collects
    whatever ends up unreferenced.
    """
    try:
        yield
    except Exception:
        for key in keys:
            try:
                blobs.delete(key)
            except OSError:
                log.warning("could not delete blob %s after a failed write", key, exc_info=True)
        raise


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
        tmp = target.with_name(target.name + TMP_SUFFIX)
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

    def open_sized(self, key: str) -> tuple[BinaryIO, int]:
        f = open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it
        return f, os.fstat(f.fileno()).st_size

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def sweep(self, referenced: Callable[[list[str]], set[str]], min_age_s: float) -> tuple[int, int]:
        """Delete blobs nothing references and temp files of interrupted writes, if older than `min_age_s`.

        `referenced(keys)` returns the subset of `keys` the database still references. The age bound leaves alone
        writes in flight (a blob is written just before the row that references it is committed). Returns
        (files deleted, bytes freed).
        """
        cutoff = time.time() - min_age_s
        count = freed = 0

        def drop(path: Path, size: int) -> None:
            nonlocal count, freed
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                count += 1
                freed += size

        def check(batch: dict[str, tuple[Path, int]]) -> None:
            keep = referenced(list(batch))
            for key, (path, size) in batch.items():
                if key not in keep:
                    drop(path, size)

        batch: dict[str, tuple[Path, int]] = {}
        for shard in sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []:
            for entry in os.scandir(shard):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not entry.is_file(follow_symlinks=False) or st.st_mtime > cutoff:
                    continue
                if entry.name.endswith(TMP_SUFFIX):
                    drop(Path(entry.path), st.st_size)
                    continue
                batch[entry.name] = (Path(entry.path), st.st_size)
                if len(batch) >= SWEEP_BATCH:
                    check(batch)
                    batch = {}
        if batch:
            check(batch)
        return count, freed

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

"""One contract, two blob stores: the local directory and an S3 bucket (on a real S3-compatible HTTP server)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from threadline.store.blobs import BlobStore, LocalBlobStore, TooLarge, open_blob_store
from threadline.store.blobs_s3 import PART_BYTES, BlobStoreError, S3BlobStore

from .conftest import S3Server


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "files")
    else:
        yield S3BlobStore(f"s3://{s3_server.bucket()}/some/prefix", client=s3_server.client())


class Trickle(io.RawIOBase):
    """A source that hands out `total` bytes in reads of at most 64 KiB and counts how much was read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.given = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(65536, self.total - self.given, n if n >= 0 else 65536)
        self.given += n
        return bytes([self.given % 251]) * n


def test_put_open_size_delete(blobs) -> None:  # noqa: ANN001
    data = os.urandom(300_000)
    size, md5 = blobs.put("file-abc", io.BytesIO(data))
    assert (size, md5) == (len(data), hashlib.md5(data).hexdigest())
    assert blobs.size("file-abc") == len(data)
    with blobs.open("file-abc") as f:
        assert f.read(10) == data[:10]
        assert f.read() == data[10:]
    body, n = blobs.open_sized("file-abc")
    with body:
        assert n == len(data) and body.read() == data
    blobs.delete("file-abc")
    with pytest.raises(FileNotFoundError):
        blobs.open("file-abc")
    blobs.delete("file-abc")  # deleting twice is fine


def test_missing_key(blobs) -> None:  # noqa: ANN001
    with pytest.raises(FileNotFoundError):
        blobs.open("file-nothing")
    with pytest.raises(FileNotFoundError):
        blobs.open_sized("file-nothing")
    with pytest.raises(FileNotFoundError):
        blobs.size("file-nothing")
    with pytest.raises(FileNotFoundError):
        blobs.concat("file-joined", ["part-nothing"])


@pytest.mark.parametrize("key", ["", "a/b", ".hidden"])
def test_bad_keys_are_refused(blobs, key: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        blobs.put_bytes(key, b"x")


def test_too_large_leaves_nothing_and_stops_reading(blobs) -> None:  # noqa: ANN001
    source = Trickle(3 * PART_BYTES)
    with pytest.raises(TooLarge):
        blobs.put("file-big", source, max_bytes=PART_BYTES + 100)
    assert source.given < PART_BYTES + 2 * 2**20  # stopped soon after the limit, not at the end of the source
    with pytest.raises(FileNotFoundError):
        blobs.size("file-big")


def test_large_streamed_write_and_concat(blobs) -> None:  # noqa: ANN001
    """More than one S3 part: the object is whole, the size and md5 are of all the bytes."""
    total = 2 * PART_BYTES + 12345
    size, md5 = blobs.put("part-1", Trickle(total))
    assert size == total == blobs.size("part-1")
    blobs.put_bytes("part-2", b"tail")
    size, joined_md5 = blobs.concat("file-joined", ["part-1", "part-2", "part-1"])
    assert size == 2 * total + 4 == blobs.size("file-joined")
    digest = hashlib.md5()
    with blobs.open("file-joined") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == joined_md5
    with blobs.open("file-joined") as f:
        f.read(total)
        assert f.read(4) == b"tail"


def test_overwrite_replaces(blobs) -> None:  # noqa: ANN001
    blobs.put_bytes("file-x", b"old")
    blobs.put_bytes("file-x", b"new bytes")
    with blobs.open("file-x") as f:
        assert f.read() == b"new bytes"


def test_sweep_deletes_only_old_unreferenced(blobs) -> None:  # noqa: ANN001
    for key in ("file-kept", "file-orphan"):
        blobs.put_bytes(key, b"12345")
    asked: list[str] = []

    def referenced(keys: list[str]) -> set[str]:
        asked.extend(keys)
        return {"file-kept"} & set(keys)

    assert blobs.sweep(referenced, min_age_s=3600) == (0, 0)  # too young: in flight, perhaps
    time.sleep(1.1)  # S3 times have whole seconds
    assert blobs.sweep(referenced, min_age_s=0) == (1, 5)
    assert sorted(set(asked)) == ["file-kept", "file-orphan"]
    assert blobs.size("file-kept") == 5
    with pytest.raises(FileNotFoundError):
        blobs.size("file-orphan")


def test_s3_sweep_aborts_stale_multipart_uploads_and_keeps_other_prefixes(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="elsewhere", Body=b"not ours")
    client.put_object(Bucket=bucket, Key="p/deeper/file-x", Body=b"not ours either")
    client.create_multipart_upload(Bucket=bucket, Key="p/file-interrupted")
    store = S3BlobStore(f"s3://{bucket}/p", client=client)
    time.sleep(1.1)
    assert store.sweep(lambda keys: set(), min_age_s=0) == (0, 0)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert sorted(s3_server.keys(bucket)) == ["elsewhere", "p/deeper/file-x"]


def test_s3_failure_during_write_aborts_the_multipart_upload(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    store = S3BlobStore(f"s3://{bucket}/p", client=s3_server.client())

    def chunks() -> Iterator[bytes]:
        yield b"x" * (PART_BYTES + 1)  # one part goes up
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        store._write("file-cut", chunks(), None)
    assert s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3_server.keys(bucket) == []


def test_open_blob_store_by_url(tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_blob_store(None, tmp_path / "a"), LocalBlobStore)
    assert open_blob_store(str(tmp_path / "b"), tmp_path / "a").root == tmp_path / "b"
    assert open_blob_store(f"file://{tmp_path}/c", tmp_path / "a").root == tmp_path / "c"
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_blob_store("gs://bucket/x", tmp_path)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.bucket()
    store = open_blob_store(f"s3://{bucket}/", tmp_path)
    assert isinstance(store, S3BlobStore) and (store.bucket, store.prefix) == (bucket, "")
    store.put_bytes("file-top", b"hi")
    assert s3_server.keys(bucket) == ["file-top"]
    with pytest.raises(BlobStoreError, match="no-such-bucket"):
        open_blob_store("s3://no-such-bucket/x", tmp_path)

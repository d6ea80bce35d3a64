"""Blob storage in an S3-compatible bucket (`THREADLINE_BLOB_URL=s3://bucket/prefix`), through boto3.

Endpoint, region and credentials come from the standard AWS variables (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3,
AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or any other source botocore reads).
Calls block: callers run them in worker threads, as with the local store. Memory stays bounded by one part
(PART_BYTES) per write: larger objects go up as multipart uploads, and reads are streamed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .blobs import CHUNK, SWEEP_BATCH, TooLarge

PART_BYTES = 8 * CHUNK  # S3 wants parts of at least 5 MiB (except the last)

log = logging.getLogger("threadline.blobs")


class BlobStoreError(OSError):
    """The bucket could not be reached or refused a request (an OSError, as a failing disk would raise)."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix is "" when absent.

    Raises ValueError when the URL has no bucket.
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"THREADLINE_BLOB_URL must look like s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3BlobStore:
    """Objects at s3://<bucket>/<prefix><key>; an object appears whole (single PUT or completed multipart upload)."""

    def __init__(self, url: str, client: Any = None) -> None:
        import boto3
        import botocore.config

        self.bucket, self.prefix = parse_s3_url(url)
        self.url = url
        # Only the pool size is set here: retries, endpoint, checksums etc. stay with the AWS variables/config file.
        self.client = client or boto3.client("s3", config=botocore.config.Config(max_pool_connections=32))
        self._errors = _error_types()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors as exc:
            raise BlobStoreError(f"cannot use bucket {self.bucket!r} for THREADLINE_BLOB_URL: {exc}") from exc

    def _key(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.prefix + key

    @contextlib.contextmanager
    def _call(self, key: str) -> Iterator[None]:
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"no blob {key!r}") from exc
            raise BlobStoreError(f"S3 request for blob {key!r} failed: {exc}") from exc
        except self._errors as exc:
            raise BlobStoreError(f"S3 request for blob {key!r} failed: {exc}") from exc

    def _write(self, key: str, chunks: Iterable[bytes], max_bytes: int | None) -> tuple[int, str]:
        name = self._key(key)
        size = 0
        digest = hashlib.md5(usedforsecurity=False)
        buf = bytearray()
        upload_id: str | None = None
        etags: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal upload_id
            if upload_id is None:
                upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
            n = len(etags) + 1
            r = self.client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=n, Body=bytes(buf))
            etags.append({"PartNumber": n, "ETag": r["ETag"]})
            buf.clear()

        try:
            with self._call(key):
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(size)
                    digest.update(chunk)
                    buf += chunk
                    if len(buf) >= PART_BYTES:
                        flush()
                if upload_id is None:
                    self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(buf))
                else:
                    if buf or not etags:
                        flush()
                    self.client.complete_multipart_upload(
                        Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": etags}
                    )
        except BaseException:
            if upload_id is not None:
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
                except Exception:  # noqa: BLE001 - the sweep aborts stale uploads later
                    log.warning("could not abort the multipart upload of blob %s", key, exc_info=True)
            raise
        return size, digest.hexdigest()

    def put(self, key: str, source: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        """Copy `source` to the blob `key` in chunks; (bytes, md5 hex). Raises TooLarge past `max_bytes`."""
        return self._write(key, iter(lambda: source.read(CHUNK), b""), max_bytes)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, [data], None)

    def concat(self, key: str, parts: list[str]) -> tuple[int, str]:
        """Write the blobs `parts`, in order, as one blob `key` (streamed through this process)."""

        def chunks() -> Iterator[bytes]:
            for part in parts:
                with self.open(part) as f:
                    yield from iter(lambda f=f: f.read(CHUNK), b"")

        return self._write(key, chunks(), None)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader of the blob (a context manager). Raises FileNotFoundError when it does not exist."""
        with self._call(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]

    def open_sized(self, key: str) -> tuple[BinaryIO, int]:
        """(streaming reader, size in bytes) from one request. Raises FileNotFoundError when it does not exist."""
        with self._call(key):
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        return r["Body"], int(r["ContentLength"])

    def size(self, key: str) -> int:
        with self._call(key):
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    def delete(self, key: str) -> None:
        with self._call(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def sweep(self, referenced: Callable[[list[str]], set[str]], min_age_s: float) -> tuple[int, int]:
        """Delete objects under the prefix that nothing references, and abort multipart uploads left by interrupted
        writes, if older than `min_age_s` (writes in flight on any server are younger). Returns (objects deleted,
        bytes freed)."""
        cutoff = datetime.fromtimestamp(time.time() - min_age_s, UTC)
        count = freed = 0

        def check(batch: dict[str, tuple[str, int]]) -> None:
            nonlocal count, freed
            keep = referenced(list(batch))
            drop = [(name, size) for key, (name, size) in batch.items() if key not in keep]
            if drop:
                with self._call(drop[0][0]):
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": [{"Key": n} for n, _ in drop], "Quiet": True}
                    )
                count += len(drop)
                freed += sum(s for _, s in drop)

        batch: dict[str, tuple[str, int]] = {}
        with self._call(self.prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if "/" in key or not key or obj["LastModified"] > cutoff:
                        continue  # not ours (a deeper "folder") or possibly in flight
                    batch[key] = (obj["Key"], int(obj["Size"]))
                    if len(batch) >= SWEEP_BATCH:
                        check(batch)
                        batch = {}
            if batch:
                check(batch)
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for up in page.get("Uploads", []):
                    if up["Initiated"] <= cutoff:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
        return count, freed


def _error_types() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)

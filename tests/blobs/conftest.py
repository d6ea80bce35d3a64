"""An S3-compatible server (moto's, real HTTP on a loopback port) for the blob store tests.

Fixtures:
    s3_server  (session)  S3Server: .endpoint, .env (the AWS variables a client or threadline server needs),
                          .client() (a boto3 S3 client on it), .bucket(name) (creates the bucket, returns its name)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from support.postgres import free_port


@dataclass
class S3Server:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "threadline-test",
            "AWS_SECRET_ACCESS_KEY": "threadline-test-secret",
            "AWS_REGION": "us-east-1",
        }

    def client(self):  # noqa: ANN201 - botocore S3 client
        import boto3

        env = self.env
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )

    def bucket(self, name: str | None = None) -> str:
        name = name or f"tl-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield S3Server(f"http://127.0.0.1:{port}")
    server.stop()

"""Upload expiry with the manual clock: an expired upload refuses parts and completion, and its parts' bytes go."""

from __future__ import annotations

import asyncio

import openai
import pytest

from threadline.services.uploads import expire_stale

pytestmark = pytest.mark.anyio


def blob_files(settings) -> set[str]:  # noqa: ANN001
    return {p.name for p in settings.blob_dir.rglob("*") if p.is_file()}


async def test_expired_upload_refuses_parts_and_loses_its_bytes(client, clock, runtime, settings):
    up = await client.uploads.create(filename="a.bin", bytes=6, mime_type="text/plain", purpose="assistants")
    assert up.expires_at == up.created_at + settings.upload_expires_after_s
    part = await client.uploads.parts.create(up.id, data=b"abc")
    assert blob_files(settings) == {part.id}
    clock.advance(settings.upload_expires_after_s - 60)
    assert await asyncio.to_thread(expire_stale, runtime) == 0  # not yet
    clock.advance(120)
    with pytest.raises(openai.BadRequestError) as exc:
        await client.uploads.parts.create(up.id, data=b"def")
    assert exc.value.body["message"] == f"Upload {up.id} is expired; it no longer accepts this operation."
    assert await asyncio.to_thread(expire_stale, runtime) == 1  # what maintenance does every 30 s
    assert blob_files(settings) == set()
    with pytest.raises(openai.BadRequestError):
        await client.uploads.complete(up.id, part_ids=[part.id])

"""Container expiry on the manual clock: `expires_after.minutes` idle, counted from `last_active_at`, applied when
the container is read and by the maintenance sweep (containers without files: no sandbox session is started)."""

from __future__ import annotations

import pytest

from threadline.services.containers import expire_due

pytestmark = pytest.mark.anyio


async def test_container_expires_after_idle_minutes(client, clock):
    c = await client.containers.create(name="idle", expires_after={"anchor": "last_active_at", "minutes": 2})
    assert (c.status, c.last_active_at) == ("running", clock.now())
    clock.advance(119)
    assert (await client.containers.retrieve(c.id)).status == "running"
    clock.advance(2)
    assert (await client.containers.retrieve(c.id)).status == "expired"
    assert (await client.containers.files.list(container_id=c.id)).data == []


async def test_list_shows_expiry_without_waiting_for_the_sweep(client, clock):
    c = await client.containers.create(name="listed", expires_after={"anchor": "last_active_at", "minutes": 1})
    clock.advance(61)
    assert [x.status for x in (await client.containers.list(extra_query={"name": "listed"})).data] == ["expired"]
    assert (await client.containers.retrieve(c.id)).status == "expired"


async def test_sweep_expires_due_containers_only(client, clock, runtime):
    short = await client.containers.create(name="short", expires_after={"anchor": "last_active_at", "minutes": 1})
    default = await client.containers.create(name="default")  # 20 minutes
    assert default.expires_after.minutes == 20
    clock.advance(30)
    assert await expire_due(runtime) == 0
    clock.advance(31)
    assert await expire_due(runtime) == 1  # what maintenance does every 30 s
    statuses = {c.id: c.status async for c in client.containers.list()}
    assert statuses[short.id] == "expired" and statuses[default.id] == "running"
    clock.advance(20 * 60)
    assert await expire_due(runtime) == 1
    assert await expire_due(runtime) == 0

"""A container's sandbox session, through the service functions a code_interpreter execution in a container uses
(in-process app, the real sandbox): files placed in /mnt/data and removed from it, files the code writes recorded as
container files, a recycled session restored with every file, and deletion closing the session."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from threadline.app import create_app
from threadline.config import Settings
from threadline.services import containers as svc
from threadline.services import files as files_svc

CSV = b"month,amount\njan,10\nfeb,20\n"


def _run(tmp_path: Path, body) -> None:  # noqa: ANN001
    async def main() -> None:
        settings = Settings(data_dir=tmp_path / "data", sandbox_warm_pool=0, storage_reserve_mb=0)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            ok, reason = await rt.sandbox.start()
            assert ok, f"sandbox unavailable (run scripts/setup-sandbox.sh): {reason}"
            await body(rt)

    asyncio.run(main())


async def _read(rt, container_id: str, path: str) -> str:  # noqa: ANN001
    code = f"import os\nprint(open({path!r}).read() if os.path.exists({path!r}) else 'MISSING')"
    result = await rt.sandbox.execute(container_id, code)
    assert result.error is None, result.error
    return result.logs.rstrip("\n")


def test_files_live_in_the_session(tmp_path):
    async def body(rt) -> None:  # noqa: ANN001
        f = await asyncio.to_thread(files_svc.create, rt, io.BytesIO(CSV), filename="sales.csv", purpose="assistants")
        c = await svc.create(rt, svc.NewContainer(name="live", file_ids=[f["id"]]))
        cid = c["id"]
        assert rt.sandbox.has_session(cid)  # created with files: the session holds them at once
        assert await _read(rt, cid, "/mnt/data/sales.csv") == CSV.decode().rstrip("\n")

        notes = await svc.upload_file(rt, cid, io.BytesIO(b"later"), "notes.txt")
        assert await _read(rt, cid, notes["path"]) == "later"
        await svc.delete_file(rt, cid, notes["id"])
        assert await _read(rt, cid, notes["path"]) == "MISSING"

        # What the code writes becomes a container file (source assistant), replacing one at the same path.
        sink = svc.output_sink(rt, cid)
        for text in ("first", "second"):
            result = await rt.sandbox.execute(cid, f"open('/mnt/data/out.txt', 'w').write({text!r})", sink=sink)
            (out,) = result.files
            assert out.ref["source"] == "assistant" and out.ref["path"] == "/mnt/data/out.txt"
        page = await svc.list_files(rt, cid, svc.ListParams(order="asc"))
        assert len(page.ids) == 2 and page.ids[1] == out.ref["id"]
        _, key = await svc.get_file(rt, cid, out.ref["id"])
        assert rt.blobs.open(key).read() == b"second"

        # A recycled session gets every file back before code runs.
        await rt.sandbox.close_session(cid)
        assert await svc.ensure_session(rt, cid) is True
        assert await svc.ensure_session(rt, cid) is False
        assert await _read(rt, cid, "/mnt/data/out.txt") == "second"
        assert await _read(rt, cid, "/mnt/data/sales.csv") == CSV.decode().rstrip("\n")

        await svc.delete(rt, cid)
        assert not rt.sandbox.has_session(cid)

    _run(tmp_path, body)

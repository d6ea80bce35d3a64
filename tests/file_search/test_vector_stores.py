"""Vector stores through the SDK: ingestion, batches, search quality basics, filters, failures, expiry."""

from __future__ import annotations

import io
import time

import openai
import pytest

from .conftest import DAY_S, DOCS, search


def make_store(client, stores, docs=DOCS, attributes=None):  # noqa: ANN001, ANN201
    store = stores.create(name="docs", metadata={"team": "qa"})
    ids = {}
    for name, data in docs.items():
        f = client.files.create(file=(name, data), purpose="assistants")
        ids[name] = f.id
    if _supports_files_param():
        entries = [{"file_id": ids[n], "attributes": (attributes or {}).get(n, {"name": n})} for n in docs]
        kwargs = {"files": entries}
    else:
        kwargs = {"file_ids": list(ids.values())}
    batch = stores.file_batches.create_and_poll(vector_store_id=store.id, poll_interval_ms=50, **kwargs)
    return store, ids, batch


def _supports_files_param() -> bool:
    import inspect

    from support.sdk import vector_stores

    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:1")
    return "files" in inspect.signature(vector_stores(client).file_batches.create).parameters


def test_upload_and_poll_and_store_counts(client, stores):
    store = stores.create(name="one")
    assert store.status == "completed" and store.file_counts.total == 0
    vsf = stores.files.upload_and_poll(vector_store_id=store.id, file=("zebras.txt", DOCS["zebras.txt"]))
    assert vsf.status == "completed" and vsf.last_error is None and vsf.usage_bytes > 0
    assert vsf.chunking_strategy.type == "static"
    store = stores.retrieve(store.id)
    assert store.file_counts.completed == 1 and store.file_counts.total == 1 and store.usage_bytes == vsf.usage_bytes
    assert store.status == "completed"
    listed = stores.files.list(vector_store_id=store.id)
    assert [f.id for f in listed.data] == [vsf.id]
    if hasattr(stores.files, "content"):
        content = stores.files.content(file_id=vsf.id, vector_store_id=store.id)
        assert "thermoregulation" in "".join(part.text for part in content)


def test_static_chunking_honoured_and_reported(client, stores):
    store = stores.create()
    f = client.files.create(file=("long.txt", ("word " * 3000).encode()), purpose="assistants")
    vsf = stores.files.create_and_poll(
        vector_store_id=store.id,
        file_id=f.id,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 100}},
        poll_interval_ms=50,
    )
    assert vsf.status == "completed"
    assert vsf.chunking_strategy.static.max_chunk_size_tokens == 400
    assert vsf.chunking_strategy.static.chunk_overlap_tokens == 100
    with pytest.raises(openai.BadRequestError):
        stores.files.create(
            vector_store_id=store.id,
            file_id=f.id,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 300}},
        )


def test_batch_and_search_ranks_the_right_file_first(client, stores):
    store, ids, batch = make_store(client, stores)
    assert batch.status == "completed" and batch.file_counts.completed == len(DOCS)
    assert batch.object == "vector_store.files_batch"
    listed = stores.file_batches.list_files(batch_id=batch.id, vector_store_id=store.id)
    assert sorted(f.id for f in listed.data) == sorted(ids.values())
    for query, expected in [
        ("why is the red planet red?", "mars.md"),
        ("largest active volcano", "volcano.html"),
        ("what makes sourdough rise", "bread.txt"),
        ("purpose of zebra stripes", "zebras.txt"),
    ]:
        hits = search(client, stores, store.id, query=query)
        assert hits[0]["filename"] == expected, (query, [(r["filename"], r["score"]) for r in hits])
        assert hits[0]["file_id"] == ids[expected]
        assert 0 <= hits[-1]["score"] <= hits[0]["score"] <= 1
        assert hits[0]["content"][0]["type"] == "text" and hits[0]["content"][0]["text"]


def test_search_filters_threshold_and_limits(client, stores):
    attributes = {
        "zebras.txt": {"kind": "animal", "year": 2020, "public": True},
        "mars.md": {"kind": "space", "year": 2022, "public": True},
        "volcano.html": {"kind": "earth", "year": 2024, "public": False},
        "bread.txt": {"kind": "food", "year": 2021, "public": False},
    }
    if not _supports_files_param():
        pytest.skip("this SDK version cannot send per-file attributes in a batch")
    store, ids, _ = make_store(client, stores, attributes=attributes)

    def names(**kwargs):  # noqa: ANN003, ANN202
        page = stores.search(vector_store_id=store.id, query="stripes planet volcano bread", **kwargs)
        return {r.filename for r in page.data}

    assert names(filters={"type": "eq", "key": "kind", "value": "space"}) == {"mars.md"}
    assert names(filters={"type": "in", "key": "kind", "value": ["food", "earth"]}) == {"bread.txt", "volcano.html"}
    assert names(filters={"type": "gte", "key": "year", "value": 2022}) == {"mars.md", "volcano.html"}
    both = {
        "type": "and",
        "filters": [{"type": "eq", "key": "public", "value": True}, {"type": "lt", "key": "year", "value": 2022}],
    }
    assert names(filters=both) == {"zebras.txt"}
    either = {
        "type": "or",
        "filters": [{"type": "eq", "key": "kind", "value": "food"}, {"type": "eq", "key": "kind", "value": "space"}],
    }
    assert names(filters=either) == {"bread.txt", "mars.md"}
    assert len(names(max_num_results=2)) == 2
    strict = stores.search(vector_store_id=store.id, query="zebra stripes", ranking_options={"score_threshold": 0.5})
    assert strict.data and all(r.score >= 0.5 for r in strict.data)
    vsf = stores.files.update(vector_store_id=store.id, file_id=ids["mars.md"], attributes={"kind": "planet"})
    assert vsf.attributes == {"kind": "planet"}
    assert names(filters={"type": "eq", "key": "kind", "value": "planet"}) == {"mars.md"}


def test_failed_files_have_last_error(client, stores):
    store = stores.create()
    png = stores.files.upload_and_poll(vector_store_id=store.id, file=("pic.png", b"\x89PNG\r\n\x1a\n" + bytes(200)))
    assert png.status == "failed" and png.last_error.code == "unsupported_file"
    broken = stores.files.upload_and_poll(vector_store_id=store.id, file=("broken.pdf", b"\x00\x01garbage" * 50))
    assert broken.status == "failed" and broken.last_error.code == "invalid_file"
    counts = stores.retrieve(store.id).file_counts
    assert counts.failed == 2 and counts.in_progress == 0
    assert [f.id for f in stores.files.list(vector_store_id=store.id, filter="failed")] != []
    assert list(stores.files.list(vector_store_id=store.id, filter="completed")) == []


def test_deleting_a_file_removes_it_from_search(client, stores):
    store, ids, _ = make_store(client, stores)
    assert search(client, stores, store.id, query="red planet iron oxide")[0]["filename"] == "mars.md"
    client.files.delete(ids["mars.md"])
    results = search(client, stores, store.id, query="red planet iron oxide")
    assert "mars.md" not in {r["filename"] for r in results}
    assert stores.retrieve(store.id).file_counts.total == len(DOCS) - 1
    stores.files.delete(file_id=ids["bread.txt"], vector_store_id=store.id)
    assert "bread.txt" not in {r["filename"] for r in search(client, stores, store.id, query="sourdough")}
    client.files.retrieve(ids["bread.txt"])  # detaching keeps the File
    assert stores.delete(store.id).deleted


def test_real_documents_are_ingested(client, stores, tmp_path):
    from docx import Document
    from reportlab.pdfgen import canvas

    pdf = io.BytesIO()
    c = canvas.Canvas(pdf)
    c.drawString(72, 720, "The quarterly revenue of Acme Widgets reached 42 million euros.")
    c.save()
    doc = Document()
    doc.add_heading("Onboarding", 1)
    doc.add_paragraph("New employees receive their laptop from the helpdesk on the first Monday.")
    docx = io.BytesIO()
    doc.save(docx)
    store = stores.create()
    for name, data in [("report.pdf", pdf.getvalue()), ("handbook.docx", docx.getvalue())]:
        vsf = stores.files.upload_and_poll(vector_store_id=store.id, file=(name, data))
        assert vsf.status == "completed", vsf.last_error
    assert search(client, stores, store.id, query="Acme revenue")[0]["filename"] == "report.pdf"
    laptop = search(client, stores, store.id, query="when do new hires get a laptop")
    assert laptop[0]["filename"] == "handbook.docx"


def test_expiry_is_enforced(client, stores):
    store = stores.create(expires_after={"anchor": "last_active_at", "days": 1})
    assert store.expires_at == store.last_active_at + DAY_S
    time.sleep(DAY_S + 1.2)
    store = stores.retrieve(store.id)
    assert store.status == "expired"
    with pytest.raises(openai.BadRequestError):
        search(client, stores, store.id, query="anything")


def test_bad_vector_store_requests(client, stores):
    with pytest.raises(openai.NotFoundError):
        stores.retrieve("vs_doesnotexist")
    with pytest.raises(openai.BadRequestError):
        stores.retrieve("nope")
    store = stores.create()
    with pytest.raises(openai.NotFoundError):
        stores.files.create(vector_store_id=store.id, file_id="file-doesnotexist")
    with pytest.raises(openai.BadRequestError):
        search(client, stores, store.id, query="x", max_num_results=51)
    with pytest.raises(openai.BadRequestError):
        search(client, stores, store.id, query="x", filters={"type": "near", "key": "a", "value": 1})


def test_poll_helpers_get_the_server_poll_hint(client, stores, http, monkeypatch):
    """Every response an SDK poll helper reads carries `openai-poll-after-ms` (the fixture's server sets 20 ms),
    so upload_and_poll / create_and_poll sleep 20 ms instead of the SDK's 1 s (Node: 5 s) default."""
    from openai._resource import SyncAPIResource

    sleeps: list[float] = []
    real_sleep = SyncAPIResource._sleep
    monkeypatch.setattr(SyncAPIResource, "_sleep", lambda self, s: (sleeps.append(s), real_sleep(self, s))[1])
    store = stores.create(name="poll")
    long_text = ("Zebra stripes and sourdough bread facts. " * 300).encode()
    vsf = stores.files.upload_and_poll(vector_store_id=store.id, file=("long.txt", long_text))
    assert vsf.status == "completed"
    f = client.files.create(file=("more.txt", long_text), purpose="assistants")
    batch = stores.file_batches.create_and_poll(vector_store_id=store.id, file_ids=[f.id])
    assert batch.status == "completed"
    assert all(s == 0.02 for s in sleeps), sleeps

    def hint(response) -> str | None:  # noqa: ANN001
        assert response.status_code == 200, response.text
        return response.headers.get("openai-poll-after-ms")

    g = client.files.create(file=("third.txt", b"three"), purpose="assistants")
    assert hint(http.post(f"/vector_stores/{store.id}/files", json={"file_id": g.id})) == "20"
    assert hint(http.get(f"/vector_stores/{store.id}/files/{g.id}")) == "20"
    created = http.post(f"/vector_stores/{store.id}/file_batches", json={"file_ids": [g.id]})
    assert hint(created) == "20"
    assert hint(http.get(f"/vector_stores/{store.id}/file_batches/{created.json()['id']}")) == "20"
    assert hint(http.post(f"/vector_stores/{store.id}/file_batches/{created.json()['id']}/cancel")) == "20"
    assert hint(http.get(f"/files/{g.id}")) == "20"

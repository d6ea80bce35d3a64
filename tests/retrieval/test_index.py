import numpy as np
import pytest
import sqlalchemy as sa

from threadline.retrieval import index as ix
from threadline.retrieval.index import ChunkRecord, make_index

DIM = 384


def unit(*hot: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    for h in hot:
        v[h] = 1.0
    return v / np.linalg.norm(v)


def rec(vs, fid, i, text, emb, attrs=None):
    return ChunkRecord(vs, fid, i, text, len(text.split()), emb, attrs)


@pytest.fixture
def index(db_engine):
    return make_index(db_engine)


def seed(index):
    index.add(
        [
            rec(
                "vs_a",
                "file-1",
                0,
                "The refund policy allows returns within 30 days.",
                unit(0),
                {"dept": "sales", "year": 2023},
            ),
            rec(
                "vs_a",
                "file-1",
                1,
                "Shipping is free for orders above 50 euros.",
                unit(1),
                {"dept": "sales", "year": 2023},
            ),
            rec(
                "vs_a",
                "file-2",
                0,
                "Employees accrue 25 vacation days per year.",
                unit(2),
                {"dept": "hr", "year": 2024},
            ),
            rec(
                "vs_a",
                "file-3",
                0,
                "The cafeteria opens at 8 am and serves breakfast.",
                unit(3),
                {"dept": "ops", "draft": True},
            ),
            rec("vs_b", "file-9", 0, "Refunds in store B take 14 days.", unit(0, 4), None),
        ]
    )


def test_vector_mode_ranks_by_cosine(index):
    seed(index)
    hits = index.search(["vs_a"], "anything", unit(2), k=3, mode="vector")
    assert hits[0].file_id == "file-2" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.vector_store_id == "vs_a" for h in hits)


def test_keyword_mode_uses_full_text(index):
    seed(index)
    hits = index.search(["vs_a"], "vacation days", unit(0), k=5, mode="keyword")
    assert [h.file_id for h in hits][:1] == ["file-2"]
    assert hits[0].score == pytest.approx(1.0)
    assert hits[0].attributes == {"dept": "hr", "year": 2024}


def test_stemming(index):
    seed(index)
    hits = index.search(["vs_a"], "returning refunds", unit(5), k=5, mode="keyword")
    assert hits and hits[0].file_id == "file-1" and hits[0].chunk_index == 0


def test_hybrid_combines_both_signals(index):
    seed(index)
    # Keyword points to the refund chunk, the vector to the vacation chunk; both must appear, scores in 0..1.
    hits = index.search(["vs_a"], "refund policy", unit(2), k=4)
    files = [(h.file_id, h.chunk_index) for h in hits]
    assert ("file-1", 0) in files and ("file-2", 0) in files
    for h in hits:
        assert 0.0 <= h.score <= 1.0
        assert h.score == pytest.approx(
            ix.HYBRID_VECTOR_WEIGHT * h.vector_score + (1 - ix.HYBRID_VECTOR_WEIGHT) * h.keyword_score
        )
    # A chunk matching both signals beats one matching only one.
    both = index.search(["vs_a"], "refund policy", unit(0), k=4)
    assert (both[0].file_id, both[0].chunk_index) == ("file-1", 0)
    assert both[0].score == pytest.approx(1.0, abs=1e-5)


def test_stores_are_isolated_and_combinable(index):
    seed(index)
    only_a = index.search(["vs_a"], "refunds", unit(0, 4), k=10)
    assert {h.vector_store_id for h in only_a} == {"vs_a"}
    both = index.search(["vs_a", "vs_b"], "refunds", unit(0, 4), k=10)
    assert both[0].file_id == "file-9"
    assert index.search(["vs_missing"], "refunds", unit(0), k=10) == []
    assert index.search([], "refunds", unit(0), k=10) == []


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"type": "eq", "key": "dept", "value": "hr"}, {"file-2"}),
        ({"type": "ne", "key": "dept", "value": "hr"}, {"file-1", "file-3"}),
        ({"type": "gt", "key": "year", "value": 2023}, {"file-2"}),
        ({"type": "gte", "key": "year", "value": 2023}, {"file-1", "file-2"}),
        ({"type": "lt", "key": "year", "value": 2024}, {"file-1"}),
        ({"type": "lte", "key": "year", "value": 2024.0}, {"file-1", "file-2"}),
        ({"type": "in", "key": "dept", "value": ["ops", "hr"]}, {"file-2", "file-3"}),
        ({"type": "nin", "key": "dept", "value": ["ops", "hr"]}, {"file-1"}),
        ({"type": "eq", "key": "draft", "value": True}, {"file-3"}),
        ({"type": "eq", "key": "year", "value": "2023"}, set()),  # no string/number coercion
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "dept", "value": "ops"},
                    {
                        "type": "and",
                        "filters": [
                            {"type": "eq", "key": "dept", "value": "sales"},
                            {"type": "lt", "key": "year", "value": 2024},
                        ],
                    },
                ],
            },
            {"file-1", "file-3"},
        ),
    ],
)
def test_filters(index, flt, expected):
    seed(index)
    for mode in ix.MODES:
        hits = index.search(
            ["vs_a"], "refund vacation cafeteria shipping", unit(0, 1, 2, 3), k=10, filters=flt, mode=mode
        )
        assert {h.file_id for h in hits} == expected, mode


def test_filter_applies_before_truncation(index):
    records = [rec("vs_f", f"file-{i:03d}", 0, f"alpha document {i}", unit(0), {"keep": False}) for i in range(150)]
    records.append(rec("vs_f", "file-keep", 0, "alpha but far away", unit(7), {"keep": True}))
    index.add(records)
    for mode in ix.MODES:
        hits = index.search(
            ["vs_f"], "alpha", unit(0), k=3, mode=mode, filters={"type": "eq", "key": "keep", "value": True}
        )
        assert [h.file_id for h in hits] == ["file-keep"], mode


def test_invalid_filter_raises_value_error(index):
    seed(index)
    for bad in [
        {"type": "regex", "key": "a", "value": "b"},
        {"type": "and", "filters": []},
        {"type": "in", "key": "a", "value": "x"},
    ]:
        with pytest.raises(ValueError):
            index.search(["vs_a"], "q", unit(0), k=3, filters=bad)


def test_add_replaces_file_and_updates_attributes(index):
    seed(index)
    index.add([rec("vs_a", "file-1", 0, "Completely new content about penguins.", unit(9), {"dept": "zoo"})])
    hits = index.search(["vs_a"], "refund policy shipping", unit(0), k=10, mode="keyword")
    assert "file-1" not in {h.file_id for h in hits}
    [hit] = index.search(["vs_a"], "penguins", unit(9), k=1)
    assert hit.file_id == "file-1" and hit.attributes == {"dept": "zoo"}
    assert index.stats("vs_a")["chunk_count"] == 3
    index.update_attributes("vs_a", "file-1", {"dept": "aquarium"})
    [hit] = index.search(["vs_a"], "penguins", unit(9), k=1, filters={"type": "eq", "key": "dept", "value": "aquarium"})
    assert hit.attributes == {"dept": "aquarium"}
    index.update_attributes("vs_a", "file-1", None)
    [hit] = index.search(["vs_a"], "penguins", unit(9), k=1)
    assert hit.attributes is None


def test_delete_file_and_store(index):
    seed(index)
    index.delete_file("vs_a", "file-2")
    assert "file-2" not in {h.file_id for h in index.search(["vs_a"], "vacation", unit(2), k=10)}
    assert index.stats("vs_a")["file_count"] == 2
    index.delete_store("vs_a")
    assert index.search(["vs_a"], "refund", unit(0), k=10) == []
    assert index.stats("vs_a")["chunk_count"] == 0
    assert index.search(["vs_b"], "refunds", unit(0), k=10)  # other stores untouched


def test_stats(index):
    seed(index)
    s = index.stats("vs_a")
    assert s["chunk_count"] == 4 and s["file_count"] == 3
    assert s["embedding_bytes"] == 4 * DIM * 4
    assert s["usage_bytes"] == s["text_bytes"] + s["embedding_bytes"] > 0


def test_score_threshold(index):
    seed(index)
    hits = index.search(["vs_a"], "zzz", unit(0, 1), k=10, mode="vector")
    assert [round(h.score, 5) for h in hits] == [round(2**-0.5, 5)] * 2 + [0.0] * 2
    assert index.search(["vs_a"], "zzz", unit(0, 1), k=10, mode="vector", score_threshold=0.8) == []
    assert len(index.search(["vs_a"], "zzz", unit(0, 1), k=10, mode="vector", score_threshold=0.7)) == 2
    assert len(index.search(["vs_a"], "zzz", unit(0, 1), k=1, mode="vector", score_threshold=0.7)) == 1


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "'",
        "AND",
        "OR NOT",
        "NEAR(refund, 3)",
        "refund*",
        "text:refund",
        "^refund",
        "(((",
        "a-b-c",
        "-refund",
        "{refund}",
        "refund + policy",
        "日本語の返金",
        "\x00\x01",
        "",
        "   ",
        "null",
        "the of and",
        "x" * 5000,
        'col:"unterminated',
        'refund" OR "1"="1',
    ],
)
def test_hostile_queries_never_error(index, query):
    seed(index)
    for mode in ix.MODES:
        hits = index.search(["vs_a"], query, unit(0), k=5, mode=mode)
        assert all(0.0 <= h.score <= 1.0 for h in hits)


def test_other_index_instance_sees_writes(db_engine):
    # Two instances stand for two worker processes sharing the database: caches must not go stale.
    a, b = make_index(db_engine), make_index(db_engine)
    a.add([rec("vs_c", "file-1", 0, "first version", unit(0))])
    assert b.search(["vs_c"], "first", unit(0), k=1, mode="vector")[0].text == "first version"
    a.add([rec("vs_c", "file-1", 0, "second version", unit(0))])
    assert b.search(["vs_c"], "x", unit(0), k=1, mode="vector")[0].text == "second version"
    a.delete_store("vs_c")
    assert b.search(["vs_c"], "x", unit(0), k=1, mode="vector") == []
    a.add([rec("vs_c", "file-2", 0, "recreated", unit(1))])
    assert b.search(["vs_c"], "x", unit(1), k=1, mode="vector")[0].text == "recreated"


def test_other_dimensions_are_kept_apart(index):
    seed(index)
    index.add([rec("vs_a", "file-small", 0, "refund in a small model", unit(0, dim=16))])
    hits = index.search(["vs_a"], "refund", unit(0, dim=16), k=10, mode="vector")
    assert [h.file_id for h in hits] == ["file-small"]
    assert "file-small" not in {h.file_id for h in index.search(["vs_a"], "q", unit(0), k=10, mode="vector")}


def test_rejects_bad_input(index):
    with pytest.raises(ValueError):
        index.add([rec("vs_a", "f", 0, "x", unit(0)), rec("vs_a", "f", 0, "y", unit(1))])
    with pytest.raises(ValueError):
        index.add([rec("vs_a", "f", 0, "x", np.full(DIM, np.nan, dtype=np.float32))])
    with pytest.raises(ValueError):
        index.search(["vs_a"], "q", unit(0), k=0)
    with pytest.raises(ValueError):
        index.search(["vs_a"], "q", unit(0), k=3, mode="fuzzy")


def test_postgres_hnsw_path(request, monkeypatch):
    from support.server import selected_backends

    if "postgres" not in selected_backends():
        pytest.skip("postgres backend not selected (THREADLINE_TEST_BACKENDS)")
    from threadline.store.db import create_engine
    from threadline.store.migrate import upgrade

    db_engine = create_engine(request.getfixturevalue("pg_cluster").create_database())
    upgrade(db_engine)
    from threadline.retrieval import index_postgres

    monkeypatch.setattr(index_postgres, "EXACT_SCAN_MAX_CHUNKS", 0)
    index = make_index(db_engine)
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(20, DIM)).astype(np.float32)
    records = []
    for i in range(400):
        v = centers[i % 20] + rng.normal(scale=0.1, size=DIM).astype(np.float32)
        records.append(rec("vs_h", f"file-{i}", 0, f"doc {i}", v / np.linalg.norm(v)))
    index.add(records)
    index.add([rec("vs_other", "file-x", 0, "other store", records[0].embedding)])
    hits = index.search(["vs_h"], "", records[7].embedding, k=5, mode="vector")
    assert hits[0].file_id == "file-7" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert {h.vector_store_id for h in hits} == {"vs_h"}
    assert all(int(h.file_id.split("-")[1]) % 20 == 7 for h in hits)
    with db_engine.connect() as conn:  # the query really can use the HNSW index
        plan = conn.execute(
            sa.text(
                "EXPLAIN SELECT id FROM chunks WHERE dim = 384 ORDER BY embedding::vector(384) <=> "
                "CAST(:q AS vector(384)) LIMIT 5"
            ),
            {"q": "[" + ",".join(["0.1"] * DIM) + "]"},
        ).all()
    assert "ix_chunks_hnsw_384" in " ".join(r[0] for r in plan)
    db_engine.dispose()


def test_end_to_end_with_real_embedder(index, embedder):
    from threadline.retrieval.chunking import chunk_text

    docs = {
        "file-solar": "Photovoltaic panels turn sunlight into electrical power. " * 20,
        "file-bake": "Preheat the oven, whisk the eggs with sugar, fold in the flour and bake the cake. " * 20,
        "file-tax": "Quarterly VAT returns must be filed within one month after the period ends. " * 20,
    }
    records = []
    for fid, text in docs.items():
        chunks = chunk_text(text, 100, 20)
        vecs = embedder.embed([c.text for c in chunks])
        records += [
            ChunkRecord("vs_e", fid, i, c.text, c.token_count, v, None)
            for i, (c, v) in enumerate(zip(chunks, vecs, strict=True))
        ]
    index.add(records)
    for query, expected in [
        ("how do solar cells generate electricity", "file-solar"),
        ("cake recipe", "file-bake"),
        ("deadline for tax filing", "file-tax"),
    ]:
        for mode in ix.MODES:
            hits = index.search(["vs_e"], query, embedder.embed([query])[0], k=3, mode=mode)
            if mode == "keyword" and not hits:
                continue
            assert hits[0].file_id == expected, (query, mode)


def test_sqlite_keyword_budget_keeps_rare_terms(tmp_path, monkeypatch):
    from threadline.store.db import create_engine
    from threadline.store.migrate import upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(engine)
    index = make_index(engine)
    records = [rec("vs_k", f"file-{i}", 0, f"common words in document {i}", unit(1)) for i in range(60)]
    records.append(rec("vs_k", "file-rare", 0, "common words plus zygomorphic flowers", unit(2)))
    index.add(records)
    monkeypatch.setattr(index, "keyword_postings_budget", 10)
    hits = index.search(["vs_k"], "common zygomorphic", unit(3), k=3, mode="keyword")
    assert [h.file_id for h in hits] == ["file-rare"]  # the common term (61 rows) was dropped
    monkeypatch.setattr(index, "keyword_postings_budget", 10_000)
    hits = index.search(["vs_k"], "common zygomorphic", unit(3), k=100, mode="keyword")
    assert hits[0].file_id == "file-rare" and len(hits) == 61

"""file_search chunk index: chunk rows with embeddings, per-file attributes, keyword index.

SQLite: FTS5 external-content table kept in sync by triggers; embeddings as float32 blobs (searched exactly
from in-memory matrices). PostgreSQL: generated tsvector + GIN, pgvector column + HNSW (cosine) per dimension.
"""

from alembic import op

revision = "0002"
down_revision = "0001"

# Dimension of the default local embedder; other dimensions get their HNSW index when first used.
DEFAULT_DIM = 384

_SQLITE = [
    """CREATE TABLE chunk_stores (
        vector_store_id VARCHAR(64) PRIMARY KEY,
        version INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE chunk_files (
        vector_store_id VARCHAR(64) NOT NULL,
        file_id VARCHAR(64) NOT NULL,
        attributes TEXT,
        chunk_count INTEGER NOT NULL,
        text_bytes INTEGER NOT NULL,
        embedding_bytes INTEGER NOT NULL,
        PRIMARY KEY (vector_store_id, file_id)
    )""",
    """CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        vector_store_id VARCHAR(64) NOT NULL,
        file_id VARCHAR(64) NOT NULL,
        chunk_index INTEGER NOT NULL,
        text TEXT NOT NULL,
        token_count INTEGER NOT NULL,
        dim INTEGER NOT NULL,
        embedding BLOB NOT NULL
    )""",
    "CREATE UNIQUE INDEX ix_chunks_file ON chunks (vector_store_id, file_id, chunk_index)",
    """CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER chunks_fts_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER chunks_fts_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER chunks_fts_au AFTER UPDATE OF text ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
    END""",
]

_POSTGRES = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    """CREATE TABLE chunk_stores (
        vector_store_id VARCHAR(64) PRIMARY KEY,
        version BIGINT NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE chunk_files (
        vector_store_id VARCHAR(64) NOT NULL,
        file_id VARCHAR(64) NOT NULL,
        attributes TEXT,
        chunk_count INTEGER NOT NULL,
        text_bytes BIGINT NOT NULL,
        embedding_bytes BIGINT NOT NULL,
        PRIMARY KEY (vector_store_id, file_id)
    )""",
    """CREATE TABLE chunks (
        id BIGSERIAL PRIMARY KEY,
        vector_store_id VARCHAR(64) NOT NULL,
        file_id VARCHAR(64) NOT NULL,
        chunk_index INTEGER NOT NULL,
        text TEXT NOT NULL,
        token_count INTEGER NOT NULL,
        dim INTEGER NOT NULL,
        embedding vector NOT NULL,
        tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
    )""",
    "CREATE UNIQUE INDEX ix_chunks_file ON chunks (vector_store_id, file_id, chunk_index)",
    "CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)",
    f"""CREATE INDEX ix_chunks_hnsw_{DEFAULT_DIM} ON chunks
        USING hnsw ((embedding::vector({DEFAULT_DIM})) vector_cosine_ops) WHERE dim = {DEFAULT_DIM}""",
]


def upgrade() -> None:
    statements = _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRES
    for sql in statements:
        op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("chunks_fts_ai", "chunks_fts_ad", "chunks_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.execute("DROP TABLE IF EXISTS chunks")
    op.execute("DROP TABLE IF EXISTS chunk_files")
    op.execute("DROP TABLE IF EXISTS chunk_stores")

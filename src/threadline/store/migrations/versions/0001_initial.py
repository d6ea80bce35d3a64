"""Core resources: assistants, threads, messages, runs, steps, files, uploads, vector stores, API keys."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _doc(name: str, *extra: object) -> None:
    op.create_table(
        name,
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        *extra,
    )


def upgrade() -> None:
    _doc("assistants")
    _doc("threads")
    _doc("messages", sa.Column("thread_id", sa.String(64), nullable=False), sa.Column("run_id", sa.String(64)))
    op.create_index("ix_messages_thread", "messages", ["thread_id", "seq"])
    _doc(
        "runs",
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("assistant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
    )
    op.create_index("ix_runs_thread_status", "runs", ["thread_id", "status"])
    op.create_index("ix_runs_status", "runs", ["status"])
    _doc("run_steps", sa.Column("run_id", sa.String(64), nullable=False), sa.Column("thread_id", sa.String(64)))
    op.create_index("ix_run_steps_run", "run_steps", ["run_id", "seq"])
    _doc(
        "files",
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=False),
    )
    op.create_index("ix_files_purpose", "files", ["purpose", "seq"])
    _doc(
        "uploads",
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    _doc(
        "upload_parts",
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=False),
    )
    op.create_index("ix_upload_parts_upload", "upload_parts", ["upload_id"])
    _doc("vector_stores", sa.Column("expires_at", sa.BigInteger))
    op.create_table(
        "vector_store_files",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.UniqueConstraint("vector_store_id", "file_id", name="uq_vector_store_files"),
    )
    op.create_index("ix_vector_store_files_file", "vector_store_files", ["file_id"])
    op.create_index("ix_vector_store_files_batch", "vector_store_files", ["batch_id"])
    _doc("file_batches", sa.Column("vector_store_id", sa.String(64), nullable=False))
    op.create_table(
        "api_keys",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
        sa.Column("name", sa.String(256)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "api_keys",
        "file_batches",
        "vector_store_files",
        "vector_stores",
        "upload_parts",
        "uploads",
        "files",
        "run_steps",
        "runs",
        "messages",
        "threads",
        "assistants",
    ):
        op.drop_table(name)

"""Usage and admin keys: `usage_records` (one row per model call, embedding batch, tool use or daily vector store
size; store/usage.py) and `admin_api_keys` (hashed keys for `/v1/organization/*`)."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False, server_default="proj_default"),
        sa.Column("api_key_id", sa.String(64)),
        sa.Column("model", sa.String(256)),
        sa.Column("provider", sa.String(64)),
        sa.Column("assistant_id", sa.String(64)),
        sa.Column("thread_id", sa.String(64)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("vector_store_id", sa.String(64)),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("quantity", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("data", sa.Text),
    )
    op.create_index("ix_usage_records_kind_time", "usage_records", ["kind", "created_at"])
    op.create_index("ix_usage_records_run", "usage_records", ["run_id"])
    op.create_index("ix_usage_records_thread_kind", "usage_records", ["thread_id", "kind", "created_at"])
    op.create_table(
        "admin_api_keys",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
        sa.Column("name", sa.String(256)),
        sa.Column("redacted_value", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("last_used_at", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("admin_api_keys")
    op.drop_table("usage_records")

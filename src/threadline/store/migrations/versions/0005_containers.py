"""Containers (code_interpreter sandbox sessions exposed as `/v1/containers`) and their files, whose bytes live in
the blob store so that listing, retrieval and downloads survive a restart or a recycled sandbox session."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _doc_columns() -> list[sa.Column]:
    return [
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "containers",
        *_doc_columns(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.BigInteger),
    )
    op.create_index("ix_containers_status_expires", "containers", ["status", "expires_at"])
    op.create_table(
        "container_files",
        *_doc_columns(),
        sa.Column("container_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=False),
    )
    op.create_index("ix_container_files_container", "container_files", ["container_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_container_files_container", "container_files")
    op.drop_table("container_files")
    op.drop_index("ix_containers_status_expires", "containers")
    op.drop_table("containers")

"""vector_store_files.claim_owner / claim_until: the process ingesting a file and until when its claim holds.

Ingestion claims a file before embedding it (renewing the claim while it works), so two server processes never
ingest the same file; the claim of a process that died runs out and another process takes the file.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.add_column("vector_store_files", sa.Column("claim_owner", sa.String(64)))
    op.add_column("vector_store_files", sa.Column("claim_until", sa.Float))
    op.create_index("ix_vector_store_files_status", "vector_store_files", ["status", "seq"])


def downgrade() -> None:
    op.drop_index("ix_vector_store_files_status", "vector_store_files")
    op.drop_column("vector_store_files", "claim_until")
    op.drop_column("vector_store_files", "claim_owner")

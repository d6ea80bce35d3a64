"""usage_records.response_id / container_id: the usage of the Responses API (each model call of a response, its
file_search calls, its code-interpreter container sessions), found by response (`/v1/organization/usage/
responses/{id}`) and counted per container."""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("response_id", sa.String(64)))
    op.add_column("usage_records", sa.Column("container_id", sa.String(64)))
    op.create_index("ix_usage_records_response", "usage_records", ["response_id"])
    op.create_index("ix_usage_records_container_kind", "usage_records", ["container_id", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_container_kind", "usage_records")
    op.drop_index("ix_usage_records_response", "usage_records")
    op.drop_column("usage_records", "container_id")
    op.drop_column("usage_records", "response_id")

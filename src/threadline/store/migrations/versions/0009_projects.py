"""Projects and their keys (`/v1/organization/projects/...`) and the audit log.

- `projects`: `proj_default` ("Default project") is inserted here; it holds everything made with the keys of
  THREADLINE_API_KEYS, the legacy `api_keys` table, admin keys without an `OpenAI-Project` header and open servers.
- `project_service_accounts`: a project's service accounts (`svc_acct_...`).
- `project_api_keys`: SHA-256 hashes of project keys, owned by a service account or by the operator (a user).
- `audit_logs`: one row per recorded change (store/audit.py), its wire object in `data`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(256)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("archived_at", sa.BigInteger),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    )
    op.bulk_insert(projects, [{"id": "proj_default", "name": "Default project", "created_at": 0, "status": "active"}])
    op.create_table(
        "project_service_accounts",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_project_service_accounts_project", "project_service_accounts", ["project_id", "seq"])
    op.create_table(
        "project_api_keys",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("redacted_value", sa.String(64), nullable=False),
        sa.Column("owner_type", sa.String(32), nullable=False),  # service_account | user
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_used_at", sa.BigInteger),
    )
    op.create_index("ix_project_api_keys_project", "project_api_keys", ["project_id", "seq"])
    op.create_index("ix_project_api_keys_owner", "project_api_keys", ["owner_id"])
    op.create_table(
        "audit_logs",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("effective_at", sa.BigInteger, nullable=False),
        sa.Column("project_id", sa.String(64)),
        sa.Column("actor_id", sa.String(64)),
        sa.Column("resource_id", sa.String(64)),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_logs_effective_at", "audit_logs", ["effective_at", "seq"])
    op.create_index("ix_audit_logs_project", "audit_logs", ["project_id", "seq"])


def downgrade() -> None:
    op.drop_table("audit_logs")
    op.drop_table("project_api_keys")
    op.drop_table("project_service_accounts")
    op.drop_table("projects")

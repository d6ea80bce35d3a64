"""Conversations and responses on the same store: `messages.type` (every conversation item is a row of the
thread's append log; Assistants views read only `type = 'message'`), `messages.item` (a message item created through
the Conversations API, kept as sent where the Assistants message object cannot hold all of it), and `responses`
(Responses API objects with the same execution columns as `runs`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A constant server default: SQLite adds the column without rewriting the table, PostgreSQL (11+) without
    # touching the rows, so existing messages are `message` rows at once.
    op.add_column("messages", sa.Column("type", sa.String(32), nullable=False, server_default="message"))
    op.add_column("messages", sa.Column("item", sa.Text))
    op.create_index("ix_messages_thread_type", "messages", ["thread_id", "type", "seq"])
    op.create_table(
        "responses",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("thread_id", sa.String(64)),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("input", sa.Text, nullable=False, server_default="[]"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
    )
    op.create_index("ix_responses_thread_status", "responses", ["thread_id", "status"])
    op.create_index("ix_responses_status", "responses", ["status"])


def downgrade() -> None:
    op.drop_index("ix_responses_status", "responses")
    op.drop_index("ix_responses_thread_status", "responses")
    op.drop_table("responses")
    op.drop_index("ix_messages_thread_type", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("item")
        batch.drop_column("type")

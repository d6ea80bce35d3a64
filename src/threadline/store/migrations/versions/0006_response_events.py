"""The recorded `response.*` events of background responses (`response_events`), so that
`GET /v1/responses/{id}?stream=true&starting_after=N` replays them with their original sequence numbers."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "response_events",
        sa.Column("response_id", sa.String(64), primary_key=True),
        sa.Column("sequence_number", sa.Integer, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("response_events")

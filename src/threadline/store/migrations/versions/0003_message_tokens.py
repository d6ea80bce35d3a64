"""messages.token_count: each message's text tokens, counted once when it is written (tokens.message_text_tokens).

Existing rows are counted here, in pages by seq, so a run never tokenises an old message again.
"""

import orjson
import sqlalchemy as sa
from alembic import op

from threadline.tokens import message_text_tokens

revision = "0003"
down_revision = "0002"

BATCH = 500


def upgrade() -> None:
    op.add_column("messages", sa.Column("token_count", sa.Integer))
    conn = op.get_bind()
    t = sa.table("messages", sa.column("seq", sa.Integer), sa.column("data", sa.Text), sa.column("token_count"))
    after = -1
    while True:
        rows = conn.execute(sa.select(t.c.seq, t.c.data).where(t.c.seq > after).order_by(t.c.seq).limit(BATCH)).all()
        if not rows:
            break
        counts = [{"s": seq, "n": message_text_tokens(orjson.loads(data))} for seq, data in rows]
        conn.execute(t.update().where(t.c.seq == sa.bindparam("s")).values(token_count=sa.bindparam("n")), counts)
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("token_count")

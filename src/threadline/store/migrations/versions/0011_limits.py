"""Limits: per-project, per-model rate limits, hard spend limits (organization and projects), spend alerts and
when each fired, the rate limits' per-minute counters, and the version counter every change bumps (store/limits.py).
Also an index for the current period's spend of one project."""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "spend_limits",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("threshold_amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("interval", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "spend_alerts",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_spend_alerts_scope", "spend_alerts", ["scope", "seq"])
    op.create_table(
        "spend_alert_firings",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("fired_at", sa.BigInteger, nullable=False),
        sa.Column("spend_amount", sa.Float, nullable=False),
    )
    op.create_table(
        "rate_limit_counts",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    version = op.create_table(
        "limits_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])
    op.create_index("ix_usage_records_project_time", "usage_records", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_project_time", "usage_records")
    for table in (
        "limits_version",
        "rate_limit_counts",
        "spend_alert_firings",
        "spend_alerts",
        "spend_limits",
        "rate_limits",
    ):
        op.drop_table(table)

"""signals: per-partner daily facts and snapshots, and active users per day

Revision ID: 0021_signals
Revises: 0020_webhooks
Create Date: 2026-12-05 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0021_signals"
down_revision: str | None = "0020_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _s(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    counts = [
        "sales", "reversals", "claims_submitted", "claims_approved", "claims_rejected",
        "risk_flags", "deals_registered", "deals_won", "deals_lost",
    ]  # fmt: skip
    money = ["sales_minor", "reversed_minor", "margin_minor", "earnings_minor",
             "pipeline_delta_minor"]  # fmt: skip
    op.create_table(
        "signal_fact",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("currency", _s(3), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in counts[:2]],
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in money[:3]],
        sa.Column("earnings_minor", sa.BigInteger(), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in counts[2:]],
        sa.Column("pipeline_delta_minor", sa.BigInteger(), nullable=False),
        sa.Column("response_seconds", sa.JSON(), nullable=False),
        _fk("signal_fact", "partner_id", "partner"),
        _fk("signal_fact", "vendor_id", "vendor"),
        sa.PrimaryKeyConstraint("partner_id", "day", name=op.f("pk_signal_fact")),
    )
    op.create_index("ix_signal_fact_vendor_day", "signal_fact", ["vendor_id", "day"])
    op.create_table(
        "signal_snapshot",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("currency", _s(3), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("computed_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        _fk("signal_snapshot", "partner_id", "partner"),
        _fk("signal_snapshot", "vendor_id", "vendor"),
        sa.PrimaryKeyConstraint("partner_id", "day", name=op.f("pk_signal_snapshot")),
    )
    op.create_index("ix_signal_snapshot_vendor_day", "signal_snapshot", ["vendor_id", "day"])
    op.create_table(
        "signal_active_user",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        _fk("signal_active_user", "partner_id", "partner"),
        _fk("signal_active_user", "user_id", "user_account"),
        _fk("signal_active_user", "vendor_id", "vendor"),
        sa.PrimaryKeyConstraint("partner_id", "day", "user_id", name=op.f("pk_signal_active_user")),
    )
    op.create_index("ix_signal_active_user_vendor_day", "signal_active_user", ["vendor_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_signal_active_user_vendor_day", table_name="signal_active_user")
    op.drop_table("signal_active_user")
    op.drop_index("ix_signal_snapshot_vendor_day", table_name="signal_snapshot")
    op.drop_table("signal_snapshot")
    op.drop_index("ix_signal_fact_vendor_day", table_name="signal_fact")
    op.drop_table("signal_fact")

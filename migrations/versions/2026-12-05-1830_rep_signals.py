"""rep signals: per partner, rep and day, the facts of the source rows naming the rep and the
rep's snapshot

Revision ID: 0027_rep_signals
Revises: 0026_signal_basis
Create Date: 2026-12-05 18:30:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0027_rep_signals"
down_revision: str | None = "0026_signal_basis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def _key(table: str) -> list[Any]:
    return [
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("rep_user_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        _fk(table, "partner_id", "partner"),
        _fk(table, "vendor_id", "vendor"),
        sa.PrimaryKeyConstraint("partner_id", "rep_user_id", "day", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "signal_rep_fact",
        *_key("signal_rep_fact"),
        sa.Column("sales", sa.Integer(), nullable=False),
        sa.Column("sales_minor", sa.BigInteger(), nullable=False),
        sa.Column("reversals", sa.Integer(), nullable=False),
        sa.Column("reversed_minor", sa.BigInteger(), nullable=False),
        sa.Column("claims_submitted", sa.Integer(), nullable=False),
        sa.Column("deals_registered", sa.Integer(), nullable=False),
        sa.Column("deals_won", sa.Integer(), nullable=False),
        sa.Column("deals_lost", sa.Integer(), nullable=False),
        sa.Column("pipeline_delta_minor", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_signal_rep_fact_vendor_day", "signal_rep_fact", ["vendor_id", "day"])
    op.create_table(
        "signal_rep_snapshot",
        *_key("signal_rep_snapshot"),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("computed_at", infra.db.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_signal_rep_snapshot_vendor_day", "signal_rep_snapshot", ["vendor_id", "day"]
    )


def downgrade() -> None:
    op.drop_index("ix_signal_rep_snapshot_vendor_day", table_name="signal_rep_snapshot")
    op.drop_table("signal_rep_snapshot")
    op.drop_index("ix_signal_rep_fact_vendor_day", table_name="signal_rep_fact")
    op.drop_table("signal_rep_fact")

"""outbox dead letters: per-event attempts, backoff, dead-letter and operator columns, and
the dispatch lease

Revision ID: 0009_outbox_dead_letters
Revises: 0008_frozen_period_version
Create Date: 2026-12-05 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0009_outbox_dead_letters"
down_revision: str | None = "0008_frozen_period_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        for name in ("next_attempt_at", "dead_at", "retried_at", "discarded_at"):
            batch_op.add_column(sa.Column(name, infra.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "last_error_type", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True)
        )
        batch_op.add_column(
            sa.Column("retried_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column("discarded_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.create_index("ix_outbox_event_dead", ["dead_at"], unique=False)

    op.create_table(
        "outbox_lease",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("expires_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("passes", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_outbox_lease")),
    )


def downgrade() -> None:
    op.drop_table("outbox_lease")
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_event_dead")
        for name in (
            "discarded_by", "retried_by", "last_error", "last_error_type", "discarded_at",
            "retried_at", "dead_at", "next_attempt_at", "attempts",
        ):  # fmt: skip
            batch_op.drop_column(name)

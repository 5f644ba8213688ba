"""outbox partitions: each event's slot, partition leases and the dispatchers holding them

Revision ID: 0024_outbox_partitions
Revises: 0023_pilots
Create Date: 2026-12-05 15:40:00

Events recorded before this revision get slot 0 (one partition, in commit order among
themselves): let a dispatcher drain the outbox before raising
CHANNELBOARD_OUTBOX_PARTITIONS above 1.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0024_outbox_partitions"
down_revision: str | None = "0023_pilots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("partition_slot", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "outbox_partition",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("expires_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_outbox_partition")),
    )
    op.create_table(
        "outbox_dispatcher",
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("seen_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_outbox_dispatcher")),
    )


def downgrade() -> None:
    op.drop_table("outbox_dispatcher")
    op.drop_table("outbox_partition")
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_column("partition_slot")

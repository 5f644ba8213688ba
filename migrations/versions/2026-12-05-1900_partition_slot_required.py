"""outbox_event.partition_slot without a server default: an event inserted without its slot
fails (NOT NULL) instead of landing in slot 0, out of order with its partner's other events

Revision ID: 0028_partition_slot_required
Revises: 0027_rep_signals
Create Date: 2026-12-05 19:00:00

Every row already has a slot (0024 gave the older ones 0), so nothing is backfilled.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_partition_slot_required"
down_revision: str | None = "0027_rep_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.alter_column(
            "partition_slot", existing_type=sa.Integer(), existing_nullable=False,
            server_default=None,
        )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.alter_column(
            "partition_slot", existing_type=sa.Integer(), existing_nullable=False,
            server_default="0",
        )  # fmt: skip

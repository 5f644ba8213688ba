"""rep snapshots keep their basis (as partner snapshots do), so an event of the day moves a
rep's snapshot without re-reading its windows

Revision ID: 0029_rep_basis
Revises: 0028_partition_slot_required
Create Date: 2026-12-05 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_rep_basis"
down_revision: str | None = "0028_partition_slot_required"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signal_rep_snapshot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("basis", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signal_rep_snapshot", schema=None) as batch_op:
        batch_op.drop_column("basis")

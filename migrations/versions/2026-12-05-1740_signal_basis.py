"""signal snapshots keep their basis (the sums of the days before the day and the day's own
facts), so an event of the day updates a snapshot without re-reading its windows

Revision ID: 0026_signal_basis
Revises: 0025_rule_budget_committed
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_signal_basis"
down_revision: str | None = "0025_rule_budget_committed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signal_snapshot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("basis", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signal_snapshot", schema=None) as batch_op:
        batch_op.drop_column("basis")

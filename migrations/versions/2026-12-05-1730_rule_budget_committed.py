"""incentive rule budgets spent atomically: what a rule's rate actions have committed
(their estimated costs), kept on the rule so concurrent and later runs count it

Revision ID: 0025_rule_budget_committed
Revises: 0024_outbox_partitions
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_rule_budget_committed"
down_revision: str | None = "0024_outbox_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incentive_rule", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("budget_committed_minor", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("incentive_rule", schema=None) as batch_op:
        batch_op.drop_column("budget_committed_minor")

"""contest board version ceiling (versions never go backwards across Redis loss)

Revision ID: 0010_contest_board_version
Revises: 0009_outbox_dead_letters
Create Date: 2026-12-05 12:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_contest_board_version"
down_revision: str | None = "0009_outbox_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contest_board_version",
        sa.Column("contest_id", sa.Uuid(), nullable=False),
        sa.Column("ceiling", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contest_id"], ["contest.id"], name=op.f("fk_contest_board_version_contest_id_contest")
        ),
        sa.PrimaryKeyConstraint("contest_id", name=op.f("pk_contest_board_version")),
    )


def downgrade() -> None:
    op.drop_table("contest_board_version")

"""an audit entry keeps its reason whole: TEXT, not VARCHAR(2000), on PostgreSQL

Revision ID: 0036_audit_reason_text
Revises: 0035_money_columns_64_bits
Create Date: 2026-12-06 14:00:00

Each service bounds the reasons and notes it accepts; the audit entry copies what it was
given. A cap on the copy failed the change's whole transaction on PostgreSQL when a service
passed on a longer note. PostgreSQL only: SQLite does not enforce VARCHAR lengths, and
rebuilding the table would drop its append-only triggers (0032).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036_audit_reason_text"
down_revision: str | None = "0035_money_columns_64_bits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "audit_entry", "reason", type_=sa.Text(), existing_type=sa.String(2000),
        existing_nullable=True,
    )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    # Fails, keeping every reason whole, while one is over 2,000 characters.
    op.alter_column(
        "audit_entry", "reason", type_=sa.String(2000), existing_type=sa.Text(),
        existing_nullable=True,
    )  # fmt: skip

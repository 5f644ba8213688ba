"""rule firings keep the currency of the signal values they read (the vendor's signal
currency, not the rule's): a partner's explanation formats that money in it

Revision ID: 0033_firing_signal_currency
Revises: 0032_append_only_triggers
Create Date: 2026-12-06 11:00:00

A nullable column set when a firing is written; existing firings keep null (no backfill:
the table is append-only, its trigger refuses any UPDATE) and are explained in the
vendor's signal currency at read time. A plain ``ALTER TABLE`` on SQLite too, never a
batch rebuild: a rebuilt table would lose its append-only trigger.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0033_firing_signal_currency"
down_revision: str | None = "0032_append_only_triggers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "incentive_rule_firing",
        sa.Column("signal_currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    )


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place, keeping the table's triggers.
    op.execute("ALTER TABLE incentive_rule_firing DROP COLUMN signal_currency")

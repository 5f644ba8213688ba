"""every amount in minor units has 64 bits: nine columns were PostgreSQL INTEGERs (32
bits), refusing anything above 21,474,836.47 USD with a database error while the API
accepts list prices, claim amounts and budget caps up to 10^12 minor units and more

Revision ID: 0035_money_columns_64_bits
Revises: 0034_rule_budget_changes
Create Date: 2026-12-06 13:00:00

PostgreSQL only: SQLite's INTEGER already holds 64 bits, and rebuilding its tables (the
only way SQLite changes a column's declared type) would drop the append-only triggers of
the ledger (0032). The models declare BIGINT; on SQLite the declared INTEGER stays.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035_money_columns_64_bits"
down_revision: str | None = "0034_rule_budget_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("product", "list_price_minor", False),
    ("sales_settings", "auto_approve_limit_minor", False),
    ("sale_claim", "amount_minor", False),
    ("earning_source", "revenue_minor", False),
    ("earning_source", "margin_minor", False),
    ("earning_entry", "amount_minor", False),
    ("payout_statement", "total_minor", False),
    ("payout_decision", "amount_minor", False),
    ("incentive_rule", "budget_cap_minor", True),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=sa.BigInteger(), existing_type=sa.Integer(),
            existing_nullable=nullable,
        )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=sa.Integer(), existing_type=sa.BigInteger(),
            existing_nullable=nullable,
        )  # fmt: skip

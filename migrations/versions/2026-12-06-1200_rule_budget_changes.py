"""a loosening of an approved rule's budget (a higher cap, no cap, another currency) waits
for a second vendor admin: the pending (and decided) budget changes

Revision ID: 0034_rule_budget_changes
Revises: 0033_firing_signal_currency
Create Date: 2026-12-06 12:00:00

A new table only; rules keep their budgets. At most one change is pending per rule (a
partial unique index, on SQLite and PostgreSQL alike).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0034_rule_budget_changes"
down_revision: str | None = "0033_firing_signal_currency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "uq_incentive_rule_budget_change_pending"


def upgrade() -> None:
    op.create_table(
        "incentive_rule_budget_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "APPLIED",
                "CANCELLED",
                "SUPERSEDED",
                name="incentive_budget_change_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),  # fmt: skip
        sa.Column("from_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("from_currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("to_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("to_currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("requested_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Uuid(), nullable=True),
        sa.Column("decided_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["user_account.id"],
            name=op.f("fk_incentive_rule_budget_change_decided_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["user_account.id"],
            name=op.f("fk_incentive_rule_budget_change_requested_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["incentive_rule.id"],
            name=op.f("fk_incentive_rule_budget_change_rule_id_incentive_rule"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendor.id"],
            name=op.f("fk_incentive_rule_budget_change_vendor_id_vendor"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_rule_budget_change")),
    )
    with op.batch_alter_table("incentive_rule_budget_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_budget_change_rule_id"), ["rule_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_budget_change_vendor_id"), ["vendor_id"], unique=False
        )
        batch_op.create_index(
            PENDING,
            ["rule_id"],
            unique=True,
            sqlite_where=sa.text("status = 'PENDING'"),
            postgresql_where=sa.text("status = 'PENDING'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("incentive_rule_budget_change", schema=None) as batch_op:
        batch_op.drop_index(PENDING)
        batch_op.drop_index(batch_op.f("ix_incentive_rule_budget_change_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_incentive_rule_budget_change_rule_id"))
    op.drop_table("incentive_rule_budget_change")

"""incentive rule activations: a firing is unique per (version, activation, partner,
period), so a version made active again by a rollback fires anew; what a rule change ended
of a firing is recorded beside it (the firing stays immutable)

Revision ID: 0031_rule_activations
Revises: 0030_decision_partner
Create Date: 2026-12-06 09:00:00

Rules and firings there are now are activation 0: the active version's firings keep
counting for its current activation (nothing fires twice after the upgrade). A downgrade
refuses while a version has fired twice for a partner in one period (in two activations):
the old key cannot hold them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import infra.db

revision: str = "0031_rule_activations"
down_revision: str | None = "0030_decision_partner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_incentive_rule_firing_version_id_partner_id_period_key"
NEW_KEY = "uq_incentive_rule_firing_version_activation_partner_period"


def upgrade() -> None:
    with op.batch_alter_table("incentive_rule", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("activation", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("incentive_rule_firing", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("activation", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.drop_constraint(OLD_KEY, type_="unique")
        batch_op.create_unique_constraint(
            NEW_KEY, ["version_id", "activation", "partner_id", "period_key"]
        )
    op.create_table(
        "incentive_rule_firing_end",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("firing_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column(
            "cause",
            sa.Enum(
                "NEW_VERSION",
                "ROLLED_BACK",
                name="incentive_end_cause",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),  # fmt: skip
        sa.Column("ended_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("effects", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["firing_id"],
            ["incentive_rule_firing.id"],
            name=op.f("fk_incentive_rule_firing_end_firing_id_incentive_rule_firing"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partner.id"],
            name=op.f("fk_incentive_rule_firing_end_partner_id_partner"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["incentive_rule.id"],
            name=op.f("fk_incentive_rule_firing_end_rule_id_incentive_rule"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_incentive_rule_firing_end_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_rule_firing_end")),
    )
    with op.batch_alter_table("incentive_rule_firing_end", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_firing_end_firing_id"), ["firing_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_firing_end_vendor_id"), ["vendor_id"], unique=False
        )


def downgrade() -> None:
    twice = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT version_id, partner_id, period_key FROM incentive_rule_firing "
                "GROUP BY version_id, partner_id, period_key HAVING COUNT(*) > 1"
            )
        )
        .first()
    )
    if twice is not None:
        raise RuntimeError(
            "Cannot downgrade below 0031_rule_activations: a rule version fired twice for a "
            f"partner in one period, in two activations (version {twice[0]}, partner "
            f"{twice[1]}, period {twice[2]}); the old key (version, partner, period) cannot "
            "hold both firings."
        )
    with op.batch_alter_table("incentive_rule_firing_end", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incentive_rule_firing_end_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_incentive_rule_firing_end_firing_id"))
    op.drop_table("incentive_rule_firing_end")
    with op.batch_alter_table("incentive_rule_firing", schema=None) as batch_op:
        batch_op.drop_constraint(NEW_KEY, type_="unique")
        batch_op.create_unique_constraint(OLD_KEY, ["version_id", "partner_id", "period_key"])
        batch_op.drop_column("activation")
    with op.batch_alter_table("incentive_rule", schema=None) as batch_op:
        batch_op.drop_column("activation")

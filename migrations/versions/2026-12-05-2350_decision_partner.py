"""a claim decision keeps its claim's partner, indexed with the decision's instant, and risk
flags are indexed by vendor and instant: the signal handlers read a partner's decisions
and flags of the day at every approval, which walked all of the vendor's claims

Revision ID: 0030_decision_partner
Revises: 0029_rep_basis
Create Date: 2026-12-05 23:50:00

The partner is copied from each decision's claim (a claim never changes partner). Deploy:
stop the old version's API processes before migrating (docs/deploy.md): they write
decisions without the partner, which the new column refuses.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_decision_partner"
down_revision: str | None = "0029_rep_basis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sale_claim_decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("partner_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE sale_claim_decision SET partner_id = (SELECT sale_claim.partner_id "
        "FROM sale_claim WHERE sale_claim.id = sale_claim_decision.claim_id)"
    )
    with op.batch_alter_table("sale_claim_decision", schema=None) as batch_op:
        batch_op.alter_column("partner_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            "fk_sale_claim_decision_partner_id_partner", "partner", ["partner_id"], ["id"]
        )
        batch_op.create_index(
            "ix_sale_claim_decision_partner_id_decided_at", ["partner_id", "decided_at"]
        )
    with op.batch_alter_table("sale_claim_risk_flag", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sale_claim_risk_flag_vendor_id_created_at", ["vendor_id", "created_at"]
        )
        # What the vendor's index served, the new one serves (its first column).
        batch_op.drop_index("ix_sale_claim_risk_flag_vendor_id")


def downgrade() -> None:
    with op.batch_alter_table("sale_claim_risk_flag", schema=None) as batch_op:
        batch_op.create_index("ix_sale_claim_risk_flag_vendor_id", ["vendor_id"])
        batch_op.drop_index("ix_sale_claim_risk_flag_vendor_id_created_at")
    with op.batch_alter_table("sale_claim_decision", schema=None) as batch_op:
        batch_op.drop_index("ix_sale_claim_decision_partner_id_decided_at")
        batch_op.drop_constraint("fk_sale_claim_decision_partner_id_partner", type_="foreignkey")
        batch_op.drop_column("partner_id")

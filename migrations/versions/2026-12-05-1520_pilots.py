"""pilots with control groups: a pilot over an eligible partner group (seed, planned end,
status, its treatment arm's group) and each partner's recorded arm and stratum; a group
managed by another domain (partner_group.managed_by)

Revision ID: 0023_pilots
Revises: 0022_incentives
Create Date: 2026-12-05 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0023_pilots"
down_revision: str | None = "0022_incentives"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partner_group", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("managed_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
    op.create_table(
        "pilot",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("treatment_group_id", sa.Uuid(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("DRAFT", "RUNNING", "ENDED", name="pilot_status", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("ends_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["partner_group.id"], name=op.f("fk_pilot_group_id_partner_group")
        ),
        sa.ForeignKeyConstraint(
            ["treatment_group_id"],
            ["partner_group.id"],
            name=op.f("fk_pilot_treatment_group_id_partner_group"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_pilot_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pilot")),
        sa.UniqueConstraint("treatment_group_id", name=op.f("uq_pilot_treatment_group_id")),
        sa.UniqueConstraint("vendor_id", "name", name=op.f("uq_pilot_vendor_id_name")),
    )
    with op.batch_alter_table("pilot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pilot_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "pilot_assignment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("pilot_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column(
            "arm",
            sa.Enum("TREATMENT", "CONTROL", name="pilot_arm", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("stratum", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_pilot_assignment_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["pilot_id"], ["pilot.id"], name=op.f("fk_pilot_assignment_pilot_id_pilot")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_pilot_assignment_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pilot_assignment")),
        sa.UniqueConstraint(
            "pilot_id", "partner_id", name=op.f("uq_pilot_assignment_pilot_id_partner_id")
        ),
    )
    with op.batch_alter_table("pilot_assignment", schema=None) as batch_op:
        batch_op.create_index("ix_pilot_assignment_partner", ["partner_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pilot_assignment_pilot_id"), ["pilot_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pilot_assignment_vendor_id"), ["vendor_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pilot_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pilot_assignment_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_pilot_assignment_pilot_id"))
        batch_op.drop_index("ix_pilot_assignment_partner")

    op.drop_table("pilot_assignment")
    with op.batch_alter_table("pilot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pilot_vendor_id"))

    op.drop_table("pilot")
    with op.batch_alter_table("partner_group", schema=None) as batch_op:
        batch_op.drop_column("managed_by")

"""partner groups with membership history, program tier history, programs that target
groups (kind BASE/BONUS; existing programs become BASE programs for every partner), contest
eligibility by partner group

Revision ID: 0015_partner_groups
Revises: 0014_partner_admin
Create Date: 2026-12-05 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0015_partner_groups"
down_revision: str | None = "0014_partner_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _s(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _at() -> infra.db.UTCDateTime:
    return infra.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partner_group",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("name", _s(200), nullable=False),
        sa.Column("description", _s(2000), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("archived_at", _at(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("updated_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_group_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_group")),
        sa.UniqueConstraint("vendor_id", "name", name=op.f("uq_partner_group_vendor_id_name")),
    )
    with op.batch_alter_table("partner_group", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partner_group_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "partner_group_member",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum("INCLUDE", "EXCLUDE", name="member_mode", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("created_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["partner_group.id"],
            name=op.f("fk_partner_group_member_group_id_partner_group"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_partner_group_member_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_group_member_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_group_member")),
        sa.UniqueConstraint(
            "group_id", "partner_id", name=op.f("uq_partner_group_member_group_id_partner_id")
        ),
    )
    with op.batch_alter_table("partner_group_member", schema=None) as batch_op:
        for column in ("group_id", "partner_id", "vendor_id"):
            batch_op.create_index(
                batch_op.f(f"ix_partner_group_member_{column}"), [column], unique=False
            )

    op.create_table(
        "partner_group_membership",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("joined_at", _at(), nullable=False),
        sa.Column("left_at", _at(), nullable=True),
        sa.Column("join_reason", _s(500), nullable=False),
        sa.Column("joined_by", _s(100), nullable=False),
        sa.Column("left_reason", _s(500), nullable=True),
        sa.Column("left_by", _s(100), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["partner_group.id"],
            name=op.f("fk_partner_group_membership_group_id_partner_group"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partner.id"],
            name=op.f("fk_partner_group_membership_partner_id_partner"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_group_membership_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_group_membership")),
    )
    with op.batch_alter_table("partner_group_membership", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partner_group_membership_group", ["group_id", "joined_at"], unique=False
        )
        batch_op.create_index(
            "ix_partner_group_membership_partner", ["partner_id", "joined_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_group_membership_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "partner_tier_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("from_tier", _s(32), nullable=False),
        sa.Column("to_tier", _s(32), nullable=False),
        sa.Column("reason", _s(500), nullable=False),
        sa.Column("changed_by", _s(100), nullable=False),
        sa.Column("changed_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_partner_tier_change_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_tier_change_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_tier_change")),
    )
    with op.batch_alter_table("partner_tier_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partner_tier_change_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_tier_change_vendor_id"), ["vendor_id"], unique=False
        )

    with op.batch_alter_table("earning_program", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sa.Enum("BASE", "BONUS", name="program_kind", native_enum=False, length=32),
                server_default="BASE",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("target_group_ids", sa.JSON(), server_default="[]", nullable=False)
        )

    with op.batch_alter_table("contest", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("eligible_group_ids", _s(4000), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("contest", schema=None) as batch_op:
        batch_op.drop_column("eligible_group_ids")
    with op.batch_alter_table("earning_program", schema=None) as batch_op:
        batch_op.drop_column("target_group_ids")
        batch_op.drop_column("kind")
    op.drop_table("partner_tier_change")
    op.drop_table("partner_group_membership")
    op.drop_table("partner_group_member")
    op.drop_table("partner_group")

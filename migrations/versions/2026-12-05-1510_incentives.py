"""incentives: rules, versions, firings, recommendations, the daily run; rate overlays and
payout reviews in earnings (placed by rules), a ledger entry's overlay, a hold's partner note

Revision ID: 0022_incentives
Revises: 0021_signals
Create Date: 2026-12-05 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0022_incentives"
down_revision: str | None = "0021_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incentive_daily_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("firings", sa.Integer(), nullable=False),
        sa.Column("ran_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_incentive_daily_run_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_daily_run")),
        sa.UniqueConstraint("vendor_id", "day", name=op.f("uq_incentive_daily_run_vendor_id_day")),
    )
    op.create_table(
        "earning_rate_overlay",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("delta_bp", sa.Integer(), nullable=False),
        sa.Column("starts_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("delta_bp <> 0", name=op.f("ck_earning_rate_overlay_delta_not_zero")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_earning_rate_overlay_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["earning_program.id"],
            name=op.f("fk_earning_rate_overlay_program_id_earning_program"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_earning_rate_overlay_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_earning_rate_overlay")),
    )
    with op.batch_alter_table("earning_rate_overlay", schema=None) as batch_op:
        batch_op.create_index(
            "ix_earning_rate_overlay_partner", ["partner_id", "starts_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_earning_rate_overlay_source_id"), ["source_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_earning_rate_overlay_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "payout_review",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("partner_note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("internal_note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("starts_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_payout_review_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_payout_review_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_review")),
    )
    with op.batch_alter_table("payout_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payout_review_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_payout_review_source_id"), ["source_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payout_review_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "incentive_rule",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "DRAFT",
                "ACTIVE",
                "PAUSED",
                name="incentive_rule_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("active_version_id", sa.Uuid(), nullable=True),
        sa.Column("target_group_id", sa.Uuid(), nullable=True),
        sa.Column("budget_cap_minor", sa.Integer(), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("template", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_incentive_rule_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["target_group_id"],
            ["partner_group.id"],
            name=op.f("fk_incentive_rule_target_group_id_partner_group"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_incentive_rule_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_rule")),
        sa.UniqueConstraint("vendor_id", "name", name=op.f("uq_incentive_rule_vendor_id_name")),
    )
    with op.batch_alter_table("incentive_rule", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "incentive_rule_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("condition", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("reads", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column(
            "period",
            sa.Enum("DAY", "WEEK", "MONTH", name="incentive_period", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "DRAFT",
                "APPROVED",
                "DISCARDED",
                name="incentive_version_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_by_id", sa.Uuid(), nullable=True),
        sa.Column("approved_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approval_reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by_id"],
            ["user_account.id"],
            name=op.f("fk_incentive_rule_version_approved_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_incentive_rule_version_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["incentive_rule.id"],
            name=op.f("fk_incentive_rule_version_rule_id_incentive_rule"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_incentive_rule_version_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_rule_version")),
        sa.UniqueConstraint(
            "rule_id", "number", name=op.f("uq_incentive_rule_version_rule_id_number")
        ),
    )
    with op.batch_alter_table("incentive_rule_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_version_rule_id"), ["rule_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_version_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "incentive_rule_firing",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("period_key", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("signal_day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("fired_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_incentive_rule_firing_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["incentive_rule.id"],
            name=op.f("fk_incentive_rule_firing_rule_id_incentive_rule"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_incentive_rule_firing_vendor_id_vendor")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["incentive_rule_version.id"],
            name=op.f("fk_incentive_rule_firing_version_id_incentive_rule_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_rule_firing")),
        sa.UniqueConstraint(
            "version_id",
            "partner_id",
            "period_key",
            name=op.f("uq_incentive_rule_firing_version_id_partner_id_period_key"),
        ),
    )
    with op.batch_alter_table("incentive_rule_firing", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incentive_rule_firing_partner", ["partner_id", "fired_at"], unique=False
        )
        batch_op.create_index(
            "ix_incentive_rule_firing_rule", ["rule_id", "fired_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incentive_rule_firing_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "incentive_recommendation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("firing_id", sa.Uuid(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("link", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["firing_id"],
            ["incentive_rule_firing.id"],
            name=op.f("fk_incentive_recommendation_firing_id_incentive_rule_firing"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partner.id"],
            name=op.f("fk_incentive_recommendation_partner_id_partner"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_incentive_recommendation_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_recommendation")),
    )
    with op.batch_alter_table("incentive_recommendation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentive_recommendation_firing_id"), ["firing_id"], unique=False
        )
        batch_op.create_index(
            "ix_incentive_recommendation_partner", ["partner_id", "expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incentive_recommendation_vendor_id"), ["vendor_id"], unique=False
        )

    with op.batch_alter_table("earning_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overlay_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_earning_entry_overlay_id"), ["overlay_id"], unique=False
        )

    with op.batch_alter_table("payout_hold", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "partner_note",
                sqlmodel.sql.sqltypes.AutoString(length=500),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("payout_hold", schema=None) as batch_op:
        batch_op.drop_column("partner_note")

    with op.batch_alter_table("earning_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_earning_entry_overlay_id"))
        batch_op.drop_column("overlay_id")

    with op.batch_alter_table("incentive_recommendation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incentive_recommendation_vendor_id"))
        batch_op.drop_index("ix_incentive_recommendation_partner")
        batch_op.drop_index(batch_op.f("ix_incentive_recommendation_firing_id"))

    op.drop_table("incentive_recommendation")
    with op.batch_alter_table("incentive_rule_firing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incentive_rule_firing_vendor_id"))
        batch_op.drop_index("ix_incentive_rule_firing_rule")
        batch_op.drop_index("ix_incentive_rule_firing_partner")

    op.drop_table("incentive_rule_firing")
    with op.batch_alter_table("incentive_rule_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incentive_rule_version_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_incentive_rule_version_rule_id"))

    op.drop_table("incentive_rule_version")
    with op.batch_alter_table("incentive_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incentive_rule_vendor_id"))

    op.drop_table("incentive_rule")
    with op.batch_alter_table("payout_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payout_review_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_payout_review_source_id"))
        batch_op.drop_index(batch_op.f("ix_payout_review_partner_id"))

    op.drop_table("payout_review")
    with op.batch_alter_table("earning_rate_overlay", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_earning_rate_overlay_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_earning_rate_overlay_source_id"))
        batch_op.drop_index("ix_earning_rate_overlay_partner")

    op.drop_table("earning_rate_overlay")
    op.drop_table("incentive_daily_run")

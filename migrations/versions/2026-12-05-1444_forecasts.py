"""partner forecasts with revisions, forecast accuracy per closed quarter, concentration
thresholds and alerts

Revision ID: 0019_forecasts
Revises: 0018_subscriptions
Create Date: 2026-12-05 14:41:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0019_forecasts"
down_revision: str | None = "0018_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "concentration_threshold",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column(
            "metric",
            sa.Enum(
                "TOP_PARTNER_SHARE",
                "TOP_N_SHARE",
                name="share_metric",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("top_n", sa.Integer(), nullable=False),
        sa.Column(
            "basis",
            sa.Enum(
                "REVENUE", "RECURRING_REVENUE", name="share_basis", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "scope",
            sa.Enum(
                "OVERALL", "REGION", "GROUP", name="guardrail_scope", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("scope_value", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("max_share_bp", sa.Integer(), nullable=False),
        sa.Column("archived_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "max_share_bp BETWEEN 1 AND 10000",
            name=op.f("ck_concentration_threshold_max_share_range"),
        ),
        sa.CheckConstraint(
            "top_n BETWEEN 1 AND 100", name=op.f("ck_concentration_threshold_top_n_range")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_concentration_threshold_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concentration_threshold")),
        sa.UniqueConstraint(
            "vendor_id",
            "metric",
            "top_n",
            "basis",
            "scope",
            "scope_value",
            "currency",
            name="uq_concentration_threshold_key",
        ),
    )
    with op.batch_alter_table("concentration_threshold", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_concentration_threshold_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "forecast_quarter_close",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("partners", sa.Integer(), nullable=False),
        sa.Column("closed_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_forecast_quarter_close_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_quarter_close")),
        sa.UniqueConstraint(
            "vendor_id", "quarter", name=op.f("uq_forecast_quarter_close_vendor_id_quarter")
        ),
    )
    with op.batch_alter_table("forecast_quarter_close", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forecast_quarter_close_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "concentration_alert",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("threshold_id", sa.Uuid(), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.Column("max_share_bp", sa.Integer(), nullable=False),
        sa.Column("top_revenue_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_revenue_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("top_partner_ids", sa.JSON(), nullable=False),
        sa.Column("fired_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["threshold_id"],
            ["concentration_threshold.id"],
            name=op.f("fk_concentration_alert_threshold_id_concentration_threshold"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_concentration_alert_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concentration_alert")),
        sa.UniqueConstraint(
            "threshold_id", "quarter", name=op.f("uq_concentration_alert_threshold_id_quarter")
        ),
    )
    with op.batch_alter_table("concentration_alert", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_concentration_alert_threshold_id"), ["threshold_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_concentration_alert_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "partner_forecast",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("commit_minor", sa.BigInteger(), nullable=False),
        sa.Column("best_case_minor", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "best_case_minor >= commit_minor",
            name=op.f("ck_partner_forecast_best_case_not_below_commit"),
        ),
        sa.CheckConstraint(
            "commit_minor >= 0", name=op.f("ck_partner_forecast_commit_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_partner_forecast_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_forecast_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_forecast")),
        sa.UniqueConstraint(
            "partner_id", "quarter", name=op.f("uq_partner_forecast_partner_id_quarter")
        ),
    )
    with op.batch_alter_table("partner_forecast", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partner_forecast_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_forecast_vendor_id"), ["vendor_id"], unique=False
        )
        batch_op.create_index(
            "ix_partner_forecast_vendor_quarter", ["vendor_id", "quarter"], unique=False
        )

    op.create_table(
        "forecast_accuracy",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("forecast_id", sa.Uuid(), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("commit_minor", sa.BigInteger(), nullable=False),
        sa.Column("best_case_minor", sa.BigInteger(), nullable=False),
        sa.Column("actual_minor", sa.BigInteger(), nullable=False),
        sa.Column("accuracy_bp", sa.Integer(), nullable=False),
        sa.Column("bias_bp", sa.Integer(), nullable=True),
        sa.Column("recorded_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forecast_id"],
            ["partner_forecast.id"],
            name=op.f("fk_forecast_accuracy_forecast_id_partner_forecast"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_forecast_accuracy_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_forecast_accuracy_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_accuracy")),
        sa.UniqueConstraint(
            "partner_id", "quarter", name=op.f("uq_forecast_accuracy_partner_id_quarter")
        ),
    )
    with op.batch_alter_table("forecast_accuracy", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forecast_accuracy_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_forecast_accuracy_vendor_id"), ["vendor_id"], unique=False
        )
        batch_op.create_index(
            "ix_forecast_accuracy_vendor_quarter", ["vendor_id", "quarter"], unique=False
        )

    op.create_table(
        "partner_forecast_revision",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("forecast_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("commit_minor", sa.BigInteger(), nullable=False),
        sa.Column("best_case_minor", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("prefilled", sa.Boolean(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("submitted_by_id", sa.Uuid(), nullable=True),
        sa.Column("submitted_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forecast_id"],
            ["partner_forecast.id"],
            name=op.f("fk_partner_forecast_revision_forecast_id_partner_forecast"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partner.id"],
            name=op.f("fk_partner_forecast_revision_partner_id_partner"),
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"],
            ["user_account.id"],
            name=op.f("fk_partner_forecast_revision_submitted_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_forecast_revision_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_forecast_revision")),
        sa.UniqueConstraint(
            "forecast_id", "number", name=op.f("uq_partner_forecast_revision_forecast_id_number")
        ),
    )
    with op.batch_alter_table("partner_forecast_revision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partner_forecast_revision_forecast_id"), ["forecast_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_forecast_revision_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partner_forecast_revision_vendor_id"), ["vendor_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("partner_forecast_revision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partner_forecast_revision_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_partner_forecast_revision_partner_id"))
        batch_op.drop_index(batch_op.f("ix_partner_forecast_revision_forecast_id"))

    op.drop_table("partner_forecast_revision")
    with op.batch_alter_table("forecast_accuracy", schema=None) as batch_op:
        batch_op.drop_index("ix_forecast_accuracy_vendor_quarter")
        batch_op.drop_index(batch_op.f("ix_forecast_accuracy_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_forecast_accuracy_partner_id"))

    op.drop_table("forecast_accuracy")
    with op.batch_alter_table("partner_forecast", schema=None) as batch_op:
        batch_op.drop_index("ix_partner_forecast_vendor_quarter")
        batch_op.drop_index(batch_op.f("ix_partner_forecast_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_partner_forecast_partner_id"))

    op.drop_table("partner_forecast")
    with op.batch_alter_table("concentration_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concentration_alert_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_concentration_alert_threshold_id"))

    op.drop_table("concentration_alert")
    with op.batch_alter_table("forecast_quarter_close", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forecast_quarter_close_vendor_id"))

    op.drop_table("forecast_quarter_close")
    with op.batch_alter_table("concentration_threshold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concentration_threshold_vendor_id"))

    op.drop_table("concentration_threshold")

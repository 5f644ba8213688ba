"""notifications: the in-app inbox (notification), per-user preferences
(notification_settings), the mail queue with digests (mail), and the clock-driven triggers
that fired (notification_trigger)

Revision ID: 0017_notifications
Revises: 0016_contest_finish_display_keys
Create Date: 2026-12-05 14:42:33.133728
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0017_notifications"
down_revision: str | None = "0016_contest_finish_display_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_trigger",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("fired_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_notification_trigger_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_notification_trigger")),
    )
    with op.batch_alter_table("notification_trigger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_trigger_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "notification",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=True),
        sa.Column(
            "category",
            sa.Enum(
                "CLAIM",
                "DEAL",
                "PAYOUT",
                "TIER",
                "CONTEST",
                "PARTNER_APPLICATION",
                "WEBHOOK",
                "NEXT_ACTION",
                name="notification_category",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_notification_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_notification_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_notification_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint(
            "user_id", "dedupe_key", name=op.f("uq_notification_user_id_dedupe_key")
        ),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index("ix_notification_user_unread", ["user_id", "read_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_notification_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("time_zone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("digest_hour", sa.Integer(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("updated_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_settings_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_notification_settings_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_settings")),
    )
    with op.batch_alter_table("notification_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_settings_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "mail",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "MESSAGE", "DIGEST", "DIGEST_ITEM", name="mail_kind", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("digest_id", sa.Uuid(), nullable=True),
        sa.Column("digest_key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("to_address", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("text_body", sqlmodel.sql.sqltypes.AutoString(length=100000), nullable=False),
        sa.Column("html_body", sqlmodel.sql.sqltypes.AutoString(length=200000), nullable=False),
        sa.Column("secret", sa.Boolean(), nullable=False),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("sent_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["digest_id"], ["mail.id"], name=op.f("fk_mail_digest_id_mail")),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notification.id"],
            name=op.f("fk_mail_notification_id_notification"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_mail_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_mail_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail")),
        sa.UniqueConstraint("digest_key", name=op.f("uq_mail_digest_key")),
    )
    with op.batch_alter_table("mail", schema=None) as batch_op:
        batch_op.create_index("ix_mail_digest", ["digest_id"], unique=False)
        batch_op.create_index("ix_mail_due", ["sent_at", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_mail_vendor_id"), ["vendor_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_vendor_id"))
        batch_op.drop_index("ix_mail_due")
        batch_op.drop_index("ix_mail_digest")

    op.drop_table("mail")
    with op.batch_alter_table("notification_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_settings_vendor_id"))

    op.drop_table("notification_settings")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_vendor_id"))
        batch_op.drop_index("ix_notification_user_unread")

    op.drop_table("notification")
    with op.batch_alter_table("notification_trigger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_trigger_vendor_id"))

    op.drop_table("notification_trigger")

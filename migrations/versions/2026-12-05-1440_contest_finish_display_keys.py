"""contest winners (recorded when a period's standings freeze, with the prize finance may
credit), display keys for TV screens

Revision ID: 0016_contest_finish_display_keys
Revises: 0015_partner_groups
Create Date: 2026-12-05 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0016_contest_finish_display_keys"
down_revision: str | None = "0015_partner_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _s(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _at() -> infra.db.UTCDateTime:
    return infra.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contest_winner",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("contest_id", sa.Uuid(), nullable=False),
        sa.Column("period_key", _s(16), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("rep_user_id", sa.Uuid(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("prize", _s(200), nullable=False),
        sa.Column("prize_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", _s(3), nullable=False),
        sa.Column(
            "prize_status",
            sa.Enum(
                "NONE", "PENDING", "APPROVED", name="contest_prize_status", native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("approved_by_id", sa.Uuid(), nullable=True),
        sa.Column("approved_at", _at(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by_id"], ["user_account.id"],
            name=op.f("fk_contest_winner_approved_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["contest_id"], ["contest.id"], name=op.f("fk_contest_winner_contest_id_contest")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_contest_winner_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["rep_user_id"], ["user_account.id"],
            name=op.f("fk_contest_winner_rep_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_contest_winner_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contest_winner")),
        sa.UniqueConstraint(
            "contest_id", "period_key", "participant_id",
            name=op.f("uq_contest_winner_contest_id_period_key_participant_id"),
        ),
    )  # fmt: skip
    with op.batch_alter_table("contest_winner", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contest_winner_contest_id"), ["contest_id"])
        batch_op.create_index(batch_op.f("ix_contest_winner_partner_id"), ["partner_id"])
        batch_op.create_index(batch_op.f("ix_contest_winner_vendor_id"), ["vendor_id"])

    op.create_table(
        "display_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("label", _s(100), nullable=False),
        sa.Column("prefix", _s(16), nullable=False),
        sa.Column("secret_hash", _s(64), nullable=False),
        sa.Column("contest_ids", sa.JSON(), nullable=False),
        sa.Column("rotate_seconds", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("expires_at", _at(), nullable=True),
        sa.Column("revoked_at", _at(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user_account.id"],
            name=op.f("fk_display_key_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_display_key_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_display_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_display_key_prefix")),
    )  # fmt: skip
    with op.batch_alter_table("display_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_display_key_vendor_id"), ["vendor_id"])


def downgrade() -> None:
    with op.batch_alter_table("display_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_display_key_vendor_id"))
    op.drop_table("display_key")
    with op.batch_alter_table("contest_winner", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contest_winner_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_contest_winner_partner_id"))
        batch_op.drop_index(batch_op.f("ix_contest_winner_contest_id"))
    op.drop_table("contest_winner")

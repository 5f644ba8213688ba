"""partner administration and applications: the partner_application table; legal name, country, contacts, tags, external reference, status
reason and time; the ARCHIVED status (a non-native enum: no type change)

Revision ID: 0014_partner_admin
Revises: 0013_vendor_status
Create Date: 2026-12-05 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0014_partner_admin"
down_revision: str | None = "0013_vendor_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy on SQLite: the partner table is referenced by rows
    # whose foreign keys SQLite enforces). The status enum is non-native (VARCHAR(32)),
    # so ARCHIVED needs no change in the database.
    op.add_column(
        "partner",
        sa.Column(
            "legal_name",
            sqlmodel.sql.sqltypes.AutoString(length=200),
            nullable=False,
            server_default="",
        ),
    )
    op.add_column(
        "partner", sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True)
    )
    op.add_column(
        "partner",
        sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    )
    op.add_column("partner", sa.Column("contacts", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("partner", sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column(
        "partner",
        sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    )
    op.add_column(
        "partner",
        sa.Column("status_changed_at", infra.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "uq_partner_vendor_id_external_ref", "partner", ["vendor_id", "external_ref"], unique=True
    )
    op.create_table(
        "partner_application",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=True),
        sa.Column("vendor_slug", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("company", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("contact_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("contact_email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("client_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "APPROVED",
                "REJECTED",
                name="application_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),  # fmt: skip
        sa.Column("rejection_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("partner_id", sa.Uuid(), nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("decided_at", infra.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_partner_application_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_partner_application_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_application")),
        sa.UniqueConstraint("reference", name=op.f("uq_partner_application_reference")),
    )
    op.create_index(
        "ix_partner_application_address_at",
        "partner_application",
        ["client_address", "created_at"],
    )
    op.create_index(
        "ix_partner_application_email_at", "partner_application", ["contact_email", "created_at"]
    )
    op.create_index(op.f("ix_partner_application_vendor_id"), "partner_application", ["vendor_id"])


def downgrade() -> None:
    op.drop_table("partner_application")
    op.execute("UPDATE partner SET status = 'TERMINATED' WHERE status = 'ARCHIVED'")
    op.drop_index("uq_partner_vendor_id_external_ref", table_name="partner")
    for column in (
        "status_changed_at", "status_reason", "tags", "contacts", "external_ref", "country",
        "legal_name",
    ):  # fmt: skip
        op.drop_column("partner", column)

"""attachments remember the request that stored them: files stored together share an
``upload_id``, which an attach mutation's idempotency key names as its result

Revision ID: 0037_attachment_upload
Revises: 0036_audit_reason_text
Create Date: 2026-12-07 09:00:00

A retry of ``saleClaimAttachProof`` or ``dealRegistrationAttachProof`` under its key answers
with the files its first request stored; a key holds one result id, so those files need
one id of their own. A nullable column, set for every upload from now on; older files keep
null (no key ever named them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0037_attachment_upload"
down_revision: str | None = "0036_audit_reason_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("attachment", sa.Column("upload_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_column("upload_id")

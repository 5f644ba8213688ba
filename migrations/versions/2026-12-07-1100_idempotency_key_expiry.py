"""idempotency keys expire: an index on ``idempotency_key.created_at`` for the pruning

Revision ID: 0038_idempotency_key_expiry
Revises: 0037_attachment_upload
Create Date: 2026-12-07 11:00:00

A key replays for a retention (7 days by default); expired rows are deleted oldest first in
batches (``infra.idempotency.prune``), which finds them through this index instead of
reading the whole table on every pass. Keys carried over from before expiry keep their
``created_at``: those older than the retention expire at once.

On PostgreSQL the index is built CONCURRENTLY (outside the migration's transaction): a
table that grew for months is indexed without blocking the keyed mutations meanwhile; a
build a kill interrupted is finished by the next upgrade (``migrations.outside``).
"""

from collections.abc import Sequence

from migrations import outside

revision: str = "0038_idempotency_key_expiry"
down_revision: str | None = "0037_attachment_upload"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


INDEX = "ix_idempotency_key_created_at"


def upgrade() -> None:
    outside.create_index(INDEX, "idempotency_key", ["created_at"])


def downgrade() -> None:
    outside.drop_index(INDEX, "idempotency_key")

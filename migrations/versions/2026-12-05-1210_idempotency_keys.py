"""idempotency keys: one table, keys per caller (infra.idempotency)

Copies the keys that lived on sale_claim (per partner) and deal_registration (per partner,
with a request hash) to ``idempotency_key``, each as its creator's key: the claim's rep,
the registration's registering user. Their requests were not kept in a comparable form, so
the copies have no fingerprint: a retry by the same caller gets its first result whatever
it sends, as sale claims answered before. Registrations made with an API key (no user
recorded) and adjustments (whose key survived only inside a hash) cannot be attributed
and are not copied. The old columns stay, unwritten: SQLite cannot drop them in place
from tables others reference.

Revision ID: 0007_idempotency_keys
Revises: 0006_contests
Create Date: 2026-12-05 12:10:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import infra.db

revision: str = "0007_idempotency_keys"
down_revision: str | None = "0006_contests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    keys = op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("caller", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("result_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", infra.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendor.id"], name=op.f("fk_idempotency_key_vendor_id_vendor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_key")),
        sa.UniqueConstraint(
            "vendor_id",
            "caller",
            "scope",
            "key",
            name=op.f("uq_idempotency_key_vendor_id_caller_scope_key"),
        ),  # fmt: skip
    )
    _copy(keys, "sale_claim", "rep_user_id", "saleClaimCreate")
    _copy(keys, "deal_registration", "registered_by_id", "dealRegistrationSubmit")


def _copy(keys: sa.Table, table: str, by: str, scope: str) -> None:
    source = sa.table(
        table,
        sa.column("id", sa.Uuid()),
        sa.column("vendor_id", sa.Uuid()),
        sa.column(by, sa.Uuid()),
        sa.column("idempotency_key", sa.String()),
        sa.column("created_at", infra.db.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(source).where(source.c.idempotency_key.is_not(None), source.c[by].is_not(None))
    ).all()
    for start in range(0, len(rows), _BATCH):
        bind.execute(
            keys.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "vendor_id": row.vendor_id,
                    "caller": f"user:{row._mapping[by]}",
                    "scope": scope,
                    "key": row.idempotency_key,
                    "fingerprint": None,
                    "result_id": row.id,
                    "created_at": row.created_at,
                }  # fmt: skip
                for row in rows[start : start + _BATCH]
            ],
        )


def downgrade() -> None:
    # Keys taken since the upgrade are forgotten; the copied ones are still on their rows.
    op.drop_table("idempotency_key")

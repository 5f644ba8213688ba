"""partner names unique per vendor as people read them: ``partner.name_key`` (the name's
``partners.names.name_key``), backfilled from the names, and a unique index on
(vendor_id, name_key)

Revision ID: 0039_partner_name_key
Revises: 0038_idempotency_key_expiry
Create Date: 2026-12-07 12:00:00

The rule was checked in Python only, so names that read alike ("Acme" and "ACME", a
fullwidth or zero-width variant) may already be stored: from before the rule, or from two
requests at once on PostgreSQL. Then the upgrade refuses, naming every such group (vendor,
partner ids and names) and changing nothing (the column is added in the migration's
transaction, which the refusal rolls back); rename all but one of each group and run it
again. It does not rename them itself: a partner's name is what its users, its contests'
boards and the vendor's exports show, and which of two look-alikes is "the" partner is the
vendor's call, not a migration's. A name whose key would not fit the index (longer than
``MAX_NAME_KEY`` characters, only names made of ligatures that NFKC spells out) is
refused the same way.

The key is computed by ``partners.names.name_key`` itself (the one the app writes with), in
batches. On PostgreSQL the column then loses its server default, so a writer that bypasses
the model (and its ``before_insert`` hook) fails at once instead of storing an empty key;
SQLite keeps it (dropping it means copying a table others reference).
"""

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

from partners.names import MAX_NAME_KEY, name_key

revision: str = "0039_partner_name_key"
down_revision: str | None = "0038_idempotency_key_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_partner_vendor_id_name_key"
_BATCH = 1000
# How many refused groups the message lists (it says how many there are in all).
_SHOWN = 20

partner = sa.table(
    "partner",
    sa.column("id", sa.Uuid()),
    sa.column("vendor_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("name_key", sa.String()),
)
vendor = sa.table("vendor", sa.column("id", sa.Uuid()), sa.column("slug", sa.String()))


def upgrade() -> None:
    # First, so that nothing writes partners until the migration commits (ACCESS EXCLUSIVE
    # on PostgreSQL, the write lock on SQLite), and so that a refusal rolls it back.
    op.add_column(
        "partner",
        sa.Column(
            "name_key",
            sqlmodel.sql.sqltypes.AutoString(length=MAX_NAME_KEY),
            nullable=False,
            server_default="",
        ),
    )
    bind = op.get_bind()
    keys: dict[uuid.UUID, str] = {}
    groups: dict[tuple[uuid.UUID, str], list[tuple[uuid.UUID, str]]] = defaultdict(list)
    too_long: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    for rows in _batches(bind):
        for row in rows:
            key = name_key(row.name)
            keys[row.id] = key
            groups[(row.vendor_id, key)].append((row.id, row.name))
            if len(key) > MAX_NAME_KEY:
                too_long.append((row.vendor_id, row.id, row.name))
    alike = {vk: found for vk, found in groups.items() if len(found) > 1}
    if alike or too_long:
        raise RuntimeError(_refusal(bind, alike, too_long))
    ids = list(keys)
    for start in range(0, len(ids), _BATCH):
        bind.execute(
            partner.update()
            .where(partner.c.id == sa.bindparam("pid"))
            .values(name_key=sa.bindparam("key")),
            [{"pid": i, "key": keys[i]} for i in ids[start : start + _BATCH]],
        )
    op.create_index(INDEX, "partner", ["vendor_id", "name_key"], unique=True)
    if bind.dialect.name == "postgresql":
        op.alter_column("partner", "name_key", server_default=None)


def _batches(bind: sa.Connection) -> Iterator[Sequence[sa.Row[Any]]]:
    """Every partner's id, vendor and name, in id order, ``_BATCH`` rows at a time."""
    after: uuid.UUID | None = None
    while True:
        query = sa.select(partner.c.id, partner.c.vendor_id, partner.c.name)
        if after is not None:
            query = query.where(partner.c.id > after)
        rows = bind.execute(query.order_by(partner.c.id).limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _refusal(
    bind: sa.Connection,
    alike: dict[tuple[uuid.UUID, str], list[tuple[uuid.UUID, str]]],
    too_long: list[tuple[uuid.UUID, uuid.UUID, str]],
) -> str:
    slugs = {row.id: row.slug for row in bind.execute(sa.select(vendor.c.id, vendor.c.slug))}
    lines = ["Cannot upgrade to 0039_partner_name_key; nothing was changed."]
    if alike:
        lines.append(
            f"{len(alike)} group(s) of partners of one vendor have names that read alike "
            "(case, compatibility forms, invisible characters); rename all but one of each "
            "(partnerUpdate), then run `channelboard migrate` again:"
        )
        ordered = sorted(alike.items(), key=lambda item: (slugs.get(item[0][0], ""), item[0][1]))
        for (vendor_id, _), found in ordered[:_SHOWN]:
            names = ", ".join(f"{name!r} ({pid})" for pid, name in sorted(found))
            lines.append(f"  vendor {slugs.get(vendor_id, vendor_id)}: {names}")
        if len(alike) > _SHOWN:
            lines.append(f"  ... and {len(alike) - _SHOWN} more group(s).")
    if too_long:
        lines.append(
            f"{len(too_long)} partner name(s) are longer than {MAX_NAME_KEY} characters once "
            "spelled out (NFKC); rename them:"
        )
        for vendor_id, pid, name in too_long[:_SHOWN]:
            lines.append(f"  vendor {slugs.get(vendor_id, vendor_id)}: {name!r} ({pid})")
    return "\n".join(lines)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="partner")
    op.drop_column("partner", "name_key")

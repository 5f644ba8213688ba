"""The audit log: `auditLog` (a connection, newest first) and `auditLogExport` (CSV text).

Who reads what is decided in ``partners.audit_log.readable_audit_entries``: a vendor admin
every entry of its vendor, finance the entries about money settings, nobody else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import strawberry
from strawberry import Info, relay
from strawberry.scalars import JSON

from infra.audit import AuditEntry
from infra.errors import DomainError
from infra.pages import Statement
from partners import audit_log
from partners.audit_log import AUDIT, AuditOp
from schema.context import Context
from schema.errors import query_error
from schema.permissions import allowed
from schema.relay import Connection, paginate, parse_global_id, visible_nodes

EXPORT_MAX_ROWS = 10_000


@strawberry.type(
    name="AuditEntry",
    description="One administrative change: who made it, when, what it changed (the changed "
    "fields before and after; secrets masked), and why when a reason was given.",
)
class AuditEntryType(relay.Node):
    id: relay.NodeID[str]
    at: datetime
    actor: str = strawberry.field(
        description="user:<id>, api_key:<id>, or operator:<login> for a command line action."
    )
    action: str = strawberry.field(description="<entity>.<verb>, e.g. api_key.revoked.")
    entity_type: str
    entity_id: str = strawberry.field(description="The changed record's id (not a global id).")
    before: JSON | None
    after: JSON | None
    reason: str | None

    @classmethod
    def from_model(cls, entry: AuditEntry) -> AuditEntryType:
        return cls(
            id=str(entry.id), at=entry.at, actor=entry.actor, action=entry.action,
            entity_type=entry.entity_type, entity_id=entry.entity_id,
            before=cast(JSON, entry.before), after=cast(JSON, entry.after), reason=entry.reason,
        )  # fmt: skip

    resolve_nodes = visible_nodes(audit_log.entries_by_ids)


@strawberry.input(description="Every filter given must match.")
class AuditLogFilter:
    entity_type: str | None = strawberry.field(default=None, description="E.g. api_key.")
    entity_id: str | None = strawberry.field(
        default=None, description="The record's id, or its global id."
    )
    actor: str | None = strawberry.field(default=None, description="E.g. user:<id>.")
    action_prefix: str | None = strawberry.field(
        default=None, description="E.g. 'program.' for every program action."
    )
    since: datetime | None = strawberry.field(
        default=None, description="Inclusive; UTC when it has no offset."
    )
    until: datetime | None = strawberry.field(
        default=None,
        description="Exclusive; UTC when it has no offset; after since (else INVALID_RANGE).",
    )

    def statement(self, info: Info[Context, None]) -> Statement[AuditEntry]:
        entity_id = self.entity_id
        if entity_id is not None:
            parsed = parse_global_id(entity_id)
            entity_id = str(parsed) if parsed is not None else entity_id
        try:
            return audit_log.audit_entries_matching(
                info.context.caller, entity_type=self.entity_type, entity_id=entity_id,
                actor=self.actor, action_prefix=self.action_prefix, since=_utc(self.since),
                until=_utc(self.until),
            )  # fmt: skip
        except DomainError as error:  # an argument of the filter: named as filter.<field>
            named = DomainError(error.code, error.message, f"filter.{error.field}")
            raise query_error(named) from error


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@strawberry.type(description="The audit log as CSV (RFC 4180, a header row, oldest first).")
class AuditLogExport:
    csv: str
    row_count: int
    truncated: bool = strawberry.field(
        description=f"True when more than {EXPORT_MAX_ROWS} entries matched: narrow the time "
        "range (or use `channelboard audit export`)."
    )


@strawberry.type
class AuditLogQuery:
    @strawberry.field(
        permission_classes=[allowed(AUDIT, AuditOp.READ)],
        description="Administrative changes, newest first: a vendor admin reads all of its "
        "vendor's, finance those about money settings (programs, payout policy and profiles, "
        "adjustments, holds, statements, claim and deal program settings).",
    )
    async def audit_log(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: AuditLogFilter | None = None,
    ) -> Connection[AuditEntryType] | None:
        stmt = (filter or AuditLogFilter()).statement(info)
        return await paginate(
            info.context, stmt, first=first, after=after, to_node=AuditEntryType.from_model,
            descending=True,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(AUDIT, AuditOp.EXPORT)],
        description="The entries `auditLog` would list for the filter, as CSV text (at most "
        f"{EXPORT_MAX_ROWS} rows; columns id, at, actor, action, entity_type, entity_id, "
        "before, after, reason).",
    )
    async def audit_log_export(
        self, info: Info[Context, None], filter: AuditLogFilter | None = None
    ) -> AuditLogExport | None:
        stmt = (filter or AuditLogFilter()).statement(info)
        rows = await audit_log.export_rows(info.context.session, stmt, limit=EXPORT_MAX_ROWS + 1)
        kept = rows[:EXPORT_MAX_ROWS]
        return AuditLogExport(
            csv=audit_log.to_csv(kept), row_count=len(kept), truncated=len(rows) > len(kept)
        )

from __future__ import annotations

import strawberry
from strawberry import Info

from infra.errors import DomainError
from pilots import report, repository
from pilots.policy import PILOTS, PilotOp
from schema.context import Context
from schema.errors import query_error
from schema.permissions import allowed
from schema.pilots.types import PilotReportType, PilotType
from schema.relay import Connection, paginate, parse_global_id


@strawberry.type
class PilotsQuery:
    @strawberry.field(
        permission_classes=[allowed(PILOTS, PilotOp.READ)],
        description="The vendor's pilots, newest first.",
    )
    async def pilots(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[PilotType] | None:
        return await paginate(
            info.context, repository.readable_pilots(info.context.caller),
            first=first, after=after, to_node=PilotType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(PILOTS, PilotOp.REPORT)],
        description="Lift of treatment against control over the pilot's window, with "
        "confidence intervals (docs/signals.md, Pilots). Null for a pilot you cannot see; "
        "NOT_STARTED before it starts.",
    )
    async def pilot_report(
        self, info: Info[Context, None], pilot_id: strawberry.ID, currency: str | None = None
    ) -> PilotReportType | None:
        ctx = info.context
        found = parse_global_id(pilot_id, "Pilot")
        if found is None:
            return None
        try:
            result = await report.pilot_report(
                ctx.session, ctx.caller, ctx.services.clock, pilot_id=found, currency=currency
            )
        except DomainError as error:
            raise query_error(error) from error
        return PilotReportType.of(result) if result else None

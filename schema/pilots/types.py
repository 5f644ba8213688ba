"""Pilots in GraphQL: the pilot (vendor admins and finance only), each partner's arm, and
the report. No partner role reaches any of these types."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import Info, relay

from partners.groups import groups_by_ids
from partners.repository import partners_by_ids
from pilots import repository
from pilots.models import Arm, Pilot, PilotAssignment, PilotStatus
from pilots.report import PilotReport
from pilots.statistics import MeanComparison, ProportionComparison, minor
from schema.context import Context
from schema.money import MoneyType
from schema.partners.types import PartnerGroupType, PartnerType
from schema.relay import Connection, paginate, visible_nodes

PilotStatusEnum = strawberry.enum(PilotStatus, name="PilotStatus")
ArmEnum = strawberry.enum(Arm, name="PilotArm")


@strawberry.type(name="PilotAssignment", description="One partner's arm and its stratum.")
class PilotAssignmentType(relay.Node):
    id: relay.NodeID[str]
    arm: Arm
    stratum: str = strawberry.field(description="region|program tier, as drawn.")
    _partner_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        found = await partners_by_ids(info.context.session, info.context.caller, [self._partner_id])
        partner = found.get(self._partner_id)
        return PartnerType.from_model(partner) if partner else None

    @classmethod
    def from_model(cls, row: PilotAssignment) -> PilotAssignmentType:
        return cls(id=str(row.id), arm=row.arm, stratum=row.stratum, _partner_id=row.partner_id)

    resolve_nodes = visible_nodes(None)


@strawberry.type(
    name="Pilot",
    description="A pilot with a control group: an eligible group split at random into a "
    "treatment arm (a partner group that programs can target) and a control arm. Vendor "
    "admins and finance only; partners never see pilots or arms.",
)
class PilotType(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str
    status: PilotStatus
    seed: str = strawberry.field(
        description="The random seed the arms were drawn from (a 62-bit integer, as text)."
    )
    ends_at: datetime = strawberry.field(description="The planned end.")
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    _group_id: strawberry.Private[uuid.UUID]
    _treatment_group_id: strawberry.Private[uuid.UUID]

    async def _group(
        self, info: Info[Context, None], group_id: uuid.UUID
    ) -> PartnerGroupType | None:
        found = await groups_by_ids(info.context.session, info.context.caller, [group_id])
        return PartnerGroupType.from_model(found[group_id]) if group_id in found else None

    @strawberry.field(description="The eligible group the arms were drawn from.")
    async def group(self, info: Info[Context, None]) -> PartnerGroupType | None:
        return await self._group(info, self._group_id)

    @strawberry.field(
        description="The treatment arm as a partner group: target it with a program "
        "(targetGroupIds) to apply the program to the treatment only. Members while running."
    )
    async def treatment_group(self, info: Info[Context, None]) -> PartnerGroupType | None:
        return await self._group(info, self._treatment_group_id)

    @strawberry.field(description="Each partner's arm, by stratum, then partner.")
    async def assignments(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[PilotAssignmentType]:
        return await paginate(
            info.context, repository.readable_assignments(info.context.caller, uuid.UUID(self.id)),
            first=first, after=after, to_node=PilotAssignmentType.from_model,
        )  # fmt: skip

    @classmethod
    def from_model(cls, pilot: Pilot) -> PilotType:
        return cls(
            id=str(pilot.id), name=pilot.name, description=pilot.description,
            status=pilot.status, seed=str(pilot.seed), ends_at=pilot.ends_at,
            started_at=pilot.started_at, ended_at=pilot.ended_at, created_at=pilot.created_at,
            _group_id=pilot.group_id, _treatment_group_id=pilot.treatment_group_id,
        )  # fmt: skip

    resolve_nodes = visible_nodes(repository.pilots_by_ids)


@strawberry.type(
    name="PilotMeanLift",
    description="A per-partner outcome summed over the window: each arm's mean, the "
    "difference (treatment minus control) with Welch's t confidence interval, the relative "
    "lift (difference / |control mean|).",
)
class PilotMeanLiftType:
    treatment_partners: int
    control_partners: int
    treatment_mean: MoneyType
    control_mean: MoneyType
    difference: MoneyType
    interval_low: MoneyType | None = strawberry.field(description="Null: no interval (notes).")
    interval_high: MoneyType | None
    relative_lift: float | None = strawberry.field(description="0.12 = +12%; null when the "
                                                   "control mean is 0.")  # fmt: skip
    p_value: float | None = strawberry.field(description="Welch's two-sided test.")
    notes: list[str]

    @classmethod
    def of(cls, c: MeanComparison, currency: str) -> PilotMeanLiftType:
        def money(value: float) -> MoneyType:
            return MoneyType.of(minor(value), currency)

        return cls(
            treatment_partners=c.treatment_n, control_partners=c.control_n,
            treatment_mean=money(c.treatment_mean), control_mean=money(c.control_mean),
            difference=money(c.difference),
            interval_low=money(c.interval.low) if c.interval else None,
            interval_high=money(c.interval.high) if c.interval else None,
            relative_lift=c.relative_lift, p_value=c.p_value, notes=list(c.notes),
        )  # fmt: skip


@strawberry.type(
    name="PilotActivationLift",
    description="Activation: the share of partners that had never sold before the window "
    "and made their first approved sale in it; the difference of shares (treatment minus "
    "control) with Newcombe's hybrid score interval (from Wilson intervals).",
)
class PilotActivationLiftType:
    treatment_activated: int
    treatment_eligible: int
    control_activated: int
    control_eligible: int
    treatment_rate: float | None
    control_rate: float | None
    difference: float | None
    interval_low: float | None
    interval_high: float | None
    notes: list[str]

    @classmethod
    def of(cls, c: ProportionComparison) -> PilotActivationLiftType:
        return cls(
            treatment_activated=c.treatment_k, treatment_eligible=c.treatment_n,
            control_activated=c.control_k, control_eligible=c.control_n,
            treatment_rate=c.treatment_rate, control_rate=c.control_rate,
            difference=c.difference,
            interval_low=c.interval.low if c.interval else None,
            interval_high=c.interval.high if c.interval else None, notes=list(c.notes),
        )  # fmt: skip


@strawberry.type(name="PilotReport")
class PilotReportType:
    pilot: PilotType
    window_start: datetime
    window_end: datetime = strawberry.field(
        description="The earliest of the end, the planned end and now."
    )
    currency: str
    confidence_level: float
    revenue: PilotMeanLiftType = strawberry.field(description="Attributed (net) revenue.")
    margin: PilotMeanLiftType = strawberry.field(
        description="Contribution margin: the catalogue margin of the window's sales less "
        "everything the ledger credited in the window (the payout cost).",
    )
    payout_cost: PilotMeanLiftType = strawberry.field(
        description="Everything the ledger credited for sales in the window (all programs)."
    )
    activation: PilotActivationLiftType

    @classmethod
    def of(cls, r: PilotReport) -> PilotReportType:
        return cls(
            pilot=PilotType.from_model(r.pilot), window_start=r.start, window_end=r.end,
            currency=r.currency, confidence_level=r.level,
            revenue=PilotMeanLiftType.of(r.revenue, r.currency),
            margin=PilotMeanLiftType.of(r.margin, r.currency),
            payout_cost=PilotMeanLiftType.of(r.payout_cost, r.currency),
            activation=PilotActivationLiftType.of(r.activation),
        )  # fmt: skip

"""Partner groups (segments) and program tiers in GraphQL: `partnerGroups`,
`partnerGroup(id)` with `members(at)`, and the group and tier mutations. Vendor staff
read groups (a channel manager sees only its assigned partners among the members);
partner roles never see groups, not even their own group names."""

from __future__ import annotations

from typing import Self

import strawberry
from strawberry import Info

from partners import groups
from partners.errors import GroupErrorCode
from partners.group_models import MemberMode, PartnerGroup
from partners.group_policy import GROUPS, GroupOp
from partners.models import Partner
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.partners.types import PartnerGroupType, PartnerType
from schema.permissions import allowed
from schema.relay import Connection, paginate, parse_global_id


@strawberry.input(description="One condition: every condition of a rule must hold.")
class GroupRuleConditionInput:
    attribute: str = strawberry.field(
        description="A partner attribute: region, country, tags or tier (the program tier)."
    )
    op: str = strawberry.field(
        description="IN (has one of the values), NOT_IN (has none), EQ (exactly one value)."
    )
    values: list[str]


def _rule(rule: list[GroupRuleConditionInput] | None) -> list[tuple[str, str, list[str]]] | None:
    if rule is None:
        return None
    return [(c.attribute, c.op, list(c.values)) for c in rule]


@strawberry.type
class PartnerGroupsQuery:
    @strawberry.field(
        permission_classes=[allowed(GROUPS, GroupOp.READ)],
        description="The vendor's partner groups (archived ones only when asked).",
    )
    async def partner_groups(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        include_archived: bool = False,
    ) -> Connection[PartnerGroupType] | None:
        stmt = groups.readable_groups(info.context.caller)
        if not include_archived:
            stmt = stmt.where(PartnerGroup.archived_at == None)  # noqa: E711
        return await paginate(
            info.context, stmt, first=first, after=after, to_node=PartnerGroupType.from_model
        )

    @strawberry.field(
        permission_classes=[allowed(GROUPS, GroupOp.READ_ONE)],
        description="A partner group by id; null when it does not exist or is another vendor's.",
    )
    async def partner_group(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> PartnerGroupType | None:
        group_id = parse_global_id(id, "PartnerGroup")
        if group_id is None:
            return None
        found = await groups.groups_by_ids(info.context.session, info.context.caller, [group_id])
        return PartnerGroupType.from_model(found[group_id]) if group_id in found else None


# ------------------------------------------------------------------------- mutations


@strawberry.type
class PartnerGroupError(UserError):
    code: GroupErrorCode


@strawberry.type
class PartnerGroupPayload(Payload[PartnerGroup], errors=PartnerGroupError):
    partner_group: PartnerGroupType | None = None
    user_errors: list[PartnerGroupError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: PartnerGroup, write: Write) -> Self:
        return cls(partner_group=PartnerGroupType.from_model(result))


@strawberry.type
class PartnerTierSetPayload(Payload[Partner], errors=PartnerGroupError):
    partner: PartnerType | None = None
    user_errors: list[PartnerGroupError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Partner, write: Write) -> Self:
        return cls(partner=PartnerType.from_model(result))


@strawberry.input
class PartnerGroupCreateInput:
    name: str
    description: str = ""
    rule: list[GroupRuleConditionInput] = strawberry.field(
        default_factory=list,
        description="Partners matching every condition are members (besides explicit ones).",
    )


@strawberry.input(description="Fields left out (null) stay as they are.")
class PartnerGroupUpdateInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    rule: list[GroupRuleConditionInput] | None = strawberry.field(
        default=None, description="A new rule (memberships are recomputed now); [] removes it."
    )
    reason: str | None = None


@strawberry.input
class PartnerGroupDeleteInput:
    id: strawberry.ID
    reason: str | None = None


@strawberry.input(
    description="Partners to add (kept in whatever the rule says) or remove (kept out "
    "whatever the rule says); the latest decision for a partner wins."
)
class PartnerGroupMembersInput:
    id: strawberry.ID
    partner_ids: list[strawberry.ID]
    reason: str | None = None


@strawberry.input
class PartnerTierSetInput:
    partner_id: strawberry.ID
    tier: str = strawberry.field(description="The program tier, e.g. REGISTERED, SELECT, PREMIER.")
    reason: str


@strawberry.type
class PartnerGroupsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(GROUPS, GroupOp.CREATE)],
        description="Create a partner group; members matching its rule join at once.",
    )
    async def partner_group_create(
        self, info: Info[Context, None], input: PartnerGroupCreateInput
    ) -> PartnerGroupPayload:
        return await run(info, PartnerGroupPayload, lambda m: groups.create_group(
            m.session, m.principal, m.clock, name=input.name, description=input.description,
            rule=_rule(input.rule),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(GROUPS, GroupOp.UPDATE)],
        description="Rename a group, or change its description or rule (memberships follow).",
    )
    async def partner_group_update(
        self, info: Info[Context, None], input: PartnerGroupUpdateInput
    ) -> PartnerGroupPayload:
        return await run(info, PartnerGroupPayload, lambda m: groups.update_group(
            m.session, m.principal, m.clock, group_id=m.id(input.id, "PartnerGroup"),
            name=input.name, description=input.description, rule=_rule(input.rule),
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(GROUPS, GroupOp.DELETE)],
        description="Archive a group: every membership ends now; its history stays.",
    )
    async def partner_group_delete(
        self, info: Info[Context, None], input: PartnerGroupDeleteInput
    ) -> PartnerGroupPayload:
        return await run(info, PartnerGroupPayload, lambda m: groups.archive_group(
            m.session, m.principal, m.clock, group_id=m.id(input.id, "PartnerGroup"),
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(GROUPS, GroupOp.MEMBERS_ADD)],
        description="Add partners to a group explicitly.",
    )
    async def partner_group_members_add(
        self, info: Info[Context, None], input: PartnerGroupMembersInput
    ) -> PartnerGroupPayload:
        return await run(info, PartnerGroupPayload, lambda m: groups.set_members(
            m.session, m.principal, m.clock, group_id=m.id(input.id, "PartnerGroup"),
            partner_ids=m.ids(input.partner_ids, "Partner"), mode=MemberMode.INCLUDE,
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(GROUPS, GroupOp.MEMBERS_REMOVE)],
        description="Remove partners from a group explicitly (also when its rule matches them).",
    )
    async def partner_group_members_remove(
        self, info: Info[Context, None], input: PartnerGroupMembersInput
    ) -> PartnerGroupPayload:
        return await run(info, PartnerGroupPayload, lambda m: groups.set_members(
            m.session, m.principal, m.clock, group_id=m.id(input.id, "PartnerGroup"),
            partner_ids=m.ids(input.partner_ids, "Partner"), mode=MemberMode.EXCLUDE,
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(GROUPS, GroupOp.TIER_SET)],
        description="Set a partner's program tier (the partner-program level the vendor "
        "awards; not the earnings tier a rev-share program computes), with a reason kept in "
        "its tier history.",
    )
    async def partner_tier_set(
        self, info: Info[Context, None], input: PartnerTierSetInput
    ) -> PartnerTierSetPayload:
        return await run(info, PartnerTierSetPayload, lambda m: groups.set_program_tier(
            m.session, m.principal, m.clock, partner_id=m.id(input.partner_id, "Partner"),
            tier=input.tier, reason=input.reason,
        ))  # fmt: skip

"""GraphQL types for tenancy: vendors, partners, users, API keys, and `me`."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import Info, relay

from partners import groups, repository
from partners.group_models import PartnerGroup, PartnerTierChange
from partners.models import ApiKey, Partner, PartnerStatus, User, Vendor
from partners.policy import REVIEWERS
from partners.roles import Role
from schema.context import Context
from schema.partners.loaders import partner_managers
from schema.permissions import VendorStaff, roles
from schema.relay import Connection, global_id, paginate, visible_nodes

RoleEnum = strawberry.enum(
    Role,
    description="What a user may see and do; see the README's roles table. DISPLAY is no "
    "user's: it is the role of a display key's TV screen.",
)
PartnerStatusEnum = strawberry.enum(
    PartnerStatus,
    description="ACTIVE: its users sign in and submit. SUSPENDED: its users are refused "
    "(PARTNER_INACTIVE) and it submits nothing new; what it already submitted is still "
    "reviewed and approved sales keep crediting its earnings. ARCHIVED: as suspended, and "
    "final; hidden from default lists, history kept. TERMINATED: legacy, as ARCHIVED.",
)


@strawberry.type(name="Vendor", description="A vendor: the tenant that runs a partner program.")
class VendorType:
    id: relay.GlobalID
    name: str
    slug: str

    @classmethod
    def from_model(cls, vendor: Vendor) -> VendorType:
        return cls(id=relay.GlobalID("Vendor", str(vendor.id)), name=vendor.name, slug=vendor.slug)


@strawberry.type(description="A person to talk to at a partner.")
class PartnerContact:
    name: str
    email: str
    phone: str = ""


@strawberry.type(name="Partner", description="A partner organisation (reseller, distributor…).")
class PartnerType(relay.Node):
    id: relay.NodeID[str]
    name: str
    tier: str = strawberry.field(
        deprecation_reason="Use programTier (the same value); the earnings tier is "
        "EarningsSummary.tier."
    )
    program_tier: str = strawberry.field(
        description="The partner-program level the vendor awards (e.g. REGISTERED, SELECT, "
        "PREMIER), set with partnerTierSet. Not the earnings tier a rev-share program "
        "computes from revenue (EarningsSummary.tier)."
    )
    region: str
    status: PartnerStatus
    created_at: datetime
    _internal_notes: strawberry.Private[str]
    # --- partner administration (issue 12) ---
    legal_name: str = strawberry.field(default="", description="The registered company name.")
    country: str | None = strawberry.field(
        default=None, description="ISO 3166-1 alpha-2 code, e.g. DE."
    )
    contacts: list[PartnerContact] = strawberry.field(
        default_factory=list, description="The partner's contacts (at most 10)."
    )
    tags: list[str] = strawberry.field(
        default_factory=list, description="Lower-case labels, e.g. for segments."
    )
    status_changed_at: datetime | None = strawberry.field(
        default=None, description="When the status last changed (null: never since creation)."
    )
    _status_reason: strawberry.Private[str | None] = None
    _external_ref: strawberry.Private[str | None] = None

    @strawberry.field(
        description="Vendor-internal notes. Vendor roles only.", permission_classes=[VendorStaff]
    )
    def internal_notes(self) -> str | None:
        return self._internal_notes

    @strawberry.field(
        description="Why the partner was suspended, reactivated or archived. Vendor roles "
        "only (a suspended partner's users cannot sign in).",
        permission_classes=[VendorStaff],
    )
    def status_reason(self) -> str | None:
        return self._status_reason

    @strawberry.field(
        description="The vendor's own reference for the partner (e.g. its CRM id): the key "
        "of a re-import. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def external_ref(self) -> str | None:
        return self._external_ref

    @strawberry.field(
        description="The channel managers assigned to this partner. Vendor admins and "
        "channel managers; null for other roles.",
        permission_classes=[roles(*REVIEWERS)],
    )
    async def managers(self, info: Info[Context, None]) -> list[UserType] | None:
        found = await partner_managers(info.context).load(uuid.UUID(self.id))
        return [UserType.from_model(u) for u in found]

    @strawberry.field(
        description="The groups the partner is in now. Vendor roles only (groups may encode "
        "internal segmentation).",
        permission_classes=[VendorStaff],
    )
    async def groups(self, info: Info[Context, None]) -> list[PartnerGroupType] | None:
        ctx = info.context
        found = await groups.partner_groups_now(
            ctx.session, ctx.caller, uuid.UUID(self.id), ctx.services.clock.now()
        )
        return [PartnerGroupType.from_model(g) for g in found]

    @strawberry.field(
        description="Every change of the program tier, oldest first. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    async def program_tier_history(
        self, info: Info[Context, None]
    ) -> list[PartnerTierChangeType] | None:
        ctx = info.context
        rows = await groups.tier_history(ctx.session, ctx.caller, uuid.UUID(self.id))
        return [PartnerTierChangeType.from_model(c) for c in rows]

    @classmethod
    def from_model(cls, partner: Partner) -> PartnerType:
        return cls(
            id=str(partner.id),
            name=partner.name,
            tier=partner.tier,
            program_tier=partner.tier,
            region=partner.region,
            status=partner.status,
            created_at=partner.created_at,
            _internal_notes=partner.internal_notes,
            legal_name=partner.legal_name,
            country=partner.country,
            contacts=[PartnerContact(**c) for c in partner.contacts],
            tags=list(partner.tags),
            status_changed_at=partner.status_changed_at,
            _status_reason=partner.status_reason,
            _external_ref=partner.external_ref,
        )

    resolve_nodes = visible_nodes(repository.partners_by_ids)


@strawberry.type(name="User", description="A person who signs in to channelboard.")
class UserType(relay.Node):
    id: relay.NodeID[str]
    email: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime
    _partner_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The user's partner organisation; null for vendor staff.")
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        if self._partner_id is None or info.context.principal is None:
            return None
        partner = await repository.get_readable_partner(
            info.context.session, info.context.principal, self._partner_id
        )
        return PartnerType.from_model(partner) if partner else None

    @classmethod
    def from_model(cls, user: User) -> UserType:
        return cls(
            id=str(user.id),
            email=user.email,
            display_name=user.display_name,
            role=user.role,
            active=user.active,
            created_at=user.created_at,
            _partner_id=user.partner_id,
        )

    resolve_nodes = visible_nodes(repository.users_by_ids)


@strawberry.type(name="ApiKey", description="A vendor integration credential (secret not shown).")
class ApiKeyType(relay.Node):
    id: relay.NodeID[str]
    name: str
    prefix: str = strawberry.field(description="Identifies the key in logs; not a secret.")
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="When the key last authenticated a request, to the minute."
    )
    created_by_id: strawberry.ID | None = strawberry.field(
        description="The admin who made the key (a User id; what is drafted or asked with "
        "it is theirs for four eyes): revoke a departing admin's keys, which act for the "
        "vendor and outlive their maker's account."
    )

    @classmethod
    def from_model(cls, key: ApiKey) -> ApiKeyType:
        return cls(
            id=str(key.id),
            name=key.name,
            prefix=key.prefix,
            role=key.role,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
            created_by_id=global_id("User", key.created_by_id) if key.created_by_id else None,
        )

    resolve_nodes = visible_nodes(repository.api_keys_by_ids)


@strawberry.type(description="The caller: user (null for an API key), role, vendor and partner.")
class Me:
    role: Role
    _user_id: strawberry.Private[uuid.UUID | None]
    _vendor_id: strawberry.Private[uuid.UUID]
    _partner_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def user(self, info: Info[Context, None]) -> UserType | None:
        if self._user_id is None:
            return None
        user = await repository.get_user(info.context.session, self._user_id)
        return UserType.from_model(user) if user else None

    @strawberry.field
    async def vendor(self, info: Info[Context, None]) -> VendorType:
        vendor = await repository.get_vendor(info.context.session, self._vendor_id)
        assert vendor is not None  # the principal was built from this row
        return VendorType.from_model(vendor)

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        if self._partner_id is None or info.context.principal is None:
            return None
        partner = await repository.get_readable_partner(
            info.context.session, info.context.principal, self._partner_id
        )
        return PartnerType.from_model(partner) if partner else None


# --- partner groups and program tiers (schema/partners/groups.py holds the operations) ---

RuleOpEnum = strawberry.enum(groups.RuleOp, name="GroupRuleOp")


@strawberry.type(description="One condition of a group's membership rule.")
class GroupRuleCondition:
    attribute: str = strawberry.field(description="region, country, tags or tier.")
    op: groups.RuleOp
    values: list[str]


@strawberry.type(
    name="PartnerGroup",
    description="A segment of partners: explicit members and/or a rule on partner attributes. "
    "Programs and contests target groups. Vendor staff only.",
)
class PartnerGroupType(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str
    rule: list[GroupRuleCondition] = strawberry.field(
        description="All conditions must hold; empty: explicit members only."
    )
    archived_at: datetime | None
    managed_by: str | None = strawberry.field(
        description='Set when another domain fills the group ("pilot": a pilot\'s treatment '
        "arm); the group mutations then refuse to change it (MANAGED)."
    )
    created_at: datetime

    @strawberry.field(
        description="The members at `at` (default now) that you may see, from the membership "
        "history, by name (in code point order: upper case before lower case)."
    )
    async def members(
        self,
        info: Info[Context, None],
        at: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[PartnerType]:
        ctx = info.context
        when = at or ctx.services.clock.now()
        return await paginate(
            ctx, groups.readable_members(ctx.caller, uuid.UUID(self.id), when),
            first=first, after=after, to_node=PartnerType.from_model,
        )  # fmt: skip

    @classmethod
    def from_model(cls, group: PartnerGroup) -> PartnerGroupType:
        return cls(
            id=str(group.id),
            name=group.name,
            description=group.description,
            rule=[
                GroupRuleCondition(
                    attribute=c["attribute"], op=groups.RuleOp(c["op"]), values=list(c["values"])
                )
                for c in group.rule
            ],  # fmt: skip
            archived_at=group.archived_at,
            managed_by=group.managed_by,
            created_at=group.created_at,
        )

    resolve_nodes = visible_nodes(groups.groups_by_ids)


@strawberry.type(
    name="PartnerTierChange", description="A change of a partner's program tier, and why."
)
class PartnerTierChangeType:
    from_tier: str
    to_tier: str
    reason: str
    changed_by: str
    changed_at: datetime

    @classmethod
    def from_model(cls, c: PartnerTierChange) -> PartnerTierChangeType:
        return cls(
            from_tier=c.from_tier, to_tier=c.to_tier, reason=c.reason, changed_by=c.changed_by,
            changed_at=c.changed_at,
        )  # fmt: skip

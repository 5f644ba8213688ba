from __future__ import annotations

import inspect

import strawberry
from strawberry import Info, relay

from infra.errors import DomainError
from partners import repository
from partners.policy import TENANCY, TenancyOp
from schema.context import Context
from schema.errors import query_error
from schema.partners.inputs import PartnerFilter
from schema.partners.types import ApiKeyType, Me, PartnerType, UserType
from schema.partners.users import UserFilter
from schema.permissions import IsAuthenticated, allowed
from schema.relay import Connection, paginate, parse_global_id


@strawberry.type
class PartnersQuery:
    @strawberry.field(permission_classes=[IsAuthenticated], description="Who is calling.")
    def me(self, info: Info[Context, None]) -> Me | None:
        p = info.context.caller
        return Me(role=p.role, _user_id=p.user_id, _vendor_id=p.vendor_id, _partner_id=p.partner_id)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Partners you may see: all of your vendor's for admins and finance, your "
        "assigned ones for channel managers, your own organisation for partner users.",
    )
    async def partners(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: PartnerFilter | None = None,
    ) -> Connection[PartnerType] | None:
        principal = info.context.caller
        f = filter or PartnerFilter()
        try:
            stmt = repository.partners_matching(
                principal, status=f.status, tier=f.tier, region=f.region, search=f.search,
                include_archived=f.include_archived, tag=f.tag, country=f.country,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=PartnerType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A partner by id; null when it does not exist or you may not see it.",
    )
    async def partner(self, info: Info[Context, None], id: strawberry.ID) -> PartnerType | None:
        principal = info.context.caller
        partner_id = parse_global_id(id, "Partner")
        if partner_id is None:
            return None
        partner = await repository.get_readable_partner(info.context.session, principal, partner_id)
        return PartnerType.from_model(partner) if partner else None

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Any object by its global id; null when it does not exist or you may not "
        "see it.",
    )
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> relay.Node | None:
        try:
            gid = relay.GlobalID.from_id(id)
        except Exception:  # noqa: BLE001 - a malformed id is answered like a missing one
            return None
        node_type = info.schema.get_type_by_name(gid.type_name)
        origin = getattr(node_type, "origin", None)
        if origin is None or not (isinstance(origin, type) and issubclass(origin, relay.Node)):
            return None
        nodes = origin.resolve_nodes(info=info, node_ids=[gid.node_id], required=False)
        if inspect.isawaitable(nodes):
            nodes = await nodes
        return next(iter(nodes), None)

    @strawberry.field(
        permission_classes=[allowed(TENANCY, TenancyOp.USERS_READ)],
        description="Users: a vendor admin sees the vendor's, a partner admin its organisation's.",
    )
    async def users(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> Connection[UserType] | None:
        principal = info.context.caller
        f = filter or UserFilter()
        return await paginate(
            info.context, repository.users_matching(principal, role=f.role, active=f.active),
            first=first, after=after, to_node=UserType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(TENANCY, TenancyOp.API_KEYS_READ)],
        description="The vendor's API keys.",
    )
    async def api_keys(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[ApiKeyType] | None:
        principal = info.context.caller
        return await paginate(
            info.context, repository.readable_api_keys(principal),
            first=first, after=after, to_node=ApiKeyType.from_model,
        )  # fmt: skip

from __future__ import annotations

import strawberry

from partners.models import PartnerStatus
from partners.roles import Role
from schema.partners import types  # noqa: F401 - registers the GraphQL enums first


@strawberry.input
class ApiKeyCreateInput:
    name: str = strawberry.field(description="What the key is for, e.g. 'ERP sync'.")
    role: Role = strawberry.field(
        default=Role.VENDOR_ADMIN, description="The vendor role the key acts with."
    )


@strawberry.input
class ApiKeyRevokeInput:
    id: strawberry.ID


@strawberry.input(description="Narrow the partners list; every filter is optional.")
class PartnerFilter:
    status: PartnerStatus | None = None
    tier: str | None = None
    region: str | None = None
    search: str | None = strawberry.field(
        default=None, description="Part of the name; at most 256 characters (SEARCH_TOO_LONG)."
    )
    include_archived: bool = strawberry.field(
        default=False, description="Archived partners are left out unless this is true."
    )
    tag: str | None = strawberry.field(
        default=None,
        description="Partners with this tag; at most 256 characters (SEARCH_TOO_LONG).",
    )
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2.")

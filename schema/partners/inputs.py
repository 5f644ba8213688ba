from __future__ import annotations

import strawberry

from partners.roles import Role


@strawberry.input
class ApiKeyCreateInput:
    name: str = strawberry.field(description="What the key is for, e.g. 'ERP sync'.")
    role: Role = strawberry.field(
        default=Role.VENDOR_ADMIN, description="The vendor role the key acts with."
    )


@strawberry.input
class ApiKeyRevokeInput:
    id: strawberry.ID

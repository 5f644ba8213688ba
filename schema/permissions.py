"""Coarse, role-level permission classes. Row-level visibility lives in the repositories."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry import Info
from strawberry.permission import BasePermission

from partners.policy import Op, Policy
from partners.roles import VENDOR_ROLES, Role
from schema.context import Context


def unauthenticated(reason: str | None) -> GraphQLError:
    reason = reason or "MISSING_CREDENTIALS"
    return GraphQLError(
        AUTH_MESSAGES.get(reason, "Authentication failed."),
        extensions={"code": "UNAUTHENTICATED", "reason": reason},
    )


AUTH_MESSAGES = {
    "MISSING_CREDENTIALS": "Authentication required: send 'Authorization: Bearer <token>'.",
    "MALFORMED_CREDENTIALS": "The Authorization header is not 'Bearer <token>'.",
    "INVALID_TOKEN": "The token could not be decoded.",
    "BAD_SIGNATURE": "The token's signature is not valid.",
    "TOKEN_EXPIRED": "The token has expired.",
    "INVALID_ISSUER": "The token was issued by an issuer this service does not trust.",
    "INVALID_AUDIENCE": "The token is not meant for this service.",
    "UNKNOWN_USER": "The token's user does not exist.",
    "USER_DEACTIVATED": "The token's user is deactivated.",
    "PARTNER_INACTIVE": "The user's partner organisation is not active.",
    "INVALID_API_KEY": "The API key is unknown or revoked.",
    "VENDOR_SUSPENDED": "The vendor's account is suspended.",
    "INVALID_DISPLAY_KEY": "The display key is unknown.",
    "DISPLAY_KEY_REVOKED": "The display key was revoked.",
    "DISPLAY_KEY_EXPIRED": "The display key has expired.",
}


def display_key_scope() -> GraphQLError:
    return GraphQLError(
        "A display key reads its contests' leaderboards only.",
        extensions={"code": "FORBIDDEN", "reason": "DISPLAY_KEY_SCOPE"},
    )


class IsAuthenticated(BasePermission):
    """Any user or API key. A display key (an office screen) is refused: it may use only
    the fields that take ``ScreenOrAuthenticated``."""

    message = "Authentication required."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise unauthenticated(info.context.auth_failure)
        if principal.is_display:
            raise display_key_scope()
        return True


class ScreenOrAuthenticated(BasePermission):
    """Any authenticated caller, display keys included: the few fields an office screen
    reads (its contests' boards: row-level, ``leaderboards.repository.readable_contests``)."""

    message = "Authentication required."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        if info.context.principal is None:
            raise unauthenticated(info.context.auth_failure)
        return True


class ScreenOnly(BasePermission):
    """Display keys only (what the screen's key shows); FORBIDDEN for everyone else."""

    message = "Only a display key reads this."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise unauthenticated(info.context.auth_failure)
        return principal.is_display


class Public(BasePermission):
    """Open to anyone, credentials or not: said explicitly on the few root fields that are
    (partnerApply, partnerApplicationStatus), so that no field is public by omission."""

    message = ""

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        return True


def forbidden(message: str = "Your role may not perform this operation.") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def roles(*allowed: Role) -> type[BasePermission]:
    """A permission class admitting only the given roles (authenticated first)."""
    allowed_set = frozenset(allowed)

    class HasRole(BasePermission):
        message = "Your role may not perform this operation."
        error_extensions = {"code": "FORBIDDEN"}

        def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
            principal = info.context.principal
            if principal is None:
                raise unauthenticated(info.context.auth_failure)
            if principal.is_display:
                raise display_key_scope()
            return principal.role in allowed_set

    HasRole.__name__ = "HasRole_" + "_".join(sorted(r.value for r in allowed_set))
    return HasRole


def allowed(policy: Policy[Op], operation: Op) -> type[BasePermission]:
    """The permission class of a root field: the roles the domain's policy table allows
    for the operation (the same table its service enforces)."""
    base = roles(*policy.roles(operation))
    return type(f"Allowed_{operation.name}", (base,), {"policy": policy, "operation": operation})


# Field-level permissions on types (internal fields redacted for partner roles); root
# fields take theirs from the domains' policy tables (``allowed``).
VendorStaff = roles(*VENDOR_ROLES)
FinanceOrAdmin = roles(Role.FINANCE, Role.VENDOR_ADMIN)

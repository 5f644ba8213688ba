"""Who may do what: a policy is one table per domain, ``operation -> roles``.

Each domain's ``policy.py`` declares its operations (an enum) and the roles allowed each
one. Its services call ``require`` first, so a CLI command or a worker is held to the same
table as GraphQL; the schema builds its permission classes from the same table
(``schema.permissions.allowed``), so a refused role still gets ``FORBIDDEN`` before any
resolver runs. Which rows a caller may then touch is row-level, decided by the access
predicate (``partners.access``).

This module also holds the tenancy domain's own table (API keys, users, the outbox).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Generic, TypeVar

from infra.errors import Forbidden
from partners.roles import PARTNER_ROLES, Principal, Role

Op = TypeVar("Op", bound=Enum)


class Policy(Generic[Op]):
    """An ``operation -> roles`` table. Every operation of the enum must have a row."""

    def __init__(self, table: Mapping[Op, frozenset[Role]]) -> None:
        operations = {type(op) for op in table}
        assert len(operations) == 1, "one operation enum per policy"
        missing = set(next(iter(operations))) - set(table)
        assert not missing, f"operations without roles: {sorted(m.name for m in missing)}"
        self.table: Mapping[Op, frozenset[Role]] = dict(table)

    def roles(self, operation: Op) -> frozenset[Role]:
        return self.table[operation]

    def allows(self, principal: Principal, operation: Op) -> bool:
        return principal.role in self.table[operation]

    def require(self, principal: Principal, operation: Op) -> None:
        """Raise ``Forbidden`` unless the caller's role may perform the operation."""
        if not self.allows(principal, operation):
            raise Forbidden(operation)


# Role sets the domains' tables share.
VENDOR_ADMIN = frozenset({Role.VENDOR_ADMIN})
FINANCE = frozenset({Role.FINANCE})
FINANCE_OR_ADMIN = frozenset({Role.FINANCE, Role.VENDOR_ADMIN})
VENDOR_STAFF = frozenset({Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE})
PARTNER_USERS = PARTNER_ROLES
# Who reviews partner submissions (row-level: a channel manager only its assigned partners).
REVIEWERS = frozenset({Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER})
PARTNERS_AND_REVIEWERS = PARTNER_USERS | REVIEWERS
ADMINS = frozenset({Role.VENDOR_ADMIN, Role.PARTNER_ADMIN})


class TenancyOp(StrEnum):
    API_KEY_CREATE = "apiKeyCreate"
    API_KEY_REVOKE = "apiKeyRevoke"
    API_KEYS_READ = "apiKeys"
    USERS_READ = "users"
    OUTBOX_EVENTS_READ = "outboxEvents"


TENANCY = Policy[TenancyOp](
    {
        TenancyOp.API_KEY_CREATE: VENDOR_ADMIN,
        TenancyOp.API_KEY_REVOKE: VENDOR_ADMIN,
        TenancyOp.API_KEYS_READ: VENDOR_ADMIN,
        TenancyOp.USERS_READ: ADMINS,
        TenancyOp.OUTBOX_EVENTS_READ: VENDOR_ADMIN,
    }
)


# --- Users (issue 12, item 3): role changes, deactivation, reactivation. Row-level: a vendor
# admin acts on any user of its vendor, a partner admin on its own organisation's users
# (``repository.readable_users``), and only a vendor admin may make someone vendor staff.
class UserOp(StrEnum):
    USER_ROLE_CHANGE = "userRoleChange"
    USER_DEACTIVATE = "userDeactivate"
    USER_REACTIVATE = "userReactivate"


USERS = Policy[UserOp](
    {
        UserOp.USER_ROLE_CHANGE: ADMINS,
        UserOp.USER_DEACTIVATE: ADMINS,
        UserOp.USER_REACTIVATE: ADMINS,
    }
)


# --- partner administration (issue 12: partners/admin.py, partners/imports.py) ---
class PartnerOp(StrEnum):
    PARTNER_CREATE = "partnerCreate"
    # Row-level: a channel manager may change only the contacts and tags of its assigned
    # partners (partners/admin.py MANAGER_EDITABLE); a vendor admin every field.
    PARTNER_UPDATE = "partnerUpdate"
    PARTNER_SUSPEND = "partnerSuspend"
    PARTNER_REACTIVATE = "partnerReactivate"
    PARTNER_ARCHIVE = "partnerArchive"
    PARTNERS_IMPORT = "partnersImport"
    MANAGER_ASSIGN = "partnerManagerAssign"
    MANAGER_UNASSIGN = "partnerManagerUnassign"


PARTNERS = Policy[PartnerOp](
    {
        PartnerOp.PARTNER_CREATE: VENDOR_ADMIN,
        PartnerOp.PARTNER_UPDATE: REVIEWERS,
        PartnerOp.PARTNER_SUSPEND: VENDOR_ADMIN,
        PartnerOp.PARTNER_REACTIVATE: VENDOR_ADMIN,
        PartnerOp.PARTNER_ARCHIVE: VENDOR_ADMIN,
        PartnerOp.PARTNERS_IMPORT: VENDOR_ADMIN,
        PartnerOp.MANAGER_ASSIGN: VENDOR_ADMIN,
        PartnerOp.MANAGER_UNASSIGN: VENDOR_ADMIN,
    }
)


# --- partner applications (issue 12: partners/applications.py); partnerApply and
# partnerApplicationStatus are unauthenticated and have no row here ---
class ApplicationOp(StrEnum):
    APPLICATIONS_READ = "partnerApplications"
    APPLICATION_APPROVE = "partnerApplicationApprove"
    APPLICATION_REJECT = "partnerApplicationReject"


APPLICATIONS = Policy[ApplicationOp](
    {
        ApplicationOp.APPLICATIONS_READ: REVIEWERS,
        ApplicationOp.APPLICATION_APPROVE: REVIEWERS,
        ApplicationOp.APPLICATION_REJECT: REVIEWERS,
    }
)


# --- Invitations (issue 12, item 2) ---------------------------------------------------
# Row-level: a partner admin invites only its own organisation's users (PARTNER_ADMIN,
# PARTNER_REP) and sees only its organisation's invitations (partners.invitations).


class InvitationOp(StrEnum):
    CREATE = "invitationCreate"
    RESEND = "invitationResend"
    REVOKE = "invitationRevoke"
    READ = "invitations"


INVITATIONS = Policy[InvitationOp](
    {
        InvitationOp.CREATE: ADMINS,
        InvitationOp.RESEND: ADMINS,
        InvitationOp.REVOKE: ADMINS,
        InvitationOp.READ: ADMINS,
    }
)

"""The one access predicate every ``readable_*`` statement composes (Polar's
``select_accessible_org_ids``): which of a vendor's partners a caller may read, and which
rows of a partner-owned table follow from that.

- vendor admins and finance: every partner of their vendor;
- a channel manager: the partners assigned to it;
- partner admins and reps: their own partner;
- on rows a rep owns (a claim, a registration, an earning), a rep reads only its own —
  and nothing when the principal names no user (the guard once missing from claims);
- on organisation-level rows (statements, holds, the organisation's signal snapshots, the
  rule firings addressed to it), reps read nothing: a rep reads its own figures, never the
  organisation's money, performance or holds (``reads_organisation_records``).

Nothing crosses vendors: the vendor filter is part of the predicate.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, and_, false
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from partners.models import ManagerAssignment, Partner
from partners.roles import Principal, Role


class RepAccess(Enum):
    """What a partner rep reads of a partner-owned table that has no owner column."""

    PARTNER = "PARTNER"  # its partner's rows, as a partner admin (partners themselves)
    NONE = "NONE"  # nothing: organisation-level records (statements, holds, signals, firings)


def reads_organisation_records(principal: Principal) -> bool:
    """Whether the caller reads the organisation-level records (``RepAccess.NONE``) of the
    partners it may read: every role but a partner rep, which reads its own rows and
    figures only. Reads that answer a rep with its own figures instead of the
    organisation's (``signals``) ask this; ``scope`` applies it to every such table."""
    return principal.role is not Role.PARTNER_REP


def assigned_partner_ids(principal: Principal) -> SelectOfScalar[uuid.UUID]:
    """The partners a channel manager looks after."""
    return select(ManagerAssignment.partner_id).where(
        ManagerAssignment.manager_id == principal.user_id,
        ManagerAssignment.vendor_id == principal.vendor_id,
    )


def accessible_partner_ids(principal: Principal) -> SelectOfScalar[uuid.UUID]:
    """The ids of the partners the caller may read, as a subquery to compose."""
    return select(Partner.id).where(scope(principal, Partner.vendor_id, Partner.id))


def scope(
    principal: Principal,
    vendor_column: Any,
    partner_column: Any,
    owner: Any | RepAccess = RepAccess.PARTNER,
) -> ColumnElement[bool]:
    """The rows of a partner-owned table the caller may read. ``owner`` is the column
    naming the rep a row belongs to (reps then read only their own rows), or a
    ``RepAccess`` for tables without one."""
    vendor = col(vendor_column) == principal.vendor_id
    if owner is RepAccess.NONE and not reads_organisation_records(principal):
        return false()
    match principal.role:
        case Role.VENDOR_ADMIN | Role.FINANCE:
            return vendor
        case Role.CHANNEL_MANAGER:
            return and_(vendor, col(partner_column).in_(assigned_partner_ids(principal)))
        case Role.PARTNER_ADMIN:
            return and_(vendor, col(partner_column) == principal.partner_id)
        case Role.PARTNER_REP:
            partner = col(partner_column) == principal.partner_id
            if owner is RepAccess.PARTNER:
                return and_(vendor, partner)
            if principal.user_id is None:
                return false()
            return and_(vendor, partner, col(owner) == principal.user_id)
    return false()  # DISPLAY: a screen reads no partner-owned rows

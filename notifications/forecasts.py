"""Concentration guardrails (``forecasts.events.ConcentrationAlerted``) as notifications:
vendor-internal, to the vendor's admins and finance (who reconcile what the largest partners
earn). Partner users are never told, not even the partners it names."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forecasts.events import ConcentrationAlerted
from forecasts.models import GuardrailScope, ShareMetric
from infra.outbox import OutboxEvent
from notifications.delivery import Notice, to_each
from notifications.models import Category
from partners.group_models import PartnerGroup
from partners.models import Partner, User
from partners.roles import Role


async def _vendor_staff(session: AsyncSession, vendor_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.exec(
        select(User.id).where(
            User.vendor_id == vendor_id,
            col(User.partner_id).is_(None),
            col(User.role).in_([Role.VENDOR_ADMIN, Role.FINANCE]),
            col(User.active).is_(True),
        )  # fmt: skip
    )
    return list(rows)


async def _scope(session: AsyncSession, alert: ConcentrationAlerted) -> str | None:
    """None for the whole program; the region, or the group's name."""
    if alert.scope == GuardrailScope.REGION.value:
        return alert.scope_value
    if alert.scope == GuardrailScope.GROUP.value:
        group = await session.get(PartnerGroup, uuid.UUID(alert.scope_value))
        return group.name if group is not None else alert.scope_value
    return None


async def concentration_alerted(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    alert = ConcentrationAlerted.parse(event.payload)
    ids = [uuid.UUID(p) for p in alert.top_partner_ids]
    names = dict(
        (await session.exec(select(Partner.id, Partner.name).where(col(Partner.id).in_(ids)))).all()
    )
    params = {
        "quarter": alert.quarter, "basis": alert.basis,
        "top_n": 1 if alert.metric == ShareMetric.TOP_PARTNER_SHARE.value else alert.top_n,
        "scope": await _scope(session, alert),
        "share": alert.share_bp / 10_000, "max_share": alert.max_share_bp / 10_000,
        "partners": [names.get(i, str(i)) for i in ids],
    }  # fmt: skip
    staff = await _vendor_staff(session, event.vendor_id)
    return to_each(staff, event, Category.CONCENTRATION, "concentration_alert", params,
                   alert.alert_id)  # fmt: skip

"""Live next best actions: a notice per partner on the events that change what its
actions are built from (its earnings and holds, its claims, its deals, its sales, a rule's
recommendations appearing or withdrawn, its groups: the BASE program its next tier reads),
and one per vendor when a program gets a new
version (every partner's next tier), published through the Hub so a subscriber on any
process re-reads its list."""

from __future__ import annotations

from deal_registration.events import (
    CLAIM_STATE_CHANGED,
    DEAL_PROTECTION_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
)
from earnings.events import EARNINGS_CHANGED, PROGRAM_CHANGED
from incentives.events import RULE_EFFECTS_ENDED, RULE_FIRED
from infra.outbox import OutboxEvent, Registration, batch
from infra.pubsub import Hub
from partners.events import GROUP_MEMBERSHIPS_CHANGED, GroupMembershipsChanged

TRIGGERS = [
    EARNINGS_CHANGED,
    CLAIM_STATE_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_PROTECTION_CHANGED,  # an extension moves an expiring deal's end
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    RULE_FIRED,  # a rule's firing may recommend an action
    RULE_EFFECTS_ENDED,  # a rollback withdraws its recommendations
    PROGRAM_CHANGED,  # a program's new version: every partner's next tier (the vendor's)
    # Partners joining or leaving groups (many per event). A pilot's control arm joins
    # nothing, so its partners hear nothing, exactly like partners outside the pilot.
    GROUP_MEMBERSHIPS_CHANGED,
]


def _partners(event: OutboxEvent) -> list[str]:
    if event.type == GROUP_MEMBERSHIPS_CHANGED:
        return [str(p) for p in GroupMembershipsChanged.parse(event.payload).partner_ids]
    partner_id = event.payload.get("partner_id")
    return [str(partner_id)] if partner_id else []


def channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("next-actions", partner_id)


def vendor_channel(hub: Hub, vendor_id: object) -> str:
    """What changes every partner's actions of a vendor at once (a program's version)."""
    return hub.channel("next-actions-vendor", vendor_id)


def handlers(hub: Hub, triggers: list[str] | None = None) -> list[Registration]:
    """``triggers`` adds other event types that carry a ``partner_id``."""

    async def publish(events: list[OutboxEvent]) -> None:
        # One notice per partner and run; a subscriber re-reads on any notice.
        last = {partner_id: e for e in events for partner_id in _partners(e)}
        for partner_id, event in last.items():
            await hub.publish(channel(hub, partner_id), str(event.id))
        vendors = {str(e.vendor_id): e for e in events if e.type == PROGRAM_CHANGED}
        for vendor_id, event in vendors.items():
            await hub.publish(vendor_channel(hub, vendor_id), str(event.id))

    return [batch([*TRIGGERS, *(triggers or [])], publish)]

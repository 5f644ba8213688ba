"""What deal registration does after its events commit: live notices of deal status
changes and of sale-claim state changes, published on the partners' and vendors' channels
(cheap, latency-sensitive: the composition root registers them first)."""

from __future__ import annotations

from deal_registration.events import CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED
from deal_registration.registrations import notices
from deal_registration.sales import fanout
from infra.outbox import Registration, batch
from infra.pubsub import Hub


def handlers(hub: Hub) -> list[Registration]:
    return [
        batch([DEAL_STATUS_CHANGED], notices.publisher(hub)),
        batch([CLAIM_STATE_CHANGED], fanout.publisher(hub)),
    ]

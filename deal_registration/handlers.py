"""What deal registration does after its events commit: live notices of deal status
changes and of sale-claim state changes, published on the partners' and vendors' channels
(cheap, latency-sensitive: live, so they also run in the dispatcher's live lane, ahead of
a pass's slow handlers)."""

from __future__ import annotations

from deal_registration.events import CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED
from deal_registration.registrations import notices
from deal_registration.sales import fanout
from infra.outbox import Registration, batch
from infra.pubsub import Hub


def handlers(hub: Hub) -> list[Registration]:
    return [
        batch([DEAL_STATUS_CHANGED], notices.publisher(hub), live=True),
        batch([CLAIM_STATE_CHANGED], fanout.publisher(hub), live=True),
    ]

"""What subscriptions that tell every change (not only the latest state) share."""

from __future__ import annotations

import uuid
from collections import OrderedDict

NOTICE_QUEUE = 1024
"""Notices a subscription holds for a slow client: every change is told, so this is
generous (pub/sub's default drops the oldest once a few are waiting)."""


class RecentEvents:
    """The ids of the last notices told: a notice published again (a dispatcher run that
    is re-run after a failure re-publishes its events) is told once."""

    def __init__(self, size: int = NOTICE_QUEUE) -> None:
        self.size = size
        self._ids: OrderedDict[uuid.UUID, None] = OrderedDict()

    def first_time(self, event_id: uuid.UUID | None) -> bool:
        if event_id is None:
            return True  # a notice without an id (from an older process)
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True

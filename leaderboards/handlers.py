"""What leaderboards do after events commit: credit approved sales, reversals and won deals
to live contests (one batch per run), and rebuild and announce a contest whose settings
changed. Both idempotent; the work itself is the runtime's (``leaderboards.runtime``)."""

from __future__ import annotations

from infra.outbox import Registration, batch, each
from leaderboards.events import CONTEST_CHANGED
from leaderboards.runtime import Leaderboards
from leaderboards.scoring import SCORED_EVENT_TYPES


def handlers(runtime: Leaderboards) -> list[Registration]:
    return [
        # Live: the dispatcher's live lane scores what commits during a pass at once.
        batch(SCORED_EVENT_TYPES, runtime.on_source_events, live=True),
        each(CONTEST_CHANGED, runtime.on_contest_changed),
    ]

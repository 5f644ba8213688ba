"""Applying a batch of ledger rows to Redis: one ``credit_many`` call per board (contest and
period) and up to ``CHUNK`` credits, all pipelined in one round trip. The outbox consumer
calls this; the scoring benchmark measures it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from leaderboards.models import Contest, ContestCredit
from leaderboards.scoring import (
    AnyPipeline,
    BatchItem,
    BoardKeys,
    BoardMode,
    Scripts,
    queue_credits,
    target_for,
)

# Items per script call: big enough to amortise the call, small enough that one call does
# not hold Redis (single-threaded) for more than a millisecond or two.
CHUNK = 1000


@dataclass(frozen=True)
class BoardBatch:
    """Credits for one board, in commit order (the script applies them in that order, so a
    reversal after its approval in the same batch finds the approval's score)."""

    contest_id: uuid.UUID
    keys: BoardKeys
    mode: BoardMode
    period_key: str
    items: list[BatchItem]


def plan(
    rows: Iterable[ContestCredit],
    contests: dict[uuid.UUID, Contest],
    keys_of: Callable[[uuid.UUID], BoardKeys],
    *,
    chunk: int = CHUNK,
) -> list[BoardBatch]:
    """Group ledger rows by board, keeping commit order within each board."""
    grouped: dict[tuple[uuid.UUID, str], list[BatchItem]] = {}
    for row in rows:
        contest = contests[row.contest_id]
        grouped.setdefault((row.contest_id, row.period_key), []).append(
            BatchItem(
                row.event_id,
                row.participant_id,
                row.delta,
                row.tick,
                target_for(contest, row.participant_id),
            )  # fmt: skip
        )
    batches: list[BoardBatch] = []
    for (contest_id, period_key), items in grouped.items():
        keys = keys_of(contest_id)
        mode = BoardMode.of(contests[contest_id])
        for start in range(0, len(items), chunk):
            batches.append(
                BoardBatch(contest_id, keys, mode, period_key, items[start : start + chunk])
            )
    return batches


async def apply(scripts: Scripts, batches: list[BoardBatch]) -> list[int]:
    """One pipelined round trip (one per node on a cluster: each board's keys share a slot);
    per batch the contest's new version, DUPLICATE (nothing new) or NOT_BUILT (Redis lost
    the contest: rebuild from the ledger, then retry)."""
    if not batches:
        return []

    async def queue(pipe: AnyPipeline) -> None:
        for b in batches:
            await queue_credits(scripts, pipe, b.keys, b.mode, b.period_key, b.items)

    return [int(result) for result in await scripts.pipelined(queue)]

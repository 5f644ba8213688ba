"""The daily evaluation: once a day, every active rule over every partner's snapshot of the
day (the windows move and "days since" grows with no event at all). Runs beside the outbox
dispatcher (inline in each API process, or in `channelboard dispatch`), like the contest
closer; a row per vendor and day makes it run once a day whatever the number of
processes, and firings are idempotent anyway."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from incentives.evaluation import evaluate_vendor
from incentives.models import IncentiveRule, RuleDailyRun, RuleStatus
from infra import passes
from infra.clock import Clock
from infra.db import Database, begin_write
from signals.maintenance import take_due

log = logging.getLogger(__name__)

TRIGGER = "DAILY"


async def run_due(db: Database, clock: Clock) -> int:
    """Run today's evaluation for every vendor with active rules that has not had it.
    Returns how many firings were written."""
    today = clock.now().date()
    async with db.session() as session:
        done = select(RuleDailyRun.vendor_id).where(RuleDailyRun.day == today.isoformat())
        vendors: list[uuid.UUID] = sorted(
            set(
                await session.exec(
                    select(IncentiveRule.vendor_id).where(
                        IncentiveRule.status == RuleStatus.ACTIVE,
                        col(IncentiveRule.vendor_id).not_in(done),
                    )
                )
            )
        )

    async def run(vendor_id: uuid.UUID) -> int:
        # Today's snapshots of partners that had no activity yet today (the signals' own
        # daily job does the same; whichever runs first takes them), in a transaction of
        # their own: the vendor's signal lock (signals.locks) is not held through the
        # evaluation.
        async with db.transaction() as session:
            await take_due(session, clock, vendor_id)
        async with db.transaction() as session:
            await begin_write(session)
            run = RuleDailyRun(vendor_id=vendor_id, day=today.isoformat(), ran_at=clock.now())
            session.add(run)
            await session.flush()  # another process ran it: IntegrityError, nothing kept
            out = await evaluate_vendor(
                session, clock, vendor_id=vendor_id, day=today, trigger=TRIGGER
            )
            run.firings = len(out.firings)
            session.add(run)
            return len(out.firings)

    return await passes.each(
        f"daily rule run of {today} for vendor", vendors, run, expected=(IntegrityError,)
    )


async def run_daily(db: Database, clock: Clock, interval: float = 60.0) -> None:
    """Check every ``interval`` seconds whether a vendor's day is due (the first check an
    interval after start: a process starting is no reason to evaluate)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_due(db, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the daily rule evaluation failed; retrying")

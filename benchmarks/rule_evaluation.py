"""Incentive rule evaluation: 50 active rules over 10,000 partners' signal snapshots.

    .venv/bin/python -m benchmarks.rule_evaluation [--partners 10000] [--rules 50]
        [--fire-share 0.02] [--url sqlite+aiosqlite:///...]

Seeds a vendor with ``--partners`` partners and one snapshot each for today (random but
seeded values for every signal), ``--rules`` rules (approved, a mix of conditions and
actions: recommendations, group windows, rate overlays, staff notices, payout reviews),
each tuned to fire for about ``--fire-share`` of the partners, then times:

- the CEL conditions alone (rules x partners evaluations, no database);
- the daily run (``incentives.daily.run_due``): reading the snapshots, evaluating every
  rule, and writing every firing with its actions, audit entry and outbox event.

Prints figures; not part of the test run. The issue's target: under 30 s on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from api import migrations
from benchmarks.common import machine_speed
from earnings import programs
from earnings.models import ProgramKind
from earnings.programs import BaseRate, Rules
from incentives import rules as rule_service
from incentives.actions import Action, ActionKind
from incentives.daily import run_due
from incentives.evaluation import active_rules
from incentives.models import IncentiveRuleVersion, Period
from infra.clock import FrozenClock
from infra.db import Database
from partners import groups
from partners import service as partners_service
from partners.models import Partner, PartnerStatus
from partners.roles import Principal, Role
from signals.definitions import DEFINITIONS, Unit
from signals.models import SignalSnapshot
from signals.snapshots import values_at

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)

# (signal, comparison) pairs the rules combine; thresholds are set per rule from the data so
# that each fires for about the requested share.
NUMERIC = [n for n, d in DEFINITIONS.items() if d.unit in (Unit.MONEY, Unit.COUNT, Unit.RATIO)]


def random_values(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, d in DEFINITIONS.items():
        match d.unit:
            case Unit.MONEY:
                out[name] = rng.randint(0, 5_000_000)
            case Unit.RATIO:
                out[name] = None if rng.random() < 0.05 else round(rng.uniform(-0.5, 1.0), 4)
            case Unit.COUNT | Unit.DAYS:
                out[name] = rng.randint(0, 60)
            case Unit.BOOL:
                out[name] = rng.random() < 0.8
    return out


def threshold(values: list[dict[str, Any]], name: str, share: float) -> Any:
    present = sorted(v[name] for v in values if v[name] is not None)
    return present[int(len(present) * (1 - share))]


async def seed(db: Database, clock: FrozenClock, partners: int, rules: int, share: float) -> None:
    rng = random.Random(13)
    async with db.transaction() as s:
        vendor = await partners_service.create_vendor(
            s, clock, name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}"
        )
        author = await partners_service.create_user(
            s, clock, vendor_id=vendor.id, email="a@bench.example", role=Role.VENDOR_ADMIN,
            display_name="A",
        )  # fmt: skip
        approver = await partners_service.create_user(
            s, clock, vendor_id=vendor.id, email="b@bench.example", role=Role.VENDOR_ADMIN,
            display_name="B",
        )  # fmt: skip
        admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN, user_id=author.id)
        second = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN, user_id=approver.id)
        base = await programs.create_program(
            s, admin, clock, name="Base", currency="USD",
            rules=Rules(base_rates=(BaseRate(rate_bp=800),)), effective_from=NOW,
        )  # fmt: skip
        group = await groups.create_group(s, admin, clock, name="Boost")
        await programs.create_program(
            s, admin, clock, name="Boost bonus", currency="USD",
            rules=Rules(base_rates=(BaseRate(rate_bp=200),)), effective_from=NOW,
            kind=ProgramKind.BONUS, target_group_ids=[group.id],
        )  # fmt: skip
        rows = [
            Partner(vendor_id=vendor.id, name=f"P{i}", region="EMEA",
                    status=PartnerStatus.ACTIVE, created_at=NOW)
            for i in range(partners)
        ]  # fmt: skip
        s.add_all(rows)
        await s.flush()
        values = [random_values(rng) for _ in rows]
        s.add_all(
            SignalSnapshot(partner_id=p.id, day=NOW.date(), vendor_id=vendor.id, currency="USD",
                           values=v, computed_at=NOW)
            for p, v in zip(rows, values, strict=True)
        )  # fmt: skip
        await s.flush()
        kinds = [
            Action(ActionKind.RECOMMEND, days=14, title="Boost", text="Sell more."),
            Action(ActionKind.GROUP_WINDOW, days=30, group_id=group.id),
            Action(ActionKind.RATE_OVERLAY, days=30, program_id=base.program_id, delta_bp=100),
            Action(ActionKind.NOTIFY_STAFF, message="Look."),
            Action(ActionKind.PAYOUT_HOLD, days=14, partner_reason="We review this payout."),
        ]
        for r in range(rules):
            first, second_name = rng.sample(NUMERIC, 2)
            # Two conditions, each holding for sqrt(share) of the partners.
            part = share**0.5
            condition = (
                f"{first} != null && {second_name} != null && "
                f"{first} >= {threshold(values, first, part)!r} && "
                f"{second_name} >= {threshold(values, second_name, part)!r}"
            )
            rule = await rule_service.create_rule(
                s, admin, clock, name=f"Rule {r}", condition=condition,
                actions=[kinds[r % len(kinds)]], period=Period.WEEK,
            )  # fmt: skip
            [version] = await s.exec(
                select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
            )
            await rule_service.approve(s, second, clock, version_id=version, reason="bench")


async def main(url: str, partners: int, rules: int, share: float) -> None:
    print(machine_speed())
    await migrations.upgrade(url)
    db = Database(url)
    clock = FrozenClock(NOW)
    started = time.perf_counter()
    await seed(db, clock, partners, rules, share)
    print(f"seeded {partners} partners, {rules} rules in {time.perf_counter() - started:.1f} s")
    async with db.session() as s:
        vendor_id = (await s.exec(select(Partner.vendor_id).limit(1))).one()
        t = time.perf_counter()
        values = await values_at(s, vendor_id, NOW.date())
        read = time.perf_counter() - t
        compiled = await active_rules(s, vendor_id)
    t = time.perf_counter()
    holds = sum(1 for c in compiled for v in values.values() if c.condition.holds(v))
    cel = time.perf_counter() - t
    print(f"read {len(values)} snapshots: {read:.2f} s")
    print(
        f"CEL alone: {len(compiled)} rules x {len(values)} partners = "
        f"{len(compiled) * len(values)} evaluations in {cel:.2f} s "
        f"({cel / max(1, len(compiled) * len(values)) * 1e6:.2f} us each); {holds} hold"
    )
    t = time.perf_counter()
    fired = await run_due(db, clock)
    total = time.perf_counter() - t
    print(f"daily run (read, evaluate, write firings and actions): {total:.2f} s, {fired} firings")
    await db.dispose()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partners", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--fire-share", type=float, default=0.02)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    if args.url:
        asyncio.run(main(args.url, args.partners, args.rules, args.fire_share))
        return
    with tempfile.TemporaryDirectory(prefix="cbbench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(main(url, args.partners, args.rules, args.fire_share))


if __name__ == "__main__":
    cli()

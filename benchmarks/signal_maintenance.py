"""Signal maintenance: CPU per approval of the signal handlers, and a full rebuild.

    .venv/bin/python -m benchmarks.signal_maintenance handlers [--approvals 1000] [--run 20]
        [--partners 200] [--reps 3] [--claims 0] [--credit-first] [--url URL]
    .venv/bin/python -m benchmarks.signal_maintenance rebuild --url postgresql+asyncpg://...
        [--partners 10000] [--entries 1000000]

``handlers``: approvals (each a claim with its approval decision, naming one of its
partner's ``--reps`` reps, default 3) are credited by earnings (not measured) just before
the run that handles them (``--credit-first``: all before the first run), and the events
an approval gives the signal handler — its claim's SaleClaimStateChanged (which says its
credit follows: the handler leaves it to the credit's event) and the credit's
EarningsChanged — are handled in the dispatcher's runs of ``--run`` events; each partner
(and each of its reps) already has 90 days of facts and a snapshot, and the vendor
``--claims`` decided claims over those days. The figure is the
process CPU time
(``time.process_time``) spent in ``signals.handlers.apply`` divided by the approvals (on
SQLite that includes the database engine, which runs in the process); on PostgreSQL the
CPU of its backends serving the benchmark's database is read from /proc (a server on this
machine) and shown beside it.

``rebuild``: a fresh vendor with ``--partners`` partners and ``--entries`` ledger entries
(sales with a commission and a tier uplift each, 10 % refunded with their clawbacks, over
180 days) loaded with COPY, then ``signals.maintenance.rebuild`` timed.

Prints figures; not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select

from api import migrations
from api.composition import build_claim_signals
from benchmarks.common import CollectorTime, machine_speed
from deal_registration.events import Line, SaleApproved, SaleClaimStateChanged
from deal_registration.sales.models import ClaimState, DecisionAction, SaleClaim, SaleClaimDecision
from earnings import ledger, programs
from earnings.events import EARNINGS_CHANGED
from earnings.programs import BaseRate, Rules, Tier
from infra.clock import FrozenClock
from infra.db import Database, begin_write
from infra.ids import new_id
from infra.outbox import OutboxEvent, record_event
from partners import service as partners_service
from partners.models import Partner, User
from partners.roles import Principal, Role
from signals import handlers, maintenance
from signals import reps as signal_reps
from signals.facts import COUNTERS, REP_COUNTERS
from signals.models import SignalFact, SignalRepFact

START = datetime(2026, 6, 1, 10, tzinfo=UTC)


async def _vendor(
    db: Database, clock: FrozenClock, partners: int
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    async with db.transaction() as s:
        vendor = await partners_service.create_vendor(
            s, clock, name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}"
        )
        admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
        rules = Rules(base_rates=(BaseRate(800),), tiers=(Tier("Silver", 1_000_000, 100),))
        await programs.create_program(
            s, admin, clock, name="Bench", currency="USD", rules=rules,
            effective_from=START - timedelta(days=400),
        )  # fmt: skip
        rows = [
            Partner(vendor_id=vendor.id, name=f"P{i:05d}", region="EMEA", created_at=clock.now())
            for i in range(partners)
        ]
        table = Partner.__table__  # type: ignore[attr-defined]
        for i in range(0, len(rows), 2000):
            await s.execute(
                table.insert(), [r.model_dump(exclude={"name_key"}) for r in rows[i : i + 2000]]
            )
    return vendor.id, [r.id for r in rows]


async def _claimant(s: Any, clock: FrozenClock, vendor_id: uuid.UUID) -> User:
    """The user the benchmark's claims name (a vendor user: the reps are no user rows)."""
    user = User(
        vendor_id=vendor_id, email=f"{uuid.uuid4().hex}@bench.example", display_name="B",
        role=Role.VENDOR_ADMIN, created_at=clock.now(),
    )  # fmt: skip
    s.add(user)
    await s.flush()
    return user


async def _claims_history(
    db: Database, clock: FrozenClock, vendor_id: uuid.UUID, partner_ids: list[uuid.UUID], n: int
) -> None:
    """``n`` claims of the vendor's partners over the 90 days before, each approved (a claim
    and its decision): what a day's decisions are read among."""
    rng = random.Random(3)
    async with db.transaction() as s:
        user = await _claimant(s, clock, vendor_id)
        claims, decisions = [], []
        for i in range(n):
            # Before the benchmark's day: the day's decisions are the approvals' alone.
            at = START.replace(hour=0) - timedelta(seconds=rng.randrange(1, 90 * 86_400))
            partner = rng.choice(partner_ids)
            claim_id = new_id()
            claims.append(
                {"id": claim_id, "vendor_id": vendor_id, "partner_id": partner,
                 "rep_user_id": user.id, "customer_name": "C", "invoice_number": f"H-{i}",
                 "sale_date": at.date(), "amount_minor": 50_000, "currency": "USD",
                 "state": ClaimState.APPROVED, "created_at": at, "updated_at": at}
            )  # fmt: skip
            decisions.append(
                {"id": new_id(), "claim_id": claim_id, "partner_id": partner,
                 "action": DecisionAction.APPROVED, "from_state": ClaimState.UNDER_REVIEW,
                 "to_state": ClaimState.APPROVED, "note": "", "decided_at": at}
            )  # fmt: skip
        tables: list[tuple[Any, list[dict[str, Any]]]] = [
            (SaleClaim.__table__, claims),  # type: ignore[attr-defined]
            (SaleClaimDecision.__table__, decisions),  # type: ignore[attr-defined]
        ]
        for table, rows in tables:
            for i in range(0, len(rows), 5000):
                await s.execute(table.insert(), rows[i : i + 5000])


async def handlers_bench(
    url: str,
    approvals: int,
    run: int,
    partners: int,
    reps_per_partner: int,
    history: int,
    credit_first: bool = False,
) -> None:
    await migrations.upgrade(url)
    db = Database(url)
    clock = FrozenClock(START)
    vendor_id, partner_ids = await _vendor(db, clock, partners)
    rng = random.Random(7)
    # Each partner's reps (``earning_source.rep_user_id`` is no foreign key): the sales of
    # the history and the approvals name one of them (none with --reps 0).
    reps = {p: [uuid.uuid4() for _ in range(reps_per_partner)] for p in partner_ids}
    # 90 days of history per partner: facts (a sale every third day) and today's snapshot.
    async with db.transaction() as s:
        rows: list[dict[str, Any]] = []
        for p in partner_ids:
            for d in range(1, 91, 3):
                rows.append(
                    {"partner_id": p, "day": (START - timedelta(days=d)).date(),
                     "vendor_id": vendor_id, "currency": "USD",
                     **dict.fromkeys(COUNTERS, 0), "sales": 1, "sales_minor": 50_000,
                     "earnings_minor": 4_000, "margin_minor": 20_000, "response_seconds": []}
                )  # fmt: skip
        await s.execute(SignalFact.__table__.insert(), rows)  # type: ignore[attr-defined]
        rep_rows = [
            {"partner_id": r["partner_id"], "rep_user_id": reps[r["partner_id"]][i % len(
                reps[r["partner_id"]])], "day": r["day"], "vendor_id": vendor_id,
             "currency": "USD", **dict.fromkeys(REP_COUNTERS, 0), "sales": 1,
             "sales_minor": 50_000}
            for i, r in enumerate(rows) if reps_per_partner
        ]  # fmt: skip
        if rep_rows:
            await s.execute(SignalRepFact.__table__.insert(), rep_rows)  # type: ignore[attr-defined]
        await begin_write(s)
        await maintenance.take(s, clock, vendor_id, "USD", partner_ids, [START.date()])
        await signal_reps.take(s, clock, vendor_id, "USD", partner_ids, START.date())
    if history:
        await _claims_history(db, clock, vendor_id, partner_ids, history)
    signals = build_claim_signals()
    # Approvals: a SaleApproved (credited by earnings, not measured) and the claim's state
    # notice; crediting records EarningsChanged.
    approved: list[OutboxEvent] = []
    notices: list[OutboxEvent] = []
    async with db.transaction() as s:
        claimant = await _claimant(s, clock, vendor_id)
        for i in range(approvals):
            clock.set(START + timedelta(seconds=20 * i))
            partner = rng.choice(partner_ids)
            rep = rng.choice(reps[partner]) if reps_per_partner else None
            # The claim and its approval, as the claims service writes them: the claims of
            # the partner's day move with the approval (the reps above are no user rows:
            # the claim names a user of the vendor; a rep's claim counters count
            # submissions only).
            claim = SaleClaim(
                vendor_id=vendor_id, partner_id=partner, rep_user_id=claimant.id,
                customer_name="C", invoice_number=f"INV-{i}", sale_date=clock.now().date(),
                amount_minor=91_800, currency="USD", state=ClaimState.APPROVED,
                created_at=clock.now(), updated_at=clock.now(),
            )  # fmt: skip
            s.add(claim)
            await s.flush()
            s.add(
                SaleClaimDecision(
                    claim_id=claim.id,
                    partner_id=partner,
                    action=DecisionAction.APPROVED,
                    from_state=ClaimState.UNDER_REVIEW,
                    to_state=ClaimState.APPROVED,
                    note="",
                    decided_at=clock.now(),
                )  # fmt: skip
            )
            claim_id = claim.id
            sale = SaleApproved(
                claim_id=claim_id, partner_id=partner, rep_user_id=rep,
                region="EMEA",
                currency="USD", amount_minor=91_800, lines=[Line("NW-AP-6E", 2, 91_800)],
                sold_at=clock.now(), approved_at=clock.now(),
            )  # fmt: skip
            approved.append(
                await record_event(
                    s,
                    clock,
                    vendor_id=vendor_id,
                    type=sale.type,
                    aggregate_id=claim_id,
                    payload=sale.to_payload(),
                )  # fmt: skip
            )
            state = SaleClaimStateChanged(claim_id, partner, rep, "APPROVED", credit_follows=True)
            notices.append(
                await record_event(
                    s,
                    clock,
                    vendor_id=vendor_id,
                    type=state.type,
                    aggregate_id=claim_id,
                    payload=state.to_payload(),
                )  # fmt: skip
            )
    # The dispatcher's order: each approval's notice, then (after crediting) its
    # EarningsChanged; runs of ``run`` events. Each run's approvals are credited just before
    # it (not measured), as the dispatcher credits a sale before the signal handler hears
    # of it: the day's sources then hold the credits up to the run's, not the whole day's
    # (``--credit-first``: all credited before the first run, as this benchmark did before
    # 2026-12-07; a partner's first run then found every credit of its day, and its later
    # runs had nothing to write).
    stream: list[OutboxEvent | None] = [e for n in notices for e in (n, None)]
    credited = 0

    async def credit(upto: int) -> None:
        nonlocal credited
        for i in range(credited, upto, run):
            clock.set(approved[i].occurred_at)
            await ledger.credit_many(db, clock, approved[i : min(i + run, upto)], signals=signals)
        async with db.session() as s:
            changed = list(
                await s.exec(
                    select(OutboxEvent)
                    .where(OutboxEvent.type == EARNINGS_CHANGED, OutboxEvent.vendor_id == vendor_id)
                    .order_by(col(OutboxEvent.id))
                    .offset(credited)
                )
            )
        for k, event in enumerate(changed):
            stream[2 * (credited + k) + 1] = event
        credited = upto

    if credit_first:
        await credit(approvals)
    collector = CollectorTime()
    cpu = wall = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    server_before = await _server_cpu(db, url)
    for i in range(0, len(stream), run):
        if (i + run) // 2 > credited:  # the run's EarningsChanged: credited first
            # The backends' CPU while crediting is left out: read from /proc alone before
            # it (no query), with the query for new backends after it.
            paused = {pid: _proc_cpu(pid, tick) or 0.0 for pid in server_before}
            await credit(min(approvals, (i + run) // 2))
            for pid, seconds in (await _server_cpu(db, url)).items():
                server_before[pid] = server_before.get(pid, 0.0) + seconds - paused.get(pid, 0.0)
        batch = [e for e in stream[i : i + run] if e is not None]
        assert len(batch) == len(stream[i : i + run])
        clock.set(batch[-1].occurred_at)
        c0, w0 = time.process_time(), time.perf_counter()
        with collector.counting():
            await handlers.apply(db, clock, batch)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    server_after = await _server_cpu(db, url)
    await db.dispose()
    print(
        f"database: {url.split(':')[0]}; {partners} partners with 90 days of facts, "
        f"{reps_per_partner} reps each"
    )
    print(
        f"{approvals} approvals ({len(stream)} signal events) in runs of {run}: "
        f"CPU {1000 * cpu / approvals:.3f} ms per approval, wall {1000 * wall / approvals:.3f} ms"
    )
    print(
        f"of which the garbage collector: {1000 * collector.cpu / approvals:.3f} ms per approval"
        f" ({collector.passes} passes, {collector.full} full)"
    )
    if server_after:
        server = sum(t - server_before.get(pid, 0.0) for pid, t in server_after.items())
        print(
            f"PostgreSQL backends' CPU {1000 * server / approvals:.3f} ms per approval; "
            f"together {1000 * (cpu + server) / approvals:.3f} ms"
        )


async def _server_cpu(db: Database, url: str) -> dict[int, float]:
    """CPU seconds (user + system) of the PostgreSQL backends serving this database, read
    from /proc (a server on this machine); empty for SQLite, whose engine runs in-process
    and is counted by ``process_time``."""
    if not url.startswith("postgresql"):
        return {}
    async with db.session() as s:
        pids = (
            await s.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ).scalars()
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            seconds = _proc_cpu(pid, tick)
            if seconds is not None:
                out[pid] = seconds
    return out


def _proc_cpu(pid: int, tick: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / tick


async def rebuild_bench(url: str, partners: int, entries: int) -> None:
    await migrations.upgrade(url)
    db = Database(url)
    clock = FrozenClock(START)
    began = time.perf_counter()
    vendor_id, partner_ids = await _vendor(db, clock, partners)
    async with db.session() as s:
        program_id, version_id = (
            await s.execute(text("SELECT program_id, id FROM earning_program_version LIMIT 1"))
        ).one()
    rng = random.Random(11)
    sources: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    lines_json = json.dumps([{"sku": "NW-AP-6E", "units": 1, "amount_minor": 45_900}])
    sales = entries // 2
    for i in range(sales):
        partner = partner_ids[i % partners]
        at = START - timedelta(seconds=rng.randrange(180 * 86_400))
        source_id, event_id = new_id(), uuid.uuid4()
        amount = rng.randrange(10_000, 200_000)
        sources.append((source_id, vendor_id, partner, event_id, "SALE_APPROVED", amount,
                        amount * 2 // 5, lines_json, at, at))  # fmt: skip
        kinds = (("COMMISSION", amount * 8 // 100), ("TIER_UPLIFT", amount // 100))
        if i % 10 == 9:  # refunded a week later: the reversal's source and clawbacks
            back = at + timedelta(days=7)
            rev_id, rev_event = new_id(), uuid.uuid4()
            sources.append((rev_id, vendor_id, partner, rev_event, "SALE_REVERSED", -amount,
                            -(amount * 2 // 5), lines_json, back, back))  # fmt: skip
            lines.append((new_id(), vendor_id, partner, rev_id, rev_event, program_id,
                          version_id, "CLAWBACK", "COMMISSION:", -kinds[0][1], back))  # fmt: skip
            kinds = kinds[:1] + (("TIER_UPLIFT", kinds[1][1]),)
            lines.append((new_id(), vendor_id, partner, source_id, event_id, program_id,
                          version_id, kinds[1][0], "", kinds[1][1], at))  # fmt: skip
            lines.append((new_id(), vendor_id, partner, source_id, event_id, program_id,
                          version_id, kinds[0][0], "", kinds[0][1], at))  # fmt: skip
            continue
        for kind, value in kinds:
            lines.append((new_id(), vendor_id, partner, source_id, event_id, program_id,
                          version_id, kind, "", value, at))  # fmt: skip
    lines = lines[:entries]
    async with db.transaction() as s:
        raw = (await (await s.connection()).get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            "earning_source",
            records=[(sid, v, p, None, e, t, None, None, "EMEA", "USD", r, m, ln, "", eff, cred)
                     for sid, v, p, e, t, r, m, ln, eff, cred in sources],
            columns=["id", "vendor_id", "partner_id", "rep_user_id", "source_event_id",
                     "source_type", "subject_id", "reverses_event_id", "region", "currency",
                     "revenue_minor", "margin_minor", "lines", "note", "effective_at",
                     "credited_at"],
        )  # fmt: skip
        await raw.copy_records_to_table(
            "earning_entry",
            records=[(eid, v, p, None, sid, ev, prog, ver, kind, key, amt, "USD", "bench", "{}",
                      at, at) for eid, v, p, sid, ev, prog, ver, kind, key, amt, at in lines],
            columns=["id", "vendor_id", "partner_id", "rep_user_id", "source_id",
                     "source_event_id", "program_id", "program_version_id", "kind", "line_key",
                     "amount_minor", "currency", "rule", "inputs", "effective_at", "booked_at"],
        )  # fmt: skip
        await s.execute(text("ANALYZE earning_source"))
        await s.execute(text("ANALYZE earning_entry"))
    loaded = time.perf_counter() - began
    c0, w0 = time.process_time(), time.perf_counter()
    async with db.transaction() as s:
        await begin_write(s)
        facts, snapshots = await maintenance.rebuild(s, clock, vendor_id)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    await db.dispose()
    print(f"database: {url.split(':')[0]}; loaded {partners} partners, {len(sources)} credited "
          f"sources, {len(lines)} ledger entries in {loaded:.1f} s")  # fmt: skip
    print(f"rebuild: {facts} partner-days of facts, {snapshots} snapshots in {wall:.1f} s "
          f"(client CPU {cpu:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["handlers", "rebuild"])
    parser.add_argument("--url", default=None)
    parser.add_argument("--approvals", type=int, default=1000)
    parser.add_argument("--run", type=int, default=20, help="Events per handler run.")
    parser.add_argument("--partners", type=int, default=None)
    parser.add_argument("--reps", type=int, default=3, help="Reps per partner (handlers).")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--claims", type=int, default=0,
        help="Claims of the vendor's history, decided over the 90 days before (handlers).",
    )  # fmt: skip
    parser.add_argument(
        "--credit-first", action="store_true",
        help="Credit every approval before the first handler run (handlers; the old way).",
    )  # fmt: skip
    args = parser.parse_args()
    url = args.url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    print(machine_speed())
    if args.what == "handlers":
        asyncio.run(
            handlers_bench(
                url,
                args.approvals,
                args.run,
                args.partners or 200,
                args.reps,
                args.claims,
                args.credit_first,
            )
        )
    else:
        if not url.startswith("postgresql"):
            parser.error("the rebuild benchmark loads with COPY: give a PostgreSQL --url")
        asyncio.run(rebuild_bench(url, args.partners or 10_000, args.entries))

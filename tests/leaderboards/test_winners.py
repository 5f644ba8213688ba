"""Contest finish: winners recorded with the frozen standings (once), the ContestFinished
event beside them, who sees which winners, and finance's approval of a money prize into
the winner's earnings."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from earnings.models import EarningEntry, EntryKind
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from leaderboards.closing import close_due
from leaderboards.events import CONTEST_FINISHED, ContestFinished
from leaderboards.models import Contest, ContestWinner, ParticipantKind, PrizeStatus, VisibilityMode
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, error_codes

PRIZES: list[dict[str, Any]] = [
    {"from_rank": 1, "to_rank": 1, "prize": "Cash", "amount_minor": 500_00},
    {"from_rank": 2, "to_rank": 2, "prize": "Trophy"},
]

WINNERS = """
query($id: ID!, $period: String) {
  node(id: $id) { ... on Contest {
    winners(period: $period) {
      id period rank score prize prizeAmount { amountMinor currency } prizeStatus
      participant { id name isYou }
    }
  } }
}"""

APPROVE = """
mutation($input: ContestPrizeApproveInput!) {
  contestPrizeApprove(input: $input) {
    winner { id rank prizeStatus approvedAt prizeAmount { amountMinor } participant { name } }
    userErrors { field code message }
  }
}"""

ENTRIES = """
query { earningEntries(kind: PRIZE) { edges { node { kind amount { amountMinor currency }
  rule inputs partnerId } } } }"""


async def finished_contest(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, **settings: Any
) -> Contest:
    """A contest partner 1 wins (700) ahead of partner 0 (500), closed after its end."""
    values: dict[str, Any] = {"ends_at": clock.now() + timedelta(hours=1), "prizes": PRIZES}
    contest = await create_contest(db, clock, tenant, **{**values, **settings})
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await approve_sale(db, clock, tenant, partner=1, amount=700)
    await dispatch(services)
    clock.advance(timedelta(hours=1, seconds=1))
    assert await close_due(services.leaderboards, contest.id)
    return contest


async def winners_of(db: Database, contest_id: uuid.UUID) -> list[ContestWinner]:
    async with db.session() as session:
        rows = await session.exec(
            select(ContestWinner).where(ContestWinner.contest_id == contest_id)
        )
        return sorted(rows, key=lambda w: w.rank)


async def finished_events(db: Database, contest_id: uuid.UUID) -> list[ContestFinished]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent).where(
                OutboxEvent.type == CONTEST_FINISHED, OutboxEvent.aggregate_id == contest_id
            )
        )
        return [ContestFinished.parse(e.payload) for e in rows]


async def prize_entries(db: Database) -> list[EarningEntry]:
    async with db.session() as session:
        rows = await session.exec(select(EarningEntry).where(EarningEntry.kind == EntryKind.PRIZE))
        return list(rows)


async def test_winners_and_the_finished_event_are_recorded_once_when_the_contest_ends(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await finished_contest(services, db, clock, tenant)
    assert await close_due(services.leaderboards, contest.id)  # again: nothing new
    winners = await winners_of(db, contest.id)
    assert [(w.rank, w.participant_id, w.partner_id, w.prize, w.prize_minor, w.prize_status)
            for w in winners] == [
        (1, tenant.partners[1].id, tenant.partners[1].id, "Cash", 500_00, PrizeStatus.PENDING),
        (2, tenant.partners[0].id, tenant.partners[0].id, "Trophy", None, PrizeStatus.NONE),
    ]  # fmt: skip
    [event] = await finished_events(db, contest.id)
    assert event.vendor_id == tenant.vendor.id
    assert (event.period, event.final, event.contest_name) == ("all", True, "Q4 push")
    assert [(w.rank, w.participant_id, w.partner_id, w.prize, w.prize_minor, w.winner_id)
            for w in event.winners] == [
        (w.rank, w.participant_id, w.partner_id, w.prize, w.prize_minor, w.id) for w in winners
    ]  # fmt: skip


async def test_each_period_of_a_recurring_contest_has_its_winners(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    now = clock.now()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    contest = await create_contest(
        db, clock, tenant, starts_at=start, ends_at=start + timedelta(days=3),
        recurrence="FREQ=DAILY", prizes=PRIZES[:1],
    )  # fmt: skip
    await approve_sale(db, clock, tenant, partner=0, amount=900)
    await dispatch(services)
    clock.advance(start + timedelta(days=1, seconds=1) - now)
    assert await close_due(services.leaderboards, contest.id)
    [event] = await finished_events(db, contest.id)
    assert not event.final
    assert event.period == start.date().isoformat()
    assert [(w.rank, w.participant_id) for w in event.winners] == [(1, tenant.partners[0].id)]


async def test_without_prizes_the_first_rank_wins_and_nobody_wins_without_a_score(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await finished_contest(services, db, clock, tenant, prizes=[])
    assert [(w.rank, w.prize, w.prize_status) for w in await winners_of(db, contest.id)] == [
        (1, "", PrizeStatus.NONE)
    ]
    empty = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    clock.advance(timedelta(hours=1, seconds=1))
    assert await close_due(services.leaderboards, empty.id)
    assert await winners_of(db, empty.id) == []
    [event] = await finished_events(db, empty.id)
    assert event.winners == ()


async def test_a_rep_contest_names_the_reps_partner(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(
        db, clock, tenant, ends_at=clock.now() + timedelta(hours=1), prizes=PRIZES,
        participant_kind=ParticipantKind.REP,
    )  # fmt: skip
    rep = tenant.user(Role.PARTNER_REP, 1)
    await approve_sale(db, clock, tenant, partner=1, amount=300, rep=rep.id)
    await dispatch(services)
    clock.advance(timedelta(hours=1, seconds=1))
    assert await close_due(services.leaderboards, contest.id)
    [winner] = await winners_of(db, contest.id)
    assert (winner.participant_id, winner.partner_id, winner.rep_user_id) == (
        rep.id, tenant.partners[1].id, rep.id,
    )  # fmt: skip


async def test_vendor_staff_see_every_winner_with_its_prize_state(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    contest = await finished_contest(services, db, clock, tenant)
    for role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE):
        data = await gql.data(WINNERS, {"id": gid(contest)}, as_user=tenant.user(role))
        rows = data["node"]["winners"]
        assert [(r["rank"], r["participant"]["name"], r["prize"], r["prizeStatus"])
                for r in rows] == [
            (1, tenant.partners[1].name, "Cash", "PENDING"),
            (2, tenant.partners[0].name, "Trophy", "NONE"),
        ]  # fmt: skip
        assert rows[0]["prizeAmount"] == {"amountMinor": 500_00, "currency": "USD"}


async def test_partners_see_winners_as_the_board_shows_them(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    contest = await finished_contest(services, db, clock, tenant, anonymise=True)
    data = await gql.data(WINNERS, {"id": gid(contest)}, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    rows = data["node"]["winners"]
    assert [(r["rank"], r["participant"], r["prizeStatus"]) for r in rows] == [
        (1, {"id": None, "name": "Participant at rank 1", "isYou": False}, None),
        (2, {"id": gid(tenant.partners[0]), "name": tenant.partners[0].name, "isYou": True},
         "NONE"),
    ]  # fmt: skip
    top = await finished_contest(
        services, db, clock, tenant, visibility=VisibilityMode.TOP_N, visible_top_n=1
    )
    data = await gql.data(WINNERS, {"id": gid(top)}, as_user=tenant.user(Role.PARTNER_REP, 1))
    assert [r["rank"] for r in data["node"]["winners"]] == [1]
    data = await gql.data(WINNERS, {"id": gid(top)}, as_user=tenant.user(Role.PARTNER_REP, 0))
    assert [r["rank"] for r in data["node"]["winners"]] == [1, 2]  # its own, below the top


async def test_other_tenants_see_no_winners(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    gql: GQL,
) -> None:  # fmt: skip
    contest = await finished_contest(services, db, clock, tenant)
    for role in (Role.VENDOR_ADMIN, Role.PARTNER_ADMIN):
        data = await gql.data(WINNERS, {"id": gid(contest)}, as_user=other_tenant.user(role))
        assert data["node"] is None


async def test_finance_approves_a_money_prize_into_the_winners_earnings(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    contest = await finished_contest(services, db, clock, tenant)
    cash = (await winners_of(db, contest.id))[0]
    data = await gql.data(
        APPROVE, {"input": {"id": gid(cash), "note": "budget ok"}},
        as_user=tenant.user(Role.FINANCE),
    )  # fmt: skip
    payload = data["contestPrizeApprove"]
    assert payload["userErrors"] == []
    assert payload["winner"]["prizeStatus"] == "APPROVED"
    assert payload["winner"]["approvedAt"] is not None
    assert payload["winner"]["participant"]["name"] == tenant.partners[1].name
    await dispatch(services)
    await dispatch(services)  # a re-run credits nothing twice
    [entry] = await prize_entries(db)
    assert (entry.partner_id, entry.amount_minor, entry.currency) == (
        tenant.partners[1].id, 500_00, "USD",
    )  # fmt: skip
    assert entry.inputs["rank"] == 1
    # The winner reads it in its ledger, explained; the other partner sees nothing of it.
    mine = await gql.data(ENTRIES, as_user=tenant.user(Role.PARTNER_ADMIN, 1))
    [node] = [e["node"] for e in mine["earningEntries"]["edges"]]
    assert node["amount"] == {"amountMinor": 500_00, "currency": "USD"}
    assert node["rule"] == (
        "Prize for finishing 1st in the contest 'Q4 push' (Cash): 500.00 USD, approved by "
        "our finance team."
    )
    summary = await gql.data(
        '{ earnings(currency: "USD") { explanations { kind text } } }',
        as_user=tenant.user(Role.PARTNER_ADMIN, 1),
    )
    assert {"kind": "PRIZE", "text": "Contest prizes you won added 500.00 USD."} in summary[
        "earnings"
    ]["explanations"]
    theirs = await gql.data(ENTRIES, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    assert theirs["earningEntries"]["edges"] == []
    async with db.session() as session:
        [audit] = await session.exec(
            select(AuditEntry).where(AuditEntry.action == "contest_winner.prize_approve")
        )
    assert audit.entity_id == str(cash.id)
    assert audit.reason == "budget ok"
    assert audit.after is not None
    assert audit.after["amount_minor"] == 500_00


@pytest.mark.parametrize(
    "role",
    [Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP],
    ids=lambda r: r.value,
)
async def test_only_finance_approves_prizes(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL, role: Role
) -> None:
    contest = await finished_contest(services, db, clock, tenant)
    cash = (await winners_of(db, contest.id))[0]
    payload = await gql(APPROVE, {"input": {"id": gid(cash)}}, as_user=tenant.user(role, 1))
    assert error_codes(payload) == ["FORBIDDEN"]
    assert (await winners_of(db, contest.id))[0].prize_status is PrizeStatus.PENDING
    await dispatch(services)
    assert await prize_entries(db) == []


async def test_prize_approval_refusals_are_coded_and_change_nothing(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    gql: GQL,
) -> None:  # fmt: skip
    contest = await finished_contest(services, db, clock, tenant)
    cash, trophy = await winners_of(db, contest.id)
    anonymous = await gql(APPROVE, {"input": {"id": gid(cash)}})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]

    async def codes(winner_id: str, user: Any) -> list[str]:
        data = await gql.data(APPROVE, {"input": {"id": winner_id}}, as_user=user)
        return [e["code"] for e in data["contestPrizeApprove"]["userErrors"]]

    finance = tenant.user(Role.FINANCE)
    assert await codes(gid(cash), other_tenant.user(Role.FINANCE)) == ["NOT_FOUND"]
    assert await codes("not-an-id", finance) == ["NOT_FOUND"]
    assert await codes(gid(trophy), finance) == ["NO_MONEY_PRIZE"]
    assert [w.prize_status for w in await winners_of(db, contest.id)] == [
        PrizeStatus.PENDING, PrizeStatus.NONE,
    ]  # fmt: skip
    assert await codes(gid(cash), finance) == []
    assert await codes(gid(cash), finance) == ["ALREADY_APPROVED"]
    await dispatch(services)
    assert len(await prize_entries(db)) == 1


PRIZE_INPUT = """
mutation($input: ContestCreateInput!) {
  contestCreate(input: $input) {
    contest { prizes { fromRank toRank prize amount { amountMinor currency } } }
    userErrors { field code }
  }
}"""


@pytest.mark.parametrize(
    ("amount", "errors"),
    [
        ({"amount": "250.00", "currency": "usd"}, []),
        ({"amount": "250.00", "currency": "EUR"}, [("prizes", "INVALID_PRIZE")]),
        ({"amount": "-1.00", "currency": "USD"}, [("prizes", "INVALID_PRIZE")]),
        ({"amount": "2.5x", "currency": "USD"}, [("prizes.0.amount.amount", "INVALID_PRIZE")]),
        # Beyond the 2**53 minor units a MinorUnits carries exactly (every money input: the
        # shared parser); a prize of it was kept and answered inexactly.
        (
            {"amount": "90071992547409.93", "currency": "USD"},
            [("prizes.0.amount.amount", "INVALID_PRIZE")],
        ),
    ],
    ids=["ok", "other-currency", "negative", "malformed", "beyond-2**53"],
)
async def test_money_prizes_are_in_the_contests_currency(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL, amount: dict[str, str],
    errors: list[tuple[str, str]],
) -> None:  # fmt: skip
    now = clock.now()
    data = await gql.data(
        PRIZE_INPUT,
        {"input": {
            "name": "Cash contest", "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(days=1)).isoformat(),
            "prizes": [{"fromRank": 1, "toRank": 1, "prize": "Cash", "amount": amount}],
        }},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    result = data["contestCreate"]
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == errors
    if not errors:
        assert result["contest"]["prizes"][0]["amount"] == {
            "amountMinor": 250_00, "currency": "USD",
        }  # fmt: skip
    async with db.session() as session:
        count = await session.scalar(select(func.count()).select_from(Contest))
    assert count == (0 if errors else 1)

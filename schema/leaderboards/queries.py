from __future__ import annotations

import base64
import binascii
import functools
import uuid

import strawberry
from graphql import GraphQLError
from strawberry import Info, relay

from infra.errors import DomainError
from leaderboards import repository
from leaderboards.models import Contest, ContestStatus, ParticipantKind
from leaderboards.reads import Reader, viewer_for
from schema.context import Context
from schema.leaderboards.types import (
    ContestType,
    Credit,
    LeaderboardConnection,
    LeaderboardEdge,
    LeaderboardRow,
    Score,
    Standing,
    StandingExplanation,
)
from schema.permissions import IsAuthenticated, ScreenOrAuthenticated
from schema.relay import (
    Connection,
    check_page_size,
    invalid_cursor,
    paginate,
    parse_global_id,
)


def not_found(what: str = "contest") -> GraphQLError:
    return GraphQLError(f"No such {what}.", extensions={"code": "NOT_FOUND"})


def reader(info: Info[Context, None]) -> Reader:
    context = info.context
    return Reader(context.services.leaderboards, lambda: context.session, context.recording)


async def load_contest(info: Info[Context, None], contest_id: str) -> Contest:
    """The contest, or NOT_FOUND alike for unknown, malformed and invisible ids."""
    principal = info.context.caller
    try:
        return await reader(info).contest(principal, parse_global_id(contest_id, "Contest"))
    except DomainError as exc:
        raise not_found() from exc


@functools.lru_cache(maxsize=4096)
def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"lb:{offset}".encode()).decode().rstrip("=")


MAX_OFFSET = 2**31 - 2  # far beyond any board; Redis refused a rank past 2**63 (a 500)


def decode_offset(cursor: str | None) -> int:
    """The rank after the cursor's (a board's cursor is a place, 0-based, in its order). Only
    the form `encode_offset` writes: "lb:" and the digits of a rank up to MAX_OFFSET."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = text.removeprefix("lb:")
        if digits == text or not digits.isascii() or not digits.isdigit():
            raise ValueError
        value = int(digits)
        if value > MAX_OFFSET or encode_offset(value) != cursor.rstrip("="):
            raise ValueError
        return value + 1
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc


def participant_arg(contest: Contest, value: strawberry.ID | None) -> uuid.UUID | None:
    if value is None:
        return None
    type_name = "Partner" if contest.participant_kind is ParticipantKind.PARTNER else "User"
    return parse_global_id(value, type_name)


async def _subject(
    info: Info[Context, None], contest: Contest, participant_id: strawberry.ID | None
) -> uuid.UUID:
    """Whose standing (decided by ``repository.readable_participant``); a malformed id and
    one out of scope are answered like unknown."""
    principal = info.context.caller
    requested = participant_arg(contest, participant_id) if participant_id else None
    if participant_id and requested is None:
        raise not_found("participant")
    subject = await repository.readable_participant(
        info.context.session, principal, contest, requested
    )
    if subject is None:
        raise not_found("participant")
    return subject


def _domain(exc: DomainError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": exc.code.value})


@strawberry.type
class LeaderboardsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Contests you may see: every contest of your vendor for vendor staff; "
        "published contests your organisation is eligible for, for partner users.",
    )
    async def contests(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        status: ContestStatus | None = None,
    ) -> Connection[ContestType] | None:
        principal = info.context.caller
        now = info.context.services.clock.now()
        return await paginate(
            info.context, repository.contests_in_status(principal, status, now),
            first=first, after=after,
            to_node=lambda c: ContestType.from_model(c, now),
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A contest by id; null when it does not exist or you may not see it.",
    )
    async def contest(self, info: Info[Context, None], id: strawberry.ID) -> ContestType | None:
        principal = info.context.caller
        contest_id = parse_global_id(id, "Contest")
        if contest_id is None:
            return None
        contest = await repository.get_readable_contest(info.context.session, principal, contest_id)
        return (
            ContestType.from_model(contest, info.context.services.clock.now()) if contest else None
        )

    @strawberry.field(
        permission_classes=[ScreenOrAuthenticated],
        description="A contest's standings, best first (at most 100 rows per page). Partners "
        "see what the contest grants: the full board or the top N, names or anonymised. "
        "`period` selects a day/week/month of a recurring contest (default: the current "
        "one). NOT_FOUND for an unknown contest and one you may not see alike. A display "
        "key (an office screen) reads its own contests here, as a partner sees them.",
    )
    async def leaderboard(
        self,
        info: Info[Context, None],
        contest_id: strawberry.ID,
        first: int | None = 10,
        after: str | None = None,
        period: str | None = None,
    ) -> LeaderboardConnection:
        limit = check_page_size(first, info.context.services.max_page_size)
        start = decode_offset(after)
        contest = await load_contest(info, contest_id)
        principal = info.context.caller
        try:
            board = await reader(info).board(
                contest, viewer_for(principal, contest), period, start, limit
            )
        except DomainError as exc:
            raise _domain(exc) from exc
        kind = contest.participant_kind
        edges = [
            LeaderboardEdge(cursor=encode_offset(start + i), node=LeaderboardRow.of(row, kind))
            for i, row in enumerate(board.rows)
        ]
        if info.context.recording is not None:
            # Everything below is plain data: what was read is what the Reader recorded.
            info.context.recording.field_done()
        return LeaderboardConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=board.has_next, has_previous_page=start > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=board.total, version=board.version, period=board.period.key,
            frozen=board.frozen, status=board.status,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your own standing: rank, score, the gap to the participant just above "
        "(your nemesis), percentile. Null for vendor staff (they use `explainStanding`).",
    )
    async def my_standing(
        self, info: Info[Context, None], contest_id: strawberry.ID, period: str | None = None
    ) -> Standing | None:
        contest = await load_contest(info, contest_id)
        principal = info.context.caller
        viewer = viewer_for(principal, contest)
        if viewer.self_id is None:
            return None
        try:
            view = await reader(info).standing(contest, viewer, viewer.self_id, period)
        except DomainError as exc:
            raise _domain(exc) from exc
        return Standing.of(view, contest.participant_kind)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The rows around a participant (yours for partners): `radius` rows "
        "above and below (at most 10).",
    )
    async def standings_around(
        self,
        info: Info[Context, None],
        contest_id: strawberry.ID,
        participant_id: strawberry.ID | None = None,
        radius: int = 2,
        period: str | None = None,
    ) -> list[LeaderboardRow]:
        if not 0 <= radius <= 10:
            raise GraphQLError("'radius' is 0..10.", extensions={"code": "BAD_USER_INPUT"})
        contest = await load_contest(info, contest_id)
        subject = await _subject(info, contest, participant_id)
        principal = info.context.caller
        viewer = viewer_for(principal, contest)
        r = reader(info)
        try:
            mine = await r.standing(contest, viewer, subject, period)
            start = max(mine.standing.rank - 1 - radius, 0)
            board = await r.board(contest, viewer, period, start, 2 * radius + 1)
        except DomainError as exc:
            raise _domain(exc) from exc
        rows = [LeaderboardRow.of(row, contest.participant_kind) for row in board.rows]
        if viewer.top_n is not None and not any(row.is_you for row in board.rows):
            rows.append(LeaderboardRow.of(mine.participant, contest.participant_kind))
        return rows

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Why a standing is what it is: the credited events behind the score and "
        "the tie rule that placed it. Partners may explain only their own standing.",
    )
    async def explain_standing(
        self,
        info: Info[Context, None],
        contest_id: strawberry.ID,
        participant_id: strawberry.ID | None = None,
        period: str | None = None,
    ) -> StandingExplanation:
        contest = await load_contest(info, contest_id)
        subject = await _subject(info, contest, participant_id)
        principal = info.context.caller
        r = reader(info)
        try:
            view = await r.standing(contest, viewer_for(principal, contest), subject, period)
        except DomainError as exc:
            raise _domain(exc) from exc
        credits = await r.credits(contest, view.period, subject)
        return StandingExplanation(
            standing=Standing.of(view, contest.participant_kind),
            credits=[
                Credit(
                    event_id=strawberry.ID(str(c.event_id)),
                    event_type=c.event_type,
                    occurred_at=c.occurred_at,
                    points=Score(c.delta),
                    description=c.description,
                )  # fmt: skip
                for c in credits
            ],
            tie_rule=view.tie_rule,
        )

"""Reading standings for a caller: which period, which rows they may see, how names show,
and serving frozen periods from SQL. Every live read is one Lua call on Redis (O(log N)
plus the page), after making sure the contest's keys exist (rebuilding them if not)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.errors import DomainError
from infra.memo import Recording
from leaderboards import ranking, repository
from leaderboards.errors import ContestErrorCode as Code
from leaderboards.models import (
    Contest,
    ContestCredit,
    ContestStanding,
    ContestStatus,
    ContestWinner,
    PrizeStatus,
    VisibilityMode,
)
from leaderboards.rebuild import ensure_built
from leaderboards.recurrence import (
    Period,
    find_period,
    parse_recurrence,
    period_at,
    periods_between,
)
from leaderboards.runtime import Leaderboards, ReaderKey
from leaderboards.service import effective_status
from partners.roles import Principal


@dataclass(frozen=True)
class Viewer:
    """What one caller may see of one contest's boards."""

    principal: Principal
    self_id: uuid.UUID | None  # the caller's own participant (partner or rep), if any
    top_n: int | None  # partners of a TOP_N contest: only these ranks (plus themselves)
    anonymise: bool

    @property
    def audience(self) -> str:
        """Callers with the same audience see the same rows and names (once read with no
        ``self_id``: see ``shared``). Vendor staff never share one with partners."""
        role = "staff" if self.principal.is_vendor_staff else "partner"
        if self.top_n is None and not self.anonymise:
            return f"{role}:full"
        return f"{role}:{self.top_n or 0}:{int(self.anonymise)}"

    @property
    def shared(self) -> Viewer:
        """The same visibility as nobody in particular: no row is "you", every anonymised
        row is anonymised. What a board read once for many callers is read with."""
        return replace(self, self_id=None)


def reach_of(principal: Principal) -> ReaderKey:
    """Who sees the same contests: a vendor's staff of one role (a channel manager does not
    read a contest naming a pilot's arm, which vendor admins and finance read), one partner
    (all its users), one display key's screen."""
    if principal.is_display:
        return (principal.vendor_id, principal.display_key_id, None)
    if principal.is_vendor_staff:
        return (principal.vendor_id, None, principal.role)
    return (principal.vendor_id, principal.partner_id, None)


def viewer_for(principal: Principal, contest: Contest) -> Viewer:
    if principal.is_vendor_staff:
        return Viewer(principal, None, None, False)
    self_id = repository.own_participant_id(principal, contest)
    top_n = contest.visible_top_n if contest.visibility is VisibilityMode.TOP_N else None
    return Viewer(principal, self_id, top_n, contest.anonymise)


@dataclass(frozen=True)
class RowView:
    participant_id: uuid.UUID | None  # None when anonymised
    name: str
    is_you: bool
    rank: int
    score: int
    gap_to_above: int | None


@dataclass(frozen=True)
class BoardView:
    contest: Contest
    status: ContestStatus
    period: Period
    frozen: bool
    version: int
    total: int
    rows: list[RowView]
    start: int
    has_next: bool
    # The participant of each row, even where the row hides it: only to show a caller its
    # own row (``Reader.personal``), never to be rendered.
    participants: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class WinnerView:
    winner: ContestWinner
    participant: RowView
    # The prize's state: vendor staff and the winner itself only.
    prize_status: PrizeStatus | None


@dataclass(frozen=True)
class StandingView:
    participant: RowView
    standing: ranking.Standing
    nemesis: RowView | None
    tie_rule: str
    period: Period


def resolve_period(contest: Contest, key: str | None, now: datetime) -> Period:
    rec = parse_recurrence(contest.recurrence)
    window = (contest.starts_at, contest.ends_at)
    if key is not None:
        found = find_period(rec, contest.time_zone, window, key)
        if found is None:
            raise DomainError(Code.NOT_FOUND, "The contest has no such period.", "period")
        return found
    if now < contest.starts_at:
        instant = contest.starts_at
    elif now >= contest.ends_at:
        instant = periods_between(rec, contest.time_zone, window)[-1].starts_at
    else:
        instant = now
    period = period_at(rec, contest.time_zone, window, instant)
    assert period is not None
    return period


class Reader:
    def __init__(
        self,
        runtime: Leaderboards,
        session: AsyncSession | Callable[[], AsyncSession],
        recording: Recording | None = None,
    ) -> None:
        """``session`` may be a function that opens one: most reads are served from Redis
        and the caches, and never need it. ``recording`` collects what a GraphQL operation
        read, so that its answer may be reused while that is unchanged (infra.memo)."""
        self.rt = runtime
        self._session = session
        self.recording = recording

    @property
    def session(self) -> AsyncSession:
        if not isinstance(self._session, AsyncSession):
            self._session = self._session()
        return self._session

    async def contest(self, principal: Principal, contest_id: uuid.UUID | None) -> Contest:
        if contest_id is None:
            raise DomainError(Code.NOT_FOUND, "No such contest.", "contest_id")
        key = (contest_id, reach_of(principal))
        cached = self.rt.contests.get(key)
        if cached is not None:
            return cached

        async def load() -> Contest:
            stamp = self.rt.contests.stamp()
            found = await repository.get_readable_contest(self.session, principal, contest_id)
            if found is None:
                raise DomainError(Code.NOT_FOUND, "No such contest.", "contest_id")
            # A copy of its own: the cached row outlives this request's session.
            contest = Contest(**found.model_dump())
            self.rt.contests.put(key, contest, stamp)
            return contest

        return await self.rt.contest_loads.run(key, load)

    async def names(self, vendor_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        cache = self.rt.names
        out: dict[uuid.UUID, str] = {}
        missing = []
        for participant, name in zip(
            ids, cache.get_many([(vendor_id, p) for p in ids]), strict=True
        ):
            if name is None:
                missing.append(participant)
            elif name:  # "" remembers that there is none
                out[participant] = name
        if missing:

            async def load() -> dict[uuid.UUID, str]:
                stamp = cache.stamp()
                found = await repository.names_of(self.session, vendor_id, missing)
                for participant in missing:
                    cache.put((vendor_id, participant), found.get(participant, ""), stamp)
                return found

            out.update(await self.rt.name_loads.run((vendor_id, tuple(missing)), load))
        return out

    async def _frozen(self, contest: Contest, period: Period) -> bool:
        """Whether the period is served from its frozen standings. Reads never freeze: the
        closer (leaderboards.closing) does as the clock ends a period; until it has, the
        ended period's live board is served (the same standings)."""
        now = self.rt.clock.now()
        if contest.status is not ContestStatus.SCHEDULED or period.ends_at > now:
            return False  # only a closed period of a published contest can be frozen
        return await repository.frozen_period(self.session, contest.id, period.key) is not None

    async def _live_page(
        self, contest: Contest, period: Period, start: int, count: int
    ) -> ranking.Page:
        page = await self.rt.pages.page(contest, period.key, start, count)
        if not page.built:
            await ensure_built(self.rt.db, self.rt.boards, self.rt.clock, contest)
            page = await self.rt.pages.page(contest, period.key, start, count)
        if self.recording is not None:
            self.recording.board(self.rt.pages.is_current, contest.id, page.version)
        return page

    async def _frozen_page(
        self, contest: Contest, period: Period, start: int, count: int
    ) -> ranking.Page:
        stmt = repository.frozen_standings(contest.id, period.key)
        rows = list(
            (await self.session.exec(stmt.offset(max(start - 1, 0)).limit(count + 1))).all()
        )
        frozen = await repository.frozen_period(self.session, contest.id, period.key)
        previous = rows.pop(0) if start > 0 and rows else None
        out: list[ranking.Row] = []
        for row in rows[:count]:
            above = out[-1].value if out else (previous.rank_value if previous else None)
            out.append(_row(row, above))
        total, version = (frozen.participant_count, frozen.version) if frozen else (0, 0)
        return ranking.Page(True, version or contest.version, total, out)

    def _names_visible(self, viewer: Viewer, participant: uuid.UUID) -> bool:
        return not viewer.anonymise or participant == viewer.self_id

    async def _views(
        self, contest: Contest, viewer: Viewer, rows: list[ranking.Row]
    ) -> list[RowView]:
        names = await self.names(contest.vendor_id, [r.participant_id for r in rows])
        return [self._view(viewer, r, names) for r in rows]

    async def board(
        self, contest: Contest, viewer: Viewer, period_key: str | None, start: int, count: int
    ) -> BoardView:
        now = self.rt.clock.now()
        period = resolve_period(contest, period_key, now)
        frozen = await self._frozen(contest, period)
        if viewer.top_n is not None:
            count = max(0, min(count, viewer.top_n - start))
        page = (
            await self._frozen_page(contest, period, start, count)
            if frozen
            else await self._live_page(contest, period, start, count)
        )
        rows = page.rows
        total = page.total
        if viewer.top_n is not None:
            rows = [r for r in rows if r.rank <= viewer.top_n]
            total = min(total, viewer.top_n)
        views = await self._views(contest, viewer, rows)
        if self.recording is not None:
            # What the clock alone changes: the period, the status, the freeze.
            for instant in (period.ends_at, contest.starts_at, contest.ends_at):
                if instant > now:
                    self.recording.changes_at(instant)
        return BoardView(
            contest=contest, status=effective_status(contest, now), period=period,
            frozen=frozen, version=page.version,
            total=total, rows=views, start=start, has_next=start + len(rows) < total,
            participants=tuple(r.participant_id for r in rows),
        )  # fmt: skip

    async def personal(
        self, contest: Contest, board: BoardView, viewer: Viewer, participant: uuid.UUID
    ) -> BoardView | None:
        """``board`` (read for ``viewer.shared``) as ``participant`` sees it: its own row as
        its own (``isYou``, and its name and id where the contest shows a participant its
        own). None when its row is not on the board: the shared board is its board."""
        if participant not in board.participants:
            return None
        own = Viewer(viewer.principal, participant, viewer.top_n, viewer.anonymise)
        names = await self.names(contest.vendor_id, [participant])
        rows = [
            self._view(own, ranking.Row(p, r.rank, r.score, 0, 0, r.gap_to_above), names)
            if p == participant
            else r
            for p, r in zip(board.participants, board.rows, strict=True)
        ]
        return replace(board, rows=rows)

    async def standing(
        self, contest: Contest, viewer: Viewer, participant: uuid.UUID, period_key: str | None
    ) -> StandingView:
        if self.recording is not None:
            self.recording.taint()  # a standing is read from Redis, outside the page cache
        period = resolve_period(contest, period_key, self.rt.clock.now())
        if await self._frozen(contest, period):
            standing = await self._frozen_standing(contest, period, participant)
        else:
            built, standing = await self.rt.boards.standing(contest, period.key, participant)
            if not built:
                await ensure_built(self.rt.db, self.rt.boards, self.rt.clock, contest)
                _, standing = await self.rt.boards.standing(contest, period.key, participant)
        return await self.standing_view(contest, viewer, period, standing)

    async def standing_view(
        self, contest: Contest, viewer: Viewer, period: Period, standing: ranking.Standing
    ) -> StandingView:
        return (await self.standing_views(contest, viewer, period, [standing]))[0]

    async def standing_views(
        self,
        contest: Contest,
        viewer: Viewer,
        period: Period,
        standings: list[ranking.Standing],
    ) -> list[StandingView]:
        """Views of many standings (each as seen by its own participant, with the viewer's
        visibility), with every name resolved in one query."""
        ids = {s.participant_id for s in standings} | {
            s.nemesis.participant_id for s in standings if s.nemesis
        }
        names = await self.names(contest.vendor_id, list(ids))
        out = []
        for s in standings:
            own_viewer = Viewer(viewer.principal, s.participant_id, viewer.top_n, viewer.anonymise)
            own = ranking.Row(s.participant_id, s.rank, s.score, s.value, s.tick or 0, None)
            rows = [own]
            if s.nemesis and (viewer.top_n is None or s.nemesis.rank <= viewer.top_n):
                rows.append(s.nemesis)
            views = [self._view(own_viewer, r, names) for r in rows]
            out.append(
                StandingView(
                    participant=views[0],
                    standing=s,
                    nemesis=views[1] if len(views) > 1 else None,
                    tie_rule=ranking.tie_rule(contest.ranking_style, s),
                    period=period,
                )  # fmt: skip
            )
        return out

    def _view(self, viewer: Viewer, r: ranking.Row, names: dict[uuid.UUID, str]) -> RowView:
        shown = self._names_visible(viewer, r.participant_id)
        return RowView(
            participant_id=r.participant_id if shown else None,
            name=names.get(r.participant_id, "Unknown")
            if shown
            else f"Participant at rank {r.rank}",
            is_you=r.participant_id == viewer.self_id,
            rank=r.rank, score=r.score, gap_to_above=r.gap_to_above,
        )  # fmt: skip

    async def winners(
        self, contest: Contest, viewer: Viewer, period_key: str | None
    ) -> list[WinnerView]:
        """The recorded winners as the viewer may see them: the contest's visibility holds
        (a TOP_N contest shows partners its top rows only, besides their own; an anonymised
        one hides other winners' names)."""
        if self.recording is not None:
            self.recording.taint()  # read from SQL, outside the page cache
        rows = await repository.winners_of(self.session, contest.id, period_key)
        if viewer.top_n is not None:
            rows = [w for w in rows if w.rank <= viewer.top_n or w.participant_id == viewer.self_id]
        names = await self.names(contest.vendor_id, [w.participant_id for w in rows])
        staff = viewer.principal.is_vendor_staff
        out = []
        for w in rows:
            view = self._view(
                viewer, ranking.Row(w.participant_id, w.rank, w.score, 0, 0, None), names
            )
            status = w.prize_status if staff or view.is_you else None
            out.append(WinnerView(winner=w, participant=view, prize_status=status))
        return out

    async def _frozen_standing(
        self, contest: Contest, period: Period, participant: uuid.UUID
    ) -> ranking.Standing:
        from sqlmodel import col, func, select  # noqa: PLC0415

        base = (ContestStanding.contest_id == contest.id, ContestStanding.period_key == period.key)
        mine = (
            await self.session.exec(
                select(ContestStanding).where(*base, ContestStanding.participant_id == participant)
            )
        ).first()
        frozen = await repository.frozen_period(self.session, contest.id, period.key)
        total = frozen.participant_count if frozen else 0
        version = (frozen.version if frozen else 0) or contest.version
        value = mine.rank_value if mine else 0
        above = (
            await self.session.exec(
                select(ContestStanding)
                .where(*base, col(ContestStanding.rank_value) > value)
                .order_by(col(ContestStanding.position).desc())
                .limit(1)
            )
        ).first()
        same = await self.session.scalar(
            select(func.count()).where(*base, col(ContestStanding.rank_value) == value)
        )
        rank = mine.rank if mine else (above.rank + 1 if above else 1)
        return ranking.Standing(
            participant_id=participant, rank=rank if mine else max(rank, total + 1),
            score=mine.score if mine else 0, value=value, tick=None, on_board=mine is not None,
            tied_with=int(same or 0) - (1 if mine else 0), total=total,
            nemesis=_row(above, None) if above else None, version=version,
        )  # fmt: skip

    async def credits(
        self, contest: Contest, period: Period, participant: uuid.UUID
    ) -> list[ContestCredit]:
        return list(await repository.credits_for(self.session, contest.id, period.key, participant))


def _row(row: ContestStanding, above: int | None) -> ranking.Row:
    return ranking.Row(
        row.participant_id, row.rank, row.score, row.rank_value, 0,
        None if above is None else above - row.rank_value,
    )  # fmt: skip

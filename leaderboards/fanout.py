"""Live leaderboard pushes that stay cheap with thousands of watchers.

Per process, one ``Feed`` per watched contest listens on the contest's Redis pub/sub
channel (infra.pubsub.Hub: one Redis connection per process, so a change scored by any
process reaches every process). Changes are coalesced by the refresh itself, not by a tick:
a change that finds the feed idle is pushed at once; those that come while a refresh runs
collapse into one refresh right after it (no sooner than ``interval``, 50 ms, after its
end), which always reads the final state. So a change waits at most about one refresh plus
that gap, and how often a feed pushes adapts to what a refresh costs: a small feed pushes
at most every ``interval``, a feed of thousands of sockets as often as its pass over them
allows (a fixed 250 ms tick made every change wait 0-250 ms on top of the pass).

A refresh reads the board once per distinct (first, audience), as nobody in particular
(``Viewer.shared``: no row is "you", anonymised rows stay anonymised), renders it once per
group of subscribers that asked the same thing under the same visibility (the renderer is
given by the transport: GraphQL execution + JSON serialisation happen once per group), and
once more per participant whose own row is on that board (the board with that row as its
own: ``Reader.personal``), fetches every subscriber's own standing in one pipelined Redis
round trip, and offers each subscriber its message in one pass: a transport that can write
at once (a ``sink``) does so without waking the subscriber's task. A subscriber holds at
most one undelivered message: a slow client gets the latest state when it is ready, never
a backlog, and never delays the others.
Every push carries the contest's version, so a client can tell that it skipped some.

We build on the Hub rather than replace it: its bounded per-listener queue already drops
the oldest notice, which is exactly "coalesce"; what it lacked (grouping, rendering once,
per-subscriber latest-only delivery) lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.cache import Stamp
from infra.outages import is_unavailable
from infra.tasks import raise_lost_cancellation
from leaderboards.closing import close_due, next_boundary
from leaderboards.models import Contest, ContestStatus
from leaderboards.reads import BoardView, Reader, StandingView, Viewer, reach_of, viewer_for
from leaderboards.repository import get_readable_contest
from leaderboards.runtime import CONTEST_REACH_TABLES, Leaderboards, ReaderKey
from leaderboards.service import effective_status
from partners.roles import Principal

log = logging.getLogger(__name__)


RETRY = (0.25, 4.0)  # seconds between refreshes while Redis is unavailable: first, most


@dataclass(frozen=True)
class Snapshot:
    contest: Contest
    status: ContestStatus
    board: BoardView | None  # None for a cancelled contest
    version: int

    @property
    def final(self) -> bool:
        """Cancelled, or ended with its standings frozen (an ended contest's board is live
        until the closer froze it, within seconds)."""
        if self.status is ContestStatus.FINISHED:
            return self.contest.frozen_at is not None
        return self.status is ContestStatus.CANCELLED


class Renderer(Protocol):
    """Turns a snapshot into what a transport sends: ``shared`` once per group and change,
    ``message`` once per participant and tag in the group (cheap: the shared part plus its
    own standing; subscribers of one participant with the same tag get the same message)."""

    def shared(self, snapshot: Snapshot) -> Any: ...

    def message(self, sub: Subscriber, shared: Any, me: StandingView | None) -> Any: ...

    def not_found(self) -> Any:
        """The last message of a subscriber whose caller may no longer read the contest
        (answered as a contest that does not exist)."""
        ...


Sink = Callable[[Any], bool]
"""Delivers a message at once if it can (e.g. writes it to a socket that is keeping up);
False leaves it to the subscriber's own task."""


class Subscriber:
    # Thousands live per process: slots, and a future only while its task waits (an
    # asyncio.Event per subscriber held a deque of its own).
    __slots__ = ("_waiter", "_woken", "done", "group", "latest", "participant", "principal",
                 "sink", "tag")  # fmt: skip

    def __init__(
        self,
        group: Group,
        principal: Principal,
        participant: uuid.UUID | None,
        tag: Any = None,
        sink: Sink | None = None,
    ) -> None:
        self.group = group
        self.principal = principal  # whose reach is checked again as it changes
        self.participant = participant
        self.tag = tag  # transport data, e.g. the operation id
        self.sink = sink
        self.latest: Any = None
        self.done = False
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, message: Any, *, final: bool = False) -> None:
        """Deliver through the sink when nothing is waiting (no task wake-up), else replace
        whatever is still waiting: latest state only, in order."""
        if self.done:
            return
        self.done = final
        if self.latest is None and self.sink is not None and self.sink(message):
            if final:
                self._wake()  # the subscriber's task ends the operation
            return
        self.latest = message
        self._wake()

    def _wake(self) -> None:
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something was offered that the sink did not take, or the final one."""
        raise_lost_cancellation()
        if not self._woken:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._woken = False

    def take(self) -> Any:
        message, self.latest = self.latest, None
        return message

    async def next(self) -> Any:
        await self.wait()
        return self.take()


@dataclass(frozen=True)
class GroupKey:
    first: int
    audience: str
    shape: str  # the transport's name for "the same question" (e.g. a document hash)


@dataclass
class Group:
    key: GroupKey
    viewer: Viewer  # the audience's visibility, as nobody in particular (no self_id)
    renderer: Renderer
    subscribers: set[Subscriber] = field(default_factory=set)
    # The same subscribers by participant (None: none of its own), so that a refresh
    # looks each participant's standing and renders up once, not once per subscriber.
    by_participant: dict[uuid.UUID | None, set[Subscriber]] = field(default_factory=dict)
    # (what it was rendered from, the shared render, the render per participant whose own
    # row is on the board: None when it is not)
    cache: tuple[tuple[Any, ...], Any, dict[uuid.UUID, Any]] | None = None
    # The highest board version pushed to the group: Redis back with its last writes lost
    # (a replica that was behind, a restart from an older snapshot) counts from below it.
    high: int = 0

    def add(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        self.by_participant.setdefault(sub.participant, set()).add(sub)

    def discard(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        same = self.by_participant.get(sub.participant)
        if same is not None:
            same.discard(sub)
            if not same:
                del self.by_participant[sub.participant]


class Feed:
    def __init__(self, fanout: Fanout, contest_id: uuid.UUID) -> None:
        self.fanout = fanout
        self.contest_id = contest_id
        self.groups: dict[GroupKey, Group] = {}
        # Resolved once the feed listens on its channel, or failed (Redis down): every
        # subscriber waiting for it hears which, none waits forever.
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.clock_task: asyncio.Task[None] | None = None
        self.contest: Contest | None = None  # as of the latest refresh
        # Everything the clock ended up to this instant is closed (frozen), as far as this
        # feed's watcher knows; None until its first pass.
        self.closed_until: datetime | None = None
        self._poke = asyncio.Event()  # wakes the watcher before its tick
        self._held = False  # a refresh waited for the watcher's close: it pushes after
        self.refreshes = 0
        self._refresh_lock = asyncio.Lock()
        # The epochs of CONTEST_REACH_TABLES when the subscribers' reach was last checked.
        self._reach_checked: Stamp | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"feed-{self.contest_id}")
        self.clock_task = asyncio.create_task(
            self._watch_clock(), name=f"feed-clock-{self.contest_id}"
        )

    async def stop(self) -> None:
        for task in (self.task, self.clock_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _watch_clock(self) -> None:
        """Start, period ends and the end come with no event: wake at the next one (or
        every ``clock_tick`` seconds, since the clock may be moved, or when a refresh finds
        a boundary passed), close what is due, and push the board that follows (the final
        one ends every subscription). The first pass closes whatever is due already (a
        contest that ended unwatched)."""
        rt = self.fanout.runtime
        pushed: datetime | None = None  # the boundary whose board was pushed
        while True:
            self._poke.clear()
            now = rt.clock.now()
            due = self._due(now)
            if due is not None and due <= now:
                last = self.closed_until
                try:
                    done = await close_due(rt, self.contest_id)
                    if done:
                        self.closed_until = now
                        # The board that follows (a freeze is also announced: all
                        # processes), and whatever a refresh held back meanwhile.
                        if self._held or (last is not None and pushed != due):
                            self._held = False
                            await self.refresh()
                            pushed = due
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if is_unavailable(exc):  # one line, not a traceback a second
                        log.warning("closing contest %s waits for Redis", self.contest_id)
                    else:
                        log.exception("closing contest %s failed; retrying", self.contest_id)
                    done = False
                if done:
                    continue
            wait = self.fanout.clock_tick
            if due is not None and due > now:
                wait = min(wait, (due - now).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), max(wait, 0.01))

    async def _check_reach(self, session: AsyncSession, contest: Contest) -> None:
        """Who may read the contest, and how (rows, names), is decided again, as a read
        decides it, whenever what it is decided from changed (the contest's settings, a
        partner's tier, region or groups): each group's visibility follows the contest as
        it is now, and a subscriber whose caller may no longer read the contest is sent the
        renderer's NOT_FOUND and served nothing more (its transport then leaves)."""
        epochs = self.fanout.runtime.db.epochs
        stamp = epochs.stamp(CONTEST_REACH_TABLES)  # before reading: a change meanwhile re-checks
        if stamp == self._reach_checked and epochs.live:
            return
        readable: dict[ReaderKey, bool] = {}
        for group in list(self.groups.values()):
            fresh = viewer_for(group.viewer.principal, contest).shared
            if fresh != group.viewer:
                group.viewer, group.cache = fresh, None
            for sub in list(group.subscribers):
                reach = reach_of(sub.principal)
                if reach not in readable:
                    found = await get_readable_contest(session, sub.principal, contest.id)
                    readable[reach] = found is not None
                if not readable[reach] and not sub.done:
                    sub.offer(group.renderer.not_found(), final=True)
        self._reach_checked = stamp

    def _due(self, now: datetime) -> datetime | None:
        """The boundary this feed has still to close (due once it is not after ``now``):
        ``now`` before the watcher's first pass, None while the contest is unknown or
        nothing is coming."""
        if self.contest is None:
            return None
        if self.closed_until is None:
            return now
        return next_boundary(self.contest, self.closed_until)

    @property
    def empty(self) -> bool:
        return not any(g.subscribers for g in self.groups.values())

    async def _run(self) -> None:
        try:
            await self._listen()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.opened.done():
                raise
            self.opened.set_exception(exc)

    async def _listen(self) -> None:
        rt = self.fanout.runtime
        async with rt.hub.listen(rt.channel(self.contest_id), maxsize=1) as listener:
            self.opened.set_result(None)
            done = 0.0  # when the latest refresh ended
            retry = RETRY[0]
            while True:
                # A version notice, or None after Redis came back (anything may have
                # changed, even the version after a flush): either way, read and push.
                await listener.get()
                # Idle: at once. Notices that come while a refresh runs wait in the
                # listener's queue of one and are served by one refresh right after it,
                # ``interval`` after its end at the earliest: the wait is bounded by a
                # refresh plus that gap, however steadily changes come.
                wait = done + self.fanout.interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while not listener.queue.empty():  # fold notices that came meanwhile
                    listener.queue.get_nowait()
                try:
                    await self.refresh()
                    done = time.monotonic()
                    retry = RETRY[0]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_unavailable(exc):
                        log.exception("leaderboard refresh failed for %s", self.contest_id)
                        done = time.monotonic()
                        continue
                    # Redis is down, or back but still loading its data: try again until a
                    # refresh gets through (the reconnection notice may already be spent).
                    log.warning("leaderboard refresh of %s waits for Redis", self.contest_id)
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY[1])
                    listener.offer(None)

    async def refresh(self, only: Subscriber | None = None) -> None:
        async with self._refresh_lock:
            await self._refresh(only)

    async def _refresh(self, only: Subscriber | None) -> None:
        rt = self.fanout.runtime
        self.refreshes += 1
        async with rt.db.session() as session:
            contest = await session.get(Contest, self.contest_id)
            if contest is None:
                return
            self.contest = contest
            now = rt.clock.now()
            if (due := self._due(now)) is not None and due <= now:
                self._poke.set()  # the watcher closes it now
                if only is None:
                    self._held = True
                    # The clock has moved the board past a boundary that is not closed yet:
                    # its push waits for the close (within closing.SETTLE_GRACE), which
                    # freezes the ended period and announces a new version. Pushed now, the
                    # next period's board would carry the version of the ended one's, and
                    # the ended one might not be frozen yet. A new subscriber is served at
                    # once, as a read is.
                    return
            reader = Reader(rt, session)
            status = effective_status(contest, now)
            await self._check_reach(session, contest)
            groups = [only.group] if only else [g for g in self.groups.values() if g.subscribers]
            # Who is served, by group and participant: those who join from here on are
            # served by their own refresh.
            members_of: dict[GroupKey, dict[uuid.UUID | None, list[Subscriber]]] = {
                g.key: {only.participant: [only]} if only
                else {p: list(subs) for p, subs in g.by_participant.items()}
                for g in groups
            }  # fmt: skip
            boards: dict[tuple[int, str], BoardView] = {}
            if status is not ContestStatus.CANCELLED:
                for group in groups:
                    k = (group.key.first, group.key.audience)
                    if k not in boards:
                        boards[k] = await reader.board(contest, group.viewer, None, 0, k[0])
            participants = sorted({p for m in members_of.values() for p in m if p}, key=str)
            standings: dict[uuid.UUID, StandingView] = {}
            any_board = next(iter(boards.values()), None)
            # Partners of one contest share one audience; vendor staff have no standing
            # (and never share a group with partners).
            viewer = next(
                (g.viewer for g in groups if not g.viewer.principal.is_vendor_staff), None
            )
            if participants and any_board is not None and viewer is not None:
                period = any_board.period
                if any_board.frozen:
                    views = [
                        await reader.standing(contest, _own(viewer, p), p, period.key)
                        for p in participants
                    ]
                else:
                    raw = await rt.boards.standings(contest, period.key, participants)
                    views = await reader.standing_views(contest, viewer, period, raw)
                standings = {v.standing.participant_id: v for v in views}
            # Each participant's own view of each board it watches with its row on it.
            personal: dict[tuple[int, str, uuid.UUID], BoardView | None] = {}
            for group in groups:
                k = (group.key.first, group.key.audience)
                board = boards.get(k)
                for p in members_of[group.key]:
                    if p and board is not None and (k[0], k[1], p) not in personal:
                        mine = await reader.personal(contest, board, group.viewer, p)
                        personal[(k[0], k[1], p)] = mine
        for group in groups:
            k = (group.key.first, group.key.audience)
            board = boards.get(k)
            version = board.version if board else 0
            if only is None and board is not None and version < group.high:
                # Not pushed: its subscribers were shown a later version. The board checks
                # rebuild such a board above every version handed out, and announce it
                # (leaderboards.integrity). (A new subscriber is served what there is, as a
                # read is.)
                log.warning("contest %s: Redis is back at version %d, below the %d pushed; "
                            "waiting for its rebuild", self.contest_id, version,
                            group.high)  # fmt: skip
                continue
            group.high = max(group.high, version)
            snap = Snapshot(contest, status, board, version)
            # Everything the render reads: freezing an ended contest (``final``) may leave the
            # board's version as it was, and a render of it from before the freeze says
            # ``final: false`` (the subscription then completed without a final push).
            cache_key = (
                version,
                contest.version,
                status,
                snap.final,
                board.period.key if board else None,
            )
            if group.cache is not None and group.cache[0] == cache_key:
                _, shared, own = group.cache
            else:
                shared, own = await _render(group.renderer, snap), {}
                group.cache = (cache_key, shared, own)
            members = members_of[group.key]
            for p in members:
                if p and p not in own:
                    # Its own row is its own: rendered once per participant (None: not on it).
                    mine = personal.get((k[0], k[1], p))
                    own[p] = None if mine is None else await _render(
                        group.renderer, Snapshot(contest, status, mine, version)
                    )  # fmt: skip
            final, message, current = snap.final, group.renderer.message, group.subscribers
            for p, subs in members.items():
                me = standings.get(p) if p else None
                view = own.get(p) if p else None
                body = shared if view is None else view
                tag: Any = _NO_TAG
                pushed: Any = None
                for sub in subs:
                    if sub not in current:
                        continue  # left while the board was read
                    if sub.tag != tag:  # the same message for the same operation id
                        tag, pushed = sub.tag, message(sub, body, me)
                    sub.offer(pushed, final=final)


_NO_TAG = object()


async def _render(renderer: Renderer, snapshot: Snapshot) -> Any:
    shared = renderer.shared(snapshot)
    if inspect.isawaitable(shared):
        shared = await shared
    return shared


def _own(viewer: Viewer, participant: uuid.UUID) -> Viewer:
    return Viewer(viewer.principal, participant, viewer.top_n, viewer.anonymise)


class Fanout:
    """One per process."""

    def __init__(
        self, runtime: Leaderboards, interval: float = 0.05, clock_tick: float = 1.0
    ) -> None:
        self.runtime = runtime
        # The least time between one refresh's end and the next one's start: bounds how
        # often a small feed pushes (a large one is bounded by its pass over the sockets).
        self.interval = interval
        self.clock_tick = clock_tick  # how soon a moved clock is noticed (tests, simulations)
        self.feeds: dict[uuid.UUID, Feed] = {}

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        contest: Contest,
        viewer: Viewer,
        *,
        first: int,
        renderer: Renderer,
        shape: str = "",
        tag: Any = None,
        sink: Sink | None = None,
    ) -> AsyncIterator[Subscriber]:
        """Join the contest's feed; the first message (a fresh snapshot) is already offered
        when the block starts."""
        sub = await self.join(
            contest, viewer, first=first, renderer=renderer, shape=shape, tag=tag, sink=sink
        )
        try:
            yield sub
        finally:
            await self.leave(contest.id, sub)

    async def join(
        self,
        contest: Contest,
        viewer: Viewer,
        *,
        first: int,
        renderer: Renderer,
        shape: str = "",
        tag: Any = None,
        sink: Sink | None = None,
    ) -> Subscriber:
        """``subscribe`` without the block, for a subscriber with no task of its own (its
        sink takes every message): it stays in the feed until ``leave``."""
        feed = self.feeds.get(contest.id)
        if feed is None:
            feed = self.feeds[contest.id] = Feed(self, contest.id)
            feed.start()
        key = GroupKey(first, viewer.audience, shape)
        group = feed.groups.get(key)
        if group is None:
            group = feed.groups[key] = Group(key, viewer.shared, renderer)
        sub = Subscriber(group, viewer.principal, viewer.self_id, tag, sink)
        group.add(sub)
        try:
            await asyncio.shield(feed.opened)  # raises RedisUnavailable while Redis is down
            await feed.refresh(only=sub)
        except BaseException:
            await self.leave(contest.id, sub)
            raise
        return sub

    async def leave(self, contest_id: uuid.UUID, sub: Subscriber) -> None:
        """The subscriber is gone (again: nothing happens); the last one stops the feed."""
        sub.done = True
        group = sub.group
        group.discard(sub)
        feed = self.feeds.get(contest_id)
        if feed is None:
            return
        if not group.subscribers and feed.groups.get(group.key) is group:
            del feed.groups[group.key]
        if feed.empty:
            del self.feeds[contest_id]
            await feed.stop()

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            for task in (feed.task, feed.clock_task):
                if task is not None:
                    task.cancel()
        self.feeds.clear()

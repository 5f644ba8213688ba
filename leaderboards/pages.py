"""Board pages served from process memory while the board has not changed.

Every change to a board (a credit, a reversal, a rebuild after a rule change) bumps its
version in Redis and announces the new version on the contest's pub/sub channel
(``Leaderboards.notify``). A process that reads a page of a contest first subscribes to
that channel, so it hears of every later change; a page read at version v is served again
while v is the latest version this process has heard of (and the contest row is unchanged,
see infra.cache). Popular pages (the top 10 everyone polls) then cost no Redis round trip.

While the pub/sub connection is down nothing is served from here (a notice may be lost);
a page that is read while a notice is in flight is cached under the version it was read
at, which the notice then supersedes. What is heard only goes up: a notice that arrives
after a newer one (two handlers or processes announce at once) changes nothing. A Redis
restart that lost the board serves the last page seen until the rebuild's notice: the
rebuilt board has the same standings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from infra.cache import ReadCache, TableEpochs
from infra.pubsub import Hub
from leaderboards import ranking
from leaderboards.boards import Boards
from leaderboards.models import Contest

PageKey = tuple[uuid.UUID, str, int, int]  # contest, period, start, count
Listener = Callable[[bytes | None], None]


class PageCache:
    def __init__(
        self, boards: Boards, hub: Hub, epochs: TableEpochs, channel_of: Callable[[uuid.UUID], str]
    ) -> None:
        self.boards = boards
        self.hub = hub
        self.channel_of = channel_of
        # The contest row decides how a reply is read (ranking style, scale).
        self._pages: ReadCache[PageKey, ranking.Page] = ReadCache(
            epochs, ("contest",), maxsize=1_000
        )
        self._heard: dict[uuid.UUID, int] = {}  # the latest version announced per contest
        self._watching: set[uuid.UUID] = set()

    async def page(self, contest: Contest, period_key: str, start: int, count: int) -> ranking.Page:
        key = (contest.id, period_key, start, count)
        cached = self._pages.get(key)
        if (
            cached is not None
            and self.hub.subscribed
            and self._heard.get(contest.id) == cached.version
        ):
            return cached
        if contest.id not in self._watching:
            # Subscribed before the read: every change after the read is heard.
            await self.hub.watch(self.channel_of(contest.id), self._listener(contest.id))
            self._watching.add(contest.id)
        stamp = self._pages.stamp()
        page = await self.boards.page(contest, period_key, start, count)
        if page.built:
            # Reads only raise what we know: a notice heard during the read is newer.
            self._heard[contest.id] = max(self._heard.get(contest.id, 0), page.version)
            self._pages.put(key, page, stamp)
        return page

    def heard(self, contest_id: uuid.UUID) -> int:
        """The latest version of the contest read or announced, as far as this process
        heard (0 when it did not)."""
        return self._heard.get(contest_id, 0)

    def is_current(self, contest_id: uuid.UUID, version: int) -> bool:
        """The board is still at ``version``, as far as this process can hear."""
        return self.hub.subscribed and self._heard.get(contest_id) == version

    def _listener(self, contest_id: uuid.UUID) -> Listener:
        def heard(message: bytes | None) -> None:
            if message is None:  # reconnected: anything may have changed meanwhile
                self._heard.clear()
                return
            try:
                # Only up: versions never go back (leaderboards.versions), so a notice of
                # a lower one is late (read before a change another process announced
                # first), and must not make the page cached at that version current again.
                version = int(message)
                self._heard[contest_id] = max(self._heard.get(contest_id, 0), version)
            except ValueError:
                self._heard.pop(contest_id, None)

        return heard

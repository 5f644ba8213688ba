"""When each API key was last used (``ApiKey.last_used_at``), written off the request path.

Authentication only reads: it notes a key's use in memory, and ``run`` writes the latest use
of every key seen every ``interval`` seconds (and ``flush`` once more at shutdown). Writing
in the request made a login fail whenever another writer held SQLite's lock ("database is
locked"), and made every API-key request a writer. A flush that fails (the lock held past
the busy timeout, the database down) keeps its uses for the next round: a write can only be
late, never lost while the process lives, and never fails a request.

Every process keeps its own uses; the UPDATE only moves ``last_used_at`` forward, so
processes flushing in any order agree. With the default interval of 30 s, ``lastUsedAt`` is
at most 30 s behind the last use (the README promises "to the minute").
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import or_, update

from infra.db import UNTRACKED, Database
from partners.models import ApiKey

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 30.0


class KeyUsage:
    def __init__(self, db: Database, *, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.db = db
        self.interval = interval
        self._pending: dict[uuid.UUID, datetime] = {}

    def note(self, key_id: uuid.UUID, at: datetime) -> None:
        """The key was used at ``at`` (a dict write: called on every API-key request)."""
        seen = self._pending.get(key_id)
        if seen is None or at > seen:
            self._pending[key_id] = at

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        table = ApiKey.__table__  # type: ignore[attr-defined]
        try:
            async with self.db.transaction() as session:
                # Untracked: the read caches do not hear of this write, as no principal is
                # read from the column; otherwise each flush would drop every cached
                # principal and re-check every open websocket (api.ws_sessions).
                connection = await session.connection()
                for key_id, at in sorted(pending.items()):  # one lock order everywhere
                    await connection.execute(
                        update(table)
                        .where(table.c.id == key_id)
                        .where(or_(table.c.last_used_at.is_(None), table.c.last_used_at < at))
                        .values(last_used_at=at),
                        execution_options={UNTRACKED: True},
                    )
        except BaseException as exc:  # cancelled mid-write (shutdown) included: keep them
            if isinstance(exc, Exception):
                log.warning("could not record API key use yet; retrying", exc_info=True)
            for key_id, at in pending.items():
                self.note(key_id, at)
            if not isinstance(exc, Exception):
                raise

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled (the app flushes once more at
        shutdown)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

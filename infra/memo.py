"""Answering a repeated read of unchanged data with the response it got last time.

A partner's leaderboard screen asks the same question again and again, and between two
changes of the board the answer is the same bytes. An operation is remembered only when
everything it read came from the exact caches (``infra.cache``, ``leaderboards.pages``):
reading SQL or Redis outside them *taints* the recording, and so does any root field that
did not declare what it read. A remembered response is served again while

- no table has changed anywhere (``TableEpochs.changes``: every commit in any process, so
  a change to the caller, their partner, the contest or a name drops it),
- every board it showed is still at the version it showed (the versions announced on
  the contests' pub/sub channels), and pub/sub is up,
- the clock has not reached the next instant at which its answer would change by itself
  (a period's or the contest's start or end), and at most ``ttl`` seconds.

It is keyed by the credential and the exact request, so nobody gets another caller's view.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from infra.cache import TableEpochs

BoardCheck = Callable[[uuid.UUID, int], bool]  # is this board still at this version?


@dataclass
class Recording:
    """What one operation read, collected while it runs."""

    changes: int  # TableEpochs.changes when the operation started
    tainted: bool = False
    fields: int = 0  # root fields that declared what they read
    boards: list[tuple[BoardCheck, uuid.UUID, int]] = field(default_factory=list)
    until: datetime | None = None

    def taint(self) -> None:
        """Something was read that no cache tracks: this answer cannot be reused."""
        self.tainted = True

    def board(self, current: BoardCheck, contest_id: uuid.UUID, version: int) -> None:
        self.boards.append((current, contest_id, version))

    def changes_at(self, instant: datetime) -> None:
        """The answer changes by itself at ``instant`` (e.g. a period ends)."""
        if self.until is None or instant < self.until:
            self.until = instant

    def field_done(self) -> None:
        self.fields += 1


@dataclass(frozen=True)
class _Entry:
    body: bytes
    changes: int
    boards: tuple[tuple[BoardCheck, uuid.UUID, int], ...]
    until: datetime | None
    stored_at: float


MemoKey = tuple[str, bytes, str]  # credential, request body, response media type


class ResponseMemo:
    def __init__(self, epochs: TableEpochs, *, ttl: float = 10.0, maxsize: int = 2_000) -> None:
        self.epochs = epochs
        self.ttl = ttl
        self.maxsize = maxsize
        self.hits = 0
        self._entries: OrderedDict[MemoKey, _Entry] = OrderedDict()

    def start(self) -> Recording:
        return Recording(changes=self.epochs.changes)

    def get(self, key: MemoKey, now: datetime) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not self._valid(entry, now):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.body

    def put(self, key: MemoKey, recording: Recording, root_fields: int, body: bytes) -> None:
        """Remember ``body`` if every root field declared its reads and none was untracked."""
        if recording.tainted or root_fields == 0 or recording.fields != root_fields:
            return
        entry = _Entry(
            body, recording.changes, tuple(recording.boards), recording.until, time.monotonic()
        )
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def _valid(self, entry: _Entry, now: datetime) -> bool:
        return (
            self.epochs.live
            and entry.changes == self.epochs.changes
            and (entry.until is None or now < entry.until)
            and time.monotonic() - entry.stored_at <= self.ttl
            and all(current(contest, version) for current, contest, version in entry.boards)
        )

"""What the CSV imports share (partners, the billing system's subscription changes, the
serial registry), generic over each domain's error-code enum: the report of what a file
did, with every bad row by line number and code (the first ``MAX_REPORTED_ERRORS`` kept),
the all-or-nothing refusal that carries it, and the file read once as UTF-8 text (a BOM is
fine) with its progress told, and its dates read."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import IO, Any, Generic, Protocol, TypeVar

from infra.errors import DomainError

C = TypeVar("C", bound=Enum)

MAX_REPORTED_ERRORS = 1000


@dataclass(frozen=True)
class RowError(Generic[C]):
    line: int
    code: C
    message: str


@dataclass
class ImportReport(Generic[C]):
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError[C]] = field(default_factory=list)
    applied: bool = False

    def add_error(self, line: int, code: C, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, code, message))


R = TypeVar("R", bound=ImportReport[Any])


class ImportRejected(DomainError, Generic[R]):
    """Some rows were bad and the caller wanted all or nothing: nothing was written.
    ``code`` is the domain's "rows rejected" code; ``report`` what the file held."""

    def __init__(self, code: Enum, report: R) -> None:
        super().__init__(
            code,
            f"{report.rejected} of {report.rows} rows are invalid; nothing was imported. "
            "Fix them, or import the good rows only.",
            "file",
        )
        self.report = report


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class Source(io.RawIOBase):
    """A binary file read once: tells ``progress`` how many bytes each chunk had, and
    feeds ``digest`` (a hashlib object) when given one."""

    def __init__(
        self,
        source: IO[bytes],
        progress: Callable[[int], None] | None = None,
        digest: _Digest | None = None,
    ) -> None:
        self.source = source
        self.progress = progress
        self.digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.source.read(len(buffer))
        n = len(chunk)
        buffer[:n] = chunk
        if self.digest is not None:
            self.digest.update(chunk)
        if self.progress is not None:
            self.progress(n)
        return n

    def text(self, buffer_size: int = io.DEFAULT_BUFFER_SIZE) -> io.TextIOWrapper:
        """The file as UTF-8 text (a BOM is fine), newlines left to the csv module."""
        return io.TextIOWrapper(
            io.BufferedReader(self, buffer_size=buffer_size), encoding="utf-8-sig", newline=""
        )


class Instants:
    """ISO 8601 dates or instants to UTC datetimes (naive means UTC; None when not one),
    memoised: import files repeat the same few dates."""

    def __init__(self) -> None:
        self.cache: dict[str, datetime | None] = {}

    def parse(self, raw: str) -> datetime | None:
        found = self.cache.get(raw, False)
        if found is not False:
            return found  # type: ignore[return-value]
        value: datetime | None
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            value = None
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if len(self.cache) < 100_000:
            self.cache[raw] = value
        return value

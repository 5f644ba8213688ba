"""Calendar quarters in UTC ("2027-Q1" = [2027-01-01, 2027-04-01)), the period forecasts,
accuracy and concentration alerts are kept by."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_QUARTER = re.compile(r"^([0-9]{4})-Q([1-4])$")  # ASCII digits (\d takes any script's)


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int  # 1..4

    @classmethod
    def parse(cls, text: str) -> Quarter | None:
        """ "2027-Q1" (case-insensitive, surrounding spaces ignored); None when malformed."""
        found = _QUARTER.match(text.strip().upper())
        if found is None or not 1970 <= int(found.group(1)) <= 9998:
            return None
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, instant: datetime) -> Quarter:
        utc = instant.astimezone(UTC)
        return cls(utc.year, (utc.month - 1) // 3 + 1)

    @property
    def key(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def starts_at(self) -> datetime:
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=UTC)

    @property
    def ends_at(self) -> datetime:
        """Exclusive: the next quarter's start."""
        return self.next().starts_at

    def next(self) -> Quarter:
        return (
            Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)
        )

    def previous(self) -> Quarter:
        return (
            Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)
        )

    def __str__(self) -> str:
        return self.key

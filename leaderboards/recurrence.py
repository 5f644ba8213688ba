"""Contest periods: the whole window, or daily / weekly / monthly periods that start at
local midnight in the contest's display time zone.

Period boundaries are computed as local calendar dates and only then converted to UTC, so a
"day" that contains a daylight-saving change is 23 or 25 hours long and the next period
still starts at local midnight. Each period is clipped to the contest window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from infra.codes import is_time_zone

WHOLE = "all"
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


class Frequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


@dataclass(frozen=True)
class Recurrence:
    frequency: Frequency
    week_start: int = 0  # Monday

    def __str__(self) -> str:
        text = f"FREQ={self.frequency.value}"
        if self.frequency is Frequency.WEEKLY and self.week_start:
            text += f";WKST={_WEEKDAYS[self.week_start]}"
        return text


class RecurrenceError(ValueError):
    pass


def parse_recurrence(text: str | None) -> Recurrence | None:
    """'FREQ=DAILY', 'FREQ=WEEKLY;WKST=SU', 'FREQ=MONTHLY' (or just 'WEEKLY'); None or ''
    means one period for the whole window. Raises RecurrenceError."""
    if text is None or not text.strip():
        return None
    parts: dict[str, str] = {}
    for item in text.strip().upper().split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            key, value = "FREQ", key
        if key in parts:
            raise RecurrenceError(f"{key} is given twice")
        parts[key.strip()] = value.strip()
    unknown = set(parts) - {"FREQ", "WKST"}
    if unknown:
        raise RecurrenceError(f"unsupported recurrence part(s): {', '.join(sorted(unknown))}")
    try:
        frequency = Frequency(parts.get("FREQ", ""))
    except ValueError as exc:
        raise RecurrenceError("FREQ must be DAILY, WEEKLY or MONTHLY") from exc
    week_start = 0
    if "WKST" in parts:
        if frequency is not Frequency.WEEKLY or parts["WKST"] not in _WEEKDAYS:
            raise RecurrenceError("WKST is a weekday (MO..SU) for weekly contests")
        week_start = _WEEKDAYS.index(parts["WKST"])
    return Recurrence(frequency, week_start)


def zone(name: str) -> ZoneInfo:
    if not is_time_zone(name):  # ZoneInfo alone also opens 'localtime' and other files
        raise RecurrenceError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RecurrenceError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class Period:
    key: str
    starts_at: datetime
    ends_at: datetime

    def contains(self, instant: datetime) -> bool:
        return self.starts_at <= instant < self.ends_at


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _local_bounds(rec: Recurrence, day: date) -> tuple[str, date, date]:
    if rec.frequency is Frequency.DAILY:
        return day.isoformat(), day, day + timedelta(days=1)
    if rec.frequency is Frequency.WEEKLY:
        start = day - timedelta(days=(day.weekday() - rec.week_start) % 7)
        return f"W{start.isoformat()}", start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), start, end


def period_at(
    recurrence: Recurrence | None,
    tz_name: str,
    window: tuple[datetime, datetime],
    instant: datetime,
) -> Period | None:
    """The period containing ``instant``, or None when it is outside the window."""
    starts, ends = window
    if not starts <= instant < ends:
        return None
    if recurrence is None:
        return Period(WHOLE, starts, ends)
    tz = zone(tz_name)
    key, first, last = _local_bounds(recurrence, instant.astimezone(tz).date())
    return Period(key, max(starts, _midnight(first, tz)), min(ends, _midnight(last, tz)))


def periods_between(
    recurrence: Recurrence | None,
    tz_name: str,
    window: tuple[datetime, datetime],
    until: datetime | None = None,
    limit: int = 1000,
) -> list[Period]:
    """The window's periods in order (those starting before ``until`` when given)."""
    starts, ends = window
    out: list[Period] = []
    cursor = starts
    while cursor < ends and len(out) < limit and (until is None or cursor < until):
        period = period_at(recurrence, tz_name, window, cursor)
        assert period is not None
        out.append(period)
        cursor = period.ends_at
    return out


def find_period(
    recurrence: Recurrence | None, tz_name: str, window: tuple[datetime, datetime], key: str
) -> Period | None:
    """The period with this key, if it is one of the window's periods."""
    if recurrence is None:
        return Period(WHOLE, *window) if key == WHOLE else None
    tz = zone(tz_name)
    try:
        if recurrence.frequency is Frequency.MONTHLY:
            day = datetime.strptime(key, "%Y-%m").date()
        elif recurrence.frequency is Frequency.WEEKLY:
            day = date.fromisoformat(key.removeprefix("W"))
        else:
            day = date.fromisoformat(key)
    except ValueError:
        return None
    instant = max(_midnight(day, tz), window[0])
    period = period_at(recurrence, tz_name, window, instant)
    return period if period is not None and period.key == key else None

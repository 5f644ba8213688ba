"""Notification and e-mail text from the templates in ``notifications/templates/``: one
file of messages per language (a title and a body macro per kind), and the mail layouts
(plain text and HTML). Money and dates are formatted by Babel in the reader's locale and
time zone. Message text is plain; the HTML layout is rendered with autoescaping, so text
a user typed (a customer name, a reason) is escaped where it lands in HTML."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from infra.money import exponent

# The languages notifications are written in (a user's locale preference picks one).
LOCALES = ("en", "de")
DEFAULT_LOCALE = "en"

_text = Environment(
    loader=PackageLoader("notifications", "templates"),
    autoescape=False,  # plain text: nothing here is HTML
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_html = Environment(
    loader=PackageLoader("notifications", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    undefined=StrictUndefined,
)


@dataclass(frozen=True)
class Formats:
    """What templates call as ``fmt``: money and dates for one reader."""

    locale: str
    time_zone: str

    @property
    def _tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def money(self, minor: int, currency: str) -> str:
        amount = Decimal(int(minor)).scaleb(-exponent(currency))
        return str(format_currency(amount, currency, locale=self.locale))

    def number(self, value: int | float) -> str:
        return str(format_decimal(value, locale=self.locale))

    def percent(self, ratio: float) -> str:
        """0.425 -> '42.5%' (English), '42,5 %' (German)."""
        return str(format_percent(ratio, format="#,##0.#%", locale=self.locale))

    def _instant(self, value: str | datetime) -> datetime:
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return at.astimezone(self._tz)

    def date(self, value: str | dt.datetime) -> str:
        return str(format_date(self._instant(value).date(), format="long", locale=self.locale))

    def datetime(self, value: str | dt.datetime) -> str:
        """The long date and short time joined the locale's way, with the reader's time
        zone named (e.g. "March 2, 2027 at 12:30 AM (Europe/Berlin)")."""
        at = self._instant(value)
        joined = str(get_datetime_format("long", locale=self.locale)).format(
            format_time(at, format="short", locale=self.locale),
            format_date(at.date(), format="long", locale=self.locale),
        )
        return f"{joined} ({self.time_zone})"

    def month(self, value: str | dt.datetime) -> str:
        # The month a statement covers: its first instant, read in UTC like the statement.
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return str(format_date(at.date(), format="LLLL y", locale=self.locale))

    def day(self, value: str | dt.date) -> str:
        day = date.fromisoformat(value) if isinstance(value, str) else value
        return str(format_date(day, format="long", locale=self.locale))


def locale_of(value: str | None) -> str:
    return value if value in LOCALES else DEFAULT_LOCALE


def _messages(locale: str, time_zone: str) -> Any:
    template = _text.get_template(f"messages.{locale_of(locale)}.txt")
    return template.make_module({"fmt": Formats(locale_of(locale), time_zone)})


@dataclass(frozen=True)
class Message:
    title: str
    body: str

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.body.split("\n\n") if p.strip()]


def json_safe(params: dict[str, Any]) -> dict[str, Any]:
    def encode(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value

    return {k: encode(v) for k, v in params.items()}


def render(kind: str, params: dict[str, Any], *, locale: str, time_zone: str) -> Message:
    """A notification's title and body in ``locale``. ``kind`` names the macros
    ``<kind>_title`` and ``<kind>_body`` of every messages file."""
    messages = _messages(locale, time_zone)
    p = json_safe(params)
    title = " ".join(str(getattr(messages, f"{kind}_title")(p)).split())
    body = str(getattr(messages, f"{kind}_body")(p)).strip()
    return Message(title=title[:300], body=body[:4000])


def kinds() -> set[str]:
    """Every kind the English messages define (a test checks every language has them)."""
    return _kinds(DEFAULT_LOCALE)


def _kinds(locale: str) -> set[str]:
    module = _messages(locale, "UTC")
    names = {n for n in dir(module) if not n.startswith("_")}
    return {
        n[: -len("_title")] for n in names if n.endswith("_title") and f"{n[:-6]}_body" in names
    }


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def mail(
    items: list[Message],
    *,
    subject: str,
    locale: str,
    time_zone: str,
    name: str,
) -> RenderedMail:
    """One e-mail (plain text and HTML) carrying ``items``: one message, or a digest's."""
    messages = _messages(locale, time_zone)
    values = {
        "subject": subject,
        "greeting": str(messages.greeting(name)),
        "footer": str(messages.footer()),
        "items": items,
        "lang": locale_of(locale),
    }
    text = _text.get_template("mail.txt").render(values)
    html = _html.get_template("mail.html").render(values)
    return RenderedMail(subject=" ".join(subject.split())[:300], text=text, html=html)


def digest_subject(count: int, day: date, *, locale: str, time_zone: str) -> str:
    messages = _messages(locale, time_zone)
    return " ".join(str(messages.digest_title(count, day.isoformat())).split())

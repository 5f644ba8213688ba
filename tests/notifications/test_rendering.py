"""The templates: every kind is written in every language, money and dates come out in the
reader's locale and time zone, and HTML escapes what users typed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifications import rendering

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


def test_every_language_writes_every_kind() -> None:
    kinds = rendering.kinds()
    assert {"claim_approved", "deal_expiring", "payout_held", "tier_reached", "contest_won",
            "prize_within_reach", "invitation", "partner_applied"} <= kinds  # fmt: skip
    for locale in rendering.LOCALES:
        assert rendering._kinds(locale) == kinds


@pytest.mark.parametrize(
    ("locale", "title", "body_part"),
    [
        (
            "en",
            "Deal protection ends March 2, 2027: Acme",
            "ends on March 2, 2027, 12:30\u202fAM (Europe/Berlin)",
        ),
        (
            "de",
            "Deal-Schutz endet am 2. März 2027: Acme",
            "endet am 2. März 2027, 00:30 (Europe/Berlin)",
        ),
    ],
)
def test_dates_in_the_readers_locale_and_time_zone(locale: str, title: str, body_part: str) -> None:
    # 23:30 UTC on 1 March is 00:30 on 2 March in Berlin.
    at = datetime(2027, 3, 1, 23, 30, tzinfo=UTC)
    message = rendering.render(
        "deal_expiring", {"customer": "Acme", "protected_until": at}, locale=locale,
        time_zone="Europe/Berlin",
    )  # fmt: skip
    assert message.title == title
    assert body_part in message.body


def test_money_by_currency_minor_units_and_locale() -> None:
    params = {"customer": "X", "invoice": "1", "amount_minor": 123_456, "currency": "JPY"}
    en = rendering.render("claim_approved", params, locale="en", time_zone="UTC")
    de = rendering.render("claim_approved", params, locale="de", time_zone="UTC")
    assert "¥123,456" in en.body  # yen have no minor units
    assert "123.456\xa0¥" in de.body


def test_an_unknown_locale_falls_back_to_english() -> None:
    message = rendering.render("webhook_disabled", {"url": "https://x", "reason": None},
                               locale="fr", time_zone="UTC")  # fmt: skip
    assert message.title == "Webhook endpoint disabled"


def test_html_escapes_user_text_and_plain_text_keeps_it() -> None:
    message = rendering.Message(title='<img src=x onerror="alert(1)">', body="a & <b>b</b>")
    mail = rendering.mail([message], subject=message.title, locale="en", time_zone="UTC",
                          name="<Eve>")  # fmt: skip
    assert "<img" not in mail.html
    assert "&lt;b&gt;b&lt;/b&gt;" in mail.html
    assert "&lt;Eve&gt;" in mail.html
    assert "a & <b>b</b>" in mail.text

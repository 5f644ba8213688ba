"""The invitation e-mail: the invitee (not a user yet) is sent the acceptance token, or a
link built from ``CHANNELBOARD_INVITATION_URL`` with the token in it, in the same
transaction that issued the token. The token is only shown once (only its hash is stored),
so the mail row keeps it until it is sent and then forgets it (``Mail.secret``)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from notifications import rendering
from notifications.models import Mail, MailKind
from partners.invitations import IssuedInvitation
from partners.models import Partner, Vendor


def accept_url(template: str | None, token: str) -> str | None:
    """The link the invitee opens: the configured template with ``{token}`` filled in."""
    if not template:
        return None
    return template.replace("{token}", token)


async def mail_invitation(
    session: AsyncSession,
    clock: Clock,
    issued: IssuedInvitation,
    *,
    url_template: str | None,
    locale: str = rendering.DEFAULT_LOCALE,
) -> Mail:
    invitation = issued.invitation
    vendor = await session.get(Vendor, invitation.vendor_id)
    partner = await session.get(Partner, invitation.partner_id) if invitation.partner_id else None
    assert vendor is not None
    params = {
        "vendor": vendor.name, "partner": partner.name if partner else None,
        "role": invitation.role.value.replace("_", " ").title(), "token": issued.token,
        "url": accept_url(url_template, issued.token), "expires_at": invitation.expires_at,
    }  # fmt: skip
    message = rendering.render("invitation", params, locale=locale, time_zone="UTC")
    rendered = rendering.mail(
        [message], subject=message.title, locale=locale, time_zone="UTC", name=invitation.email
    )
    now = clock.now()
    mail = Mail(
        vendor_id=invitation.vendor_id, kind=MailKind.MESSAGE, to_address=invitation.email,
        locale=locale, subject=rendered.subject, text_body=rendered.text,
        html_body=rendered.html, secret=True, created_at=now, due_at=now,
    )  # fmt: skip
    session.add(mail)
    await session.flush()
    return mail

"""SMTP over TLS, as production runs it: STARTTLS (the default) and implicit TLS, the
server's certificate verified against CHANNELBOARD_SMTP_CA_FILE, with a login. A server
whose certificate the CA did not sign gets nothing (the mail waits for a retry)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from notifications.models import Mail
from notifications.sender import MailSender
from tests.notifications.scenarios import Receiver, text_of
from tests.ports import free_port

pytestmark = pytest.mark.slow


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )  # fmt: skip
    )
    return cert_file, key_file


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"cb", b"s3cret")
    return AuthResult(success=ok)


@contextmanager
def tls_server(cert: Path, key: Path, *, implicit: bool) -> Iterator[tuple[Receiver, int]]:
    receiver = Receiver()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    options: dict[str, Any] = {"authenticator": _authenticator, "auth_require_tls": True}
    if implicit:  # the whole connection is TLS (aiosmtpd would not offer AUTH otherwise)
        options.update(ssl_context=context, auth_require_tls=False)
    else:
        options.update(tls_context=context, require_starttls=True)
    controller = Controller(receiver, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield receiver, port
    finally:
        controller.stop()


async def queue(db: Database, clock: OffsetClock, vendor_id: Any, to: str) -> None:
    async with db.transaction() as session:
        now = clock.now()
        session.add(Mail(
            vendor_id=vendor_id, kind="MESSAGE", to_address=to, subject="Hello",
            text_body="plain body", html_body="<p>html body</p>", created_at=now, due_at=now,
        ))  # fmt: skip


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_over_tls_with_a_verified_certificate_and_a_login(
    settings: Settings, db: Database, clock: OffsetClock, tmp_path: Path, tenant: Any,
    security: str,
) -> None:  # fmt: skip
    cert, key = self_signed(tmp_path, "mail")
    with tls_server(cert, key, implicit=security == "tls") as (receiver, port):
        configured = settings.with_overrides(
            smtp_host="127.0.0.1", smtp_port=port, smtp_security=security, smtp_user="cb",
            smtp_password="s3cret", smtp_ca_file=cert,
        )  # fmt: skip
        assert configured.smtp is not None
        await queue(db, clock, tenant.vendor.id, "someone@example.com")
        assert await MailSender(db, clock, configured.smtp).send_due() == 1
        [message] = receiver.to("someone@example.com")
        assert text_of(message).strip() == "plain body"


async def test_a_certificate_the_ca_did_not_sign_gets_nothing(
    settings: Settings, db: Database, clock: OffsetClock, tmp_path: Path, tenant: Any
) -> None:
    cert, key = self_signed(tmp_path, "mail")
    other_ca, _ = self_signed(tmp_path, "other")
    with tls_server(cert, key, implicit=False) as (receiver, port):
        configured = settings.with_overrides(
            smtp_host="127.0.0.1", smtp_port=port, smtp_user="cb", smtp_password="s3cret",
            smtp_ca_file=other_ca,
        )  # fmt: skip
        assert configured.smtp is not None
        await queue(db, clock, tenant.vendor.id, "someone@example.com")
        assert await MailSender(db, clock, configured.smtp).send_due() == 0
        assert receiver.messages == []
    async with db.session() as session:
        [mail] = list(await session.exec(select(Mail)))
    assert mail.sent_at is None
    assert mail.attempts == 1
    assert mail.last_error is not None

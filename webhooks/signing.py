"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by its reference
library, ``standardwebhooks``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under a
``whsec_<base64>`` secret. During a rotation's overlap both the new and the previous
secret sign, space-separated in one ``webhook-signature`` header, so a receiver holding
either verifies."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from functools import lru_cache

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def signature(signing_secrets: list[str], message_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,...`` per secret, newest first."""
    return " ".join(_signer(s).sign(message_id, at, body) for s in signing_secrets)


def headers(signing_secrets: list[str], message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt. ``at`` is the attempt's wall-clock
    instant: receivers refuse a timestamp more than 5 minutes from their own clock."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(signing_secrets, message_id, at, body),
    }

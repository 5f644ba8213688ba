"""Where and how mail is sent: a plain value the settings build (kept apart from the sender,
which loads the database models, so that reading the settings stays cheap)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # "starttls", "tls" (implicit TLS) or "none"
    username: str | None = None
    password: str | None = None
    from_address: str = "channelboard@localhost"
    ca_file: str | None = None  # verify the server with this CA bundle (default: the system's)
    timeout_seconds: float = 30.0

"""Where a webhook may be sent: an absolute http(s) URL whose host resolves only to public
addresses, unless the installation allows private targets
(``CHANNELBOARD_WEBHOOKS_ALLOW_PRIVATE_TARGETS``, for tests and closed networks).

Checked when an endpoint is registered or changed, and again before every request: a
host name that resolved to a public address at registration may resolve to an inside
one later (DNS rebinding), so the worker resolves it again, refuses it if any address is
inside, and connects to the address it checked (``Target.pinned``), never re-resolving."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from infra.errors import DomainError
from webhooks.errors import WebhookErrorCode

MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT_SECONDS = 3.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (a test or an installation may swap it).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class TargetPolicy:
    allow_private: bool = False
    resolver: Resolver = system_resolver


class TargetRefused(Exception):
    """A URL that may not be used: its code (a ``WebhookErrorCode``) and a message safe to
    show to the vendor."""

    def __init__(self, code: WebhookErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_domain_error(self, field: str = "url") -> DomainError:
        return DomainError(self.code, self.message, field)


@dataclass(frozen=True)
class Target:
    """A checked URL. ``pinned`` is the URL to connect to (the checked address in place of
    the host name; the URL itself when private targets are allowed), ``host_header`` and
    ``sni`` what the request must still name."""

    url: str
    pinned: str
    host_header: str | None
    sni: str | None


def is_public(address: Address) -> bool:
    """Not private, loopback, link-local, multicast, reserved, unspecified or shared
    (carrier-grade NAT) space, including IPv4 addresses inside IPv6 forms. IPv6 site-local
    (fec0::/10, deprecated but still routed inside some networks) is inside too: Python
    counts it as global."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in (address.ipv4_mapped, address.sixtofour):
            if inner is not None:
                return is_public(inner)
        if address.teredo is not None or address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback
        or address.is_link_local or address.is_private or address.is_unspecified
    )  # fmt: skip


def parse(url: str) -> SplitResult:
    """An absolute http(s) URL with a host and no credentials, or ``TargetRefused``."""
    text = url.strip()
    if len(text) > MAX_URL_LENGTH:
        raise TargetRefused(WebhookErrorCode.INVALID_URL, "The URL is too long.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(WebhookErrorCode.INVALID_URL, "Not a valid URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(WebhookErrorCode.INVALID_URL, "Use an http:// or https:// URL.")
    if not parts.hostname:
        raise TargetRefused(WebhookErrorCode.INVALID_URL, "The URL names no host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            WebhookErrorCode.INVALID_URL, "Put no credentials in the URL; verify signatures."
        )
    if parts.fragment or port == 0:
        raise TargetRefused(WebhookErrorCode.INVALID_URL, "Not a valid webhook URL.")
    return parts


def _default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


async def addresses_of(parts: SplitResult, policy: TargetPolicy) -> list[Address]:
    host = parts.hostname or ""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            found = await policy.resolver(host, _default_port(parts))
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise TargetRefused(
            WebhookErrorCode.TARGET_UNRESOLVABLE, f"The host {host} does not resolve."
        ) from exc
    addresses = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            continue
    if not addresses:
        raise TargetRefused(
            WebhookErrorCode.TARGET_UNRESOLVABLE, f"The host {host} does not resolve."
        )
    return addresses


def _sendable(url: str) -> httpx.URL:
    """``url`` as the worker's client sends to it, or ``TargetRefused`` when it cannot:
    urlsplit keeps a control character (C0, DEL) that httpx refuses with InvalidURL, which
    is no transport error and was raised out of the whole delivery round, every round."""
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(WebhookErrorCode.INVALID_URL, "Not a valid URL.") from exc


async def check(url: str, policy: TargetPolicy) -> Target:
    """The URL as the worker sends to it, or ``TargetRefused``."""
    parts = parse(url)
    text = urlunsplit(parts)
    if policy.allow_private:
        _sendable(text)
        return Target(url=text, pinned=text, host_header=None, sni=None)
    addresses = await addresses_of(parts, policy)
    if not all(is_public(a) for a in addresses):
        raise TargetRefused(
            WebhookErrorCode.TARGET_NOT_ALLOWED,
            "The URL points to a private, loopback, link-local or otherwise internal "
            "address; webhooks go to public addresses only.",
        )
    chosen = addresses[0]
    host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{host}:{parts.port}" if parts.port else host
    pinned = urlunsplit(parts._replace(netloc=netloc))
    _sendable(pinned)
    # The name as it goes in the Host header and the TLS SNI: ASCII, an internationalised
    # one in its IDNA form (xn--...). httpx encodes header values as ASCII: a Host of
    # "hooks.müller.de" raised UnicodeEncodeError out of the delivery round, every round.
    named = _sendable(text)
    return Target(
        url=text,
        pinned=pinned,
        host_header=named.netloc.decode("ascii"),
        sni=named.raw_host.decode("ascii") if parts.scheme == "https" else None,
    )

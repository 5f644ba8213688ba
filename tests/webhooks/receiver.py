"""A webhook receiver on loopback, as an integrator writes one: it verifies every request
with the Standard Webhooks library (``standardwebhooks.Webhook(secret).verify``) and
answers as the test tells it (a status, or no answer until the sender gives up)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import live_server

HANG = "hang"  # a response that never comes (until the receiver stops)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_with: list[str]  # the receiver's secrets that verify it
    payload: Any  # what verify() returned (None when no secret verified it)

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    # What to answer, in order (then 200): a status code, HANG, or ("redirect", url).
    answers: list[Any] = field(default_factory=list)
    address: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.address}/hook"

    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified_with]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        verified, payload = [], None
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(secret)
        self.received.append(Received(headers, body, verified, payload))
        answer = self.answers.pop(0) if self.answers else 200
        if answer == HANG:
            await self._release.wait()
            return Response(status_code=200)
        if isinstance(answer, tuple):
            return Response(status_code=302, headers={"location": answer[1]})
        return Response("ok " + "x" * 3000 if answer >= 400 else "ok", status_code=answer)


@asynccontextmanager
async def receiving(*secrets: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(secrets=list(secrets))
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    async with live_server(app) as address:
        receiver.address = address
        try:
            yield receiver
        finally:
            receiver._release.set()

"""The per-request context every resolver reads: who is calling, and the process services."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales.storage import Storage
from infra.clock import Clock
from infra.db import Database
from infra.outbox import Dispatcher
from infra.pubsub import Hub
from infra.redis import Keys
from partners.roles import Principal


@dataclass(frozen=True)
class Services:
    """Process-wide resources, built once by the app and shared by every request."""

    db: Database
    redis: Redis
    keys: Keys
    clock: Clock
    outbox: Dispatcher
    hub: Hub
    max_page_size: int = 100
    production: bool = False
    storage: Storage | None = None  # uploaded files (proof); None where uploads are off
    max_upload_bytes: int = 10 << 20


class _SessionBox:
    __slots__ = ("session",)

    def __init__(self) -> None:
        self.session: AsyncSession | None = None


# One box per GraphQL operation (set by the SessionScope extension). A contextvar rather
# than a context attribute because a websocket connection shares one context between the
# operations it runs concurrently, each in its own task.
_operation_session: contextvars.ContextVar[_SessionBox | None] = contextvars.ContextVar(
    "operation_session", default=None
)


def open_operation_scope() -> contextvars.Token[_SessionBox | None]:
    return _operation_session.set(_SessionBox())


async def close_operation_scope(token: contextvars.Token[_SessionBox | None]) -> None:
    box = _operation_session.get()
    _operation_session.reset(token)
    if box is not None and box.session is not None:
        await box.session.close()


@dataclass
class Context:
    services: Services
    principal: Principal | None = None
    auth_failure: str | None = None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def session(self) -> AsyncSession:
        """The operation's database session, opened on first use, closed when it ends.
        Mutations commit it through ``schema.mutations.mutate``; queries never commit."""
        box = _operation_session.get()
        if box is None:
            raise RuntimeError("no operation scope: is the SessionScope extension installed?")
        if box.session is None:
            box.session = self.services.db.new_session()
        return box.session

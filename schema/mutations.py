"""The one place a mutation's transaction is committed or rolled back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.db import begin_write
from infra.errors import DomainError, DomainErrors
from schema.context import Context

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    result: T | None = None
    errors: list[DomainError] = field(default_factory=list)


async def mutate(context: Context, action: Callable[[AsyncSession], Awaitable[T]]) -> Outcome[T]:
    """Run a domain action in the operation's session and commit it; a DomainError rolls
    everything back and comes back as user errors. Committed outbox events are dispatched
    right after (Redis and pub/sub never see work that was rolled back)."""
    session = context.session
    try:
        await begin_write(session)
        result = await action(session)
        await session.commit()
    except DomainError as error:
        await session.rollback()
        return Outcome(errors=[error])
    except DomainErrors as errors:
        await session.rollback()
        return Outcome(errors=errors.errors)
    except BaseException:
        await session.rollback()
        raise
    context.services.outbox.notify()
    return Outcome(result=result)

"""The one way a mutation runs: `run(info, XPayload, action)`.

The runner requires the principal, hands the action a `Write` (session, principal, clock,
and the one parser each for global ids and money), begins the write transaction and
commits it, rolls back on a domain error or anything else, dispatches committed outbox
events, and builds the payload: `XPayload.of(result, write)` on success,
`XPayload.failed(errors)` (its `userErrors`) on a domain error. Saleor's
`BaseMutation.perform_mutation` is the model.

Input mistakes are reported one way everywhere:
- a global id that is malformed or of another type reads as an id no row has, so the
  service answers it exactly like a missing or invisible row (it reveals nothing);
- money: `<field>.amount` with the error type's `amount_code` when the decimal is bad; a
  currency code that is not ISO 4217 is judged by the service at `<field>.currency`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import strawberry
from strawberry import Info

from deal_registration.storage import Storage
from infra.clock import Clock
from infra.db import DbSession, begin_write
from infra.errors import DomainError, DomainErrors
from infra.outages import first_line, lost_a_race_for_a_unique_key, rolled_back_by_the_database
from partners.roles import Principal
from schema.attachments import Uploads, read_uploads
from schema.context import Context, Services
from schema.errors import UserError, user_errors
from schema.money import Amount, MoneyInput
from schema.relay import row_id

log = logging.getLogger("channelboard.graphql")

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
P_co = TypeVar("P_co", covariant=True)


@dataclass(frozen=True)
class Write:
    """What a mutation's action gets: the operation's session in a write transaction, the
    (required) principal, the clock, and the parsers whose mistakes become userErrors."""

    session: DbSession
    principal: Principal
    services: Services
    error_type: type[UserError]

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def storage(self) -> Storage:
        if self.services.storage is None:
            raise RuntimeError("file uploads are not configured")
        return self.services.storage

    @property
    def max_upload_bytes(self) -> int:
        return self.services.max_upload_bytes

    @property
    def key_retention(self) -> timedelta:
        """How long an idempotency key replays (``infra.idempotency``)."""
        return self.services.idempotency_key_retention

    def id(self, raw: strawberry.ID, type_name: str) -> uuid.UUID:
        """The row id inside a global id of that type (``schema.relay.row_id``): a malformed
        one is answered by the service exactly like a missing row (same code, field and
        message)."""
        return row_id(raw, type_name)

    def optional_id(self, raw: strawberry.ID | None, type_name: str) -> uuid.UUID | None:
        return None if raw is None else self.id(raw, type_name)

    def ids(self, raws: Iterable[strawberry.ID], type_name: str) -> list[uuid.UUID]:
        return [self.id(raw, type_name) for raw in raws]

    def money(self, value: MoneyInput, field: str) -> Amount:
        """Minor units of a MoneyInput; a bad decimal is the error type's `amount_code` at
        `<field>.amount` (``MoneyInput.parse``)."""
        code = getattr(self.error_type, "amount_code", None)
        if code is None:  # pragma: no cover - a programming error, caught by tests
            raise TypeError(f"{self.error_type.__name__} has no amount_code")
        return value.parse(field, code)

    def optional_money(self, value: MoneyInput | None, field: str) -> Amount | None:
        return None if value is None else self.money(value, field)


class Payload(Generic[R]):
    """Base of every mutation payload. A subclass names its error type and says how the
    action's result becomes the payload:

        @strawberry.type
        class ProductUpsertPayload(Payload[Product], errors=CatalogueError):
            product: ProductType | None = None
            user_errors: list[CatalogueError] = strawberry.field(default_factory=list)

            @classmethod
            def of(cls, result: Product, write: Write) -> Self:
                return cls(product=ProductType.from_model(result))
    """

    error_type: ClassVar[type[UserError]]

    def __init_subclass__(cls, errors: type[UserError] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if errors is not None:
            cls.error_type = errors

    @classmethod
    def of(cls, result: R, write: Write) -> Self:
        raise NotImplementedError

    @classmethod
    def failed(cls, errors: list[DomainError]) -> Self:
        return cls(user_errors=user_errors(errors, cls.error_type))  # type: ignore[call-arg]


class PayloadClass(Protocol[R_contra, P_co]):
    """A Payload subclass seen as the runner uses it (so that mypy checks that the
    action's result is what the payload is built from)."""

    @property
    def error_type(self) -> type[UserError]: ...

    def of(self, result: R_contra, write: Write, /) -> P_co: ...

    def failed(self, errors: list[DomainError], /) -> P_co: ...


async def run(
    info: Info[Context, None],
    payload: PayloadClass[R, P_co],
    action: Callable[[Write], Awaitable[R]],
) -> P_co:
    """Run the action in the operation's write transaction and answer with the payload.
    A transaction PostgreSQL rolled back to break a deadlock or a serialization conflict
    is run again, ``RUNS`` times in all (nothing of it stayed; the action reads everything
    anew); one that keeps meeting it is answered SERVICE_UNAVAILABLE with a retry hint
    (``schema.extensions``). So is one that lost a race for a unique key (two upserts of
    one setting at once, a double click: ``infra.outages.lost_a_race_for_a_unique_key``):
    run again, it finds the row the winner committed and updates it, or the service refuses
    with its own code (a duplicate name); one that keeps meeting it is a bug, and raised."""
    ctx = info.context
    session = ctx.session
    write = Write(session, ctx.caller, ctx.services, payload.error_type)
    run = 1
    while True:
        try:
            await begin_write(session)
            result = await action(write)
            await session.commit()
        except DomainError as error:
            await session.rollback()
            return payload.failed([error])
        except DomainErrors as errors:
            await session.rollback()
            return payload.failed(errors.errors)
        except Exception as exc:
            await session.rollback()
            if run < RUNS and (
                rolled_back_by_the_database(exc) or lost_a_race_for_a_unique_key(exc)
            ):
                log.info("%s: %s; run again", info.path.key, first_line(exc))
                run += 1
                continue
            raise
        except BaseException:
            await session.rollback()
            raise
        break
    ctx.services.outbox.notify()
    return payload.of(result, write)


# How many times a mutation's transaction runs when PostgreSQL keeps rolling it back
# (deadlock_detected, serialization_failure): the first run and two more.
RUNS = 3


async def uploads(
    info: Info[Context, None],
    one: tuple[str, Any | None],
    many: tuple[str, list[Any] | None],
    *,
    required: bool,
) -> Uploads:
    """The uploaded files of an input's one-file field or its list field (``name, value``
    each), read (each at most the limit + 1 bytes) before the transaction begins; the action
    calls ``.chosen()`` for them or the userError (``schema.attachments.read_uploads``)."""
    return await read_uploads(
        one, many, required=required, max_bytes=info.context.services.max_upload_bytes
    )

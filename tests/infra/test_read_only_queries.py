"""Queries never write: a query's (and a subscription's) session refuses to flush, to run
INSERT/UPDATE/DELETE, to begin a write and to commit; a mutation's session writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import partial

import pytest
import strawberry
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError, PendingRollbackError
from sqlmodel import select, update
from strawberry import Info

from infra.db import Database, ReadOnlySessionError, begin_write, execute_core, read_only
from partners.models import Vendor
from partners.roles import Principal, Role
from schema.context import Context, Services
from schema.document_limits import DocumentGate, DocumentLimits
from schema.extensions import OperationHooks, SessionScope

PRINCIPAL = Principal(vendor_id=uuid.uuid4(), role=Role.VENDOR_ADMIN)


def _vendor(slug: str) -> Vendor:
    return Vendor(name="Read-only probe", slug=slug, created_at=datetime.now(UTC))


async def _write(info: Info[Context, None], slug: str) -> bool:
    session = info.context.session
    session.add(_vendor(slug))
    await session.flush()
    await session.commit()
    return True


@strawberry.type
class Query:
    @strawberry.field
    async def sneaky_write(self, info: Info[Context, None], slug: str) -> bool:
        return await _write(info, slug)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def honest_write(self, info: Info[Context, None], slug: str) -> bool:
        return await _write(info, slug)


# SessionScope alone, and as the API's schema has it (with the document checks and masking).
SCHEMAS = {
    "SessionScope": strawberry.Schema(query=Query, mutation=Mutation, extensions=[SessionScope]),
    "OperationHooks": strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[partial(OperationHooks, DocumentGate(DocumentLimits()))],
    ),
}


async def _vendors(db: Database, slug: str) -> int:
    async with db.session() as session:
        return len((await session.exec(select(Vendor).where(Vendor.slug == slug))).all())


@pytest.mark.parametrize("extension", SCHEMAS)
async def test_a_query_cannot_write_and_a_mutation_can(
    services: Services, db: Database, extension: str
) -> None:
    schema = SCHEMAS[extension]
    context = Context(services=services, principal=PRINCIPAL)
    query = await schema.execute(
        f'{{ sneakyWrite(slug: "ro-query-{extension}") }}', context_value=context
    )
    assert query.errors is not None
    if extension == "SessionScope":
        assert isinstance(query.errors[0].original_error, ReadOnlySessionError)
    else:  # masked as the API masks it: a bug, not the caller's error
        assert query.errors[0].extensions == {"code": "INTERNAL_SERVER_ERROR"}
    assert await _vendors(db, f"ro-query-{extension}") == 0

    mutation = await schema.execute(
        f'mutation {{ honestWrite(slug: "ro-mutation-{extension}") }}', context_value=context
    )
    assert mutation.errors is None
    assert await _vendors(db, f"ro-mutation-{extension}") == 1


async def test_a_read_only_session_refuses_every_kind_of_write(db: Database) -> None:
    async with db.session() as session:
        read_only(session)
        session.add(_vendor("ro-flush"))
        with pytest.raises(ReadOnlySessionError):
            await session.flush()
    async with db.read_session() as session:
        with pytest.raises(ReadOnlySessionError):
            await session.exec(update(Vendor).values(name="x"))
        with pytest.raises(ReadOnlySessionError):
            await begin_write(session)
        with pytest.raises(ReadOnlySessionError):
            await session.commit()
        with pytest.raises(ReadOnlySessionError):  # past the ORM too (hot paths)
            await execute_core(session, insert(Vendor.__table__), _vendor("ro-core").model_dump())  # type: ignore[attr-defined]
    assert await _vendors(db, "ro-flush") == 0
    assert await _vendors(db, "ro-core") == 0


async def test_a_write_past_the_orm_reaches_the_read_caches(db: Database) -> None:
    """``execute_core`` skips the ORM's events, which tell the read caches what a commit
    wrote: it tells them itself."""
    seen: list[frozenset[str] | None] = []
    db.epochs.listen(seen.append)
    async with db.transaction() as session:
        await execute_core(session, insert(Vendor.__table__), _vendor("core-write").model_dump())  # type: ignore[attr-defined]
    assert frozenset({"vendor"}) in seen
    assert await _vendors(db, "core-write") == 1


async def test_execute_core_follows_the_sessions_transactions(db: Database) -> None:
    """``execute_core`` keeps the session's connection for the rest of a transaction, and
    asks the session again in the next one, and after a savepoint's failure (which the
    session reports until it is rolled back)."""
    table = Vendor.__table__  # type: ignore[attr-defined]
    async with db.session() as session:
        await begin_write(session)
        await execute_core(session, insert(table), _vendor("core-first").model_dump())
        first = await session.connection()
        await session.rollback()
        await begin_write(session)  # a new transaction: its own connection
        await execute_core(session, insert(table), _vendor("core-second").model_dump())
        assert await session.connection() is not first or not first.in_transaction()
        await session.commit()
        await begin_write(session)
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                await session.execute(insert(table), _vendor("core-second").model_dump())
        await execute_core(session, insert(table), _vendor("core-third").model_dump())
        nested = await session.begin_nested()
        session.add(_vendor("core-second"))
        with pytest.raises(IntegrityError):
            await session.flush()
        with pytest.raises(PendingRollbackError):  # as the session itself answers
            await execute_core(session, insert(table), _vendor("core-fourth").model_dump())
        await nested.rollback()
        await execute_core(session, insert(table), _vendor("core-fifth").model_dump())
        await session.commit()
    assert [await _vendors(db, f"core-{n}") for n in ("first", "second", "third")] == [0, 1, 1]
    assert [await _vendors(db, f"core-{n}") for n in ("fourth", "fifth")] == [0, 1]

"""Schema extensions: the operation's session scope, request limits, error codes, masking."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from functools import partial
from typing import Any, cast

from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, MaskErrors, SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from infra.errors import Forbidden
from infra.outages import first_line, is_unavailable, to_run_again, value_refused
from infra.redis import RedisUnavailable
from schema.context import close_operation_scope, current_operation_scope, open_operation_scope
from schema.document_limits import DocumentGate, gate_parse, gate_validate

log = logging.getLogger("channelboard.graphql")


class SessionScope(SchemaExtension):
    """Gives each operation its own lazily opened database session and closes it after."""

    async def on_operation(self) -> AsyncIterator[None]:
        scope = open_operation_scope()
        try:
            yield
        finally:
            await close_operation_scope(scope)

    def on_execute(self) -> Iterator[None]:
        # Known once the document is parsed, before any resolver opens the session.
        scope = current_operation_scope()
        if scope is not None:
            scope.writable = self.execution_context.operation_type is OperationType.MUTATION
        yield


def is_expected(error: GraphQLError) -> bool:
    """Errors we raised on purpose (they carry a code) and GraphQL's own request errors are
    shown as they are; anything else is a bug and is masked."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | InvalidOperationTypeError):
        return True
    return bool(error.extensions and "code" in error.extensions)


def service_unavailable_error() -> GraphQLError:
    """What a client sees while Redis (standings, live feeds) or the database is out of
    reach, or when the database ended its transaction for contention (a deadlock, a lock
    wait or an idle session ended: ``infra.outages.to_run_again``; SQLite's busy timeout):
    not a bug, a moment to wait. Nothing is lost meanwhile: a transaction that met the
    outage rolled back, and the outbox applies events once it is back."""
    return GraphQLError(
        "A service this needs is temporarily unavailable; retry shortly.",
        extensions={
            "code": "SERVICE_UNAVAILABLE",
            "retryAfterSeconds": RedisUnavailable.retry_after_seconds,
        },
    )


def _should_mask(error: GraphQLError) -> bool:
    if is_expected(error):
        return False
    if isinstance(error.original_error, Forbidden):
        return True  # replaced by FORBIDDEN (anonymise_error)
    if is_unavailable(error.original_error):
        log.warning("unavailable in %s: %s", error.path, error.original_error)
        return True  # replaced by SERVICE_UNAVAILABLE (anonymise_error)
    if to_run_again(error.original_error):
        log.warning("contention in %s: %s", error.path, first_line(error.original_error))
        return True  # replaced by SERVICE_UNAVAILABLE (anonymise_error)
    log.error("unexpected error in %s", error.path, exc_info=error.original_error)
    return True


def _in_place_of(error: GraphQLError, message: str, extensions: Any) -> GraphQLError:
    """An error told instead of ``error``, at its place: its ``path`` and its
    ``locations`` (setting ``nodes`` on an error made without them, as this module did,
    left its ``locations`` out)."""
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class MaskUnexpectedErrors(MaskErrors):
    """Masks bugs (no stack traces, no SQL) but tells clients it was one; an unreachable
    Redis or database is told as SERVICE_UNAVAILABLE with a retry hint."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if isinstance(error.original_error, Forbidden):
            # A service refused the role: the permission classes read the same policy
            # tables, so this is a field whose permission class is missing, not a bug to hide.
            return _in_place_of(error, str(error.original_error), {"code": "FORBIDDEN"})
        if is_unavailable(error.original_error) or to_run_again(error.original_error):
            unavailable = service_unavailable_error()
            return _in_place_of(error, unavailable.message, unavailable.extensions)
        if value_refused(error.original_error):
            # A validation gap (logged by _should_mask): the client's input, not a crash.
            return _in_place_of(
                error,
                "A value is outside what its field can store (too long, or out of range); "
                "nothing was changed.",
                {"code": "INVALID_VALUE"},
            )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked

    def _process_result(self, result: object) -> None:
        # strawberry's own asks isinstance() of a runtime-checkable Protocol (only an
        # `errors` attribute), which costs ~10 us a request on Python 3.11.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class OperationHooks(MaskUnexpectedErrors):
    """SessionScope, DocumentChecks and MaskUnexpectedErrors as one extension with two hooks
    instead of five. strawberry builds a context manager per hook and per extension for
    every operation (looking each hook up, wrapping it, an exit stack per stage): about a
    tenth of an executed `leaderboard(first: 10)`.

    - on_operation: the operation's scope (lazily opened session, closed after), and the
      errors masked once the result is known (MaskUnexpectedErrors);
    - on_parse: the gate's checks and parse, then validation (through the gate's caches)
      and whether the operation may write, all known once the document is. strawberry
      checks the operation type between parsing and validating; a validation already done
      changes nothing there (an operation type not allowed is refused either way)."""

    def __init__(self, gate: DocumentGate) -> None:
        super().__init__(should_mask_error=_should_mask, error_message="Internal error.")
        self.gate = gate

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        scope = open_operation_scope()
        masking = cast(Generator[None, None, None], MaskUnexpectedErrors.on_operation(self))
        next(masking)
        try:
            yield
            next(masking, None)
        finally:
            masking.close()
            await close_operation_scope(scope)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        gate_validate(self.gate, context, gate_parse(self.gate, context))
        scope = current_operation_scope()
        if scope is not None:
            with contextlib.suppress(RuntimeError):  # no operation to run: nothing runs
                scope.writable = context.operation_type is OperationType.MUTATION
        yield


def build_extensions(
    *, gate: DocumentGate, production: bool
) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        # The session scope, then tokens, depth, aliases and cost before validation
        # (schema.document_limits: the websocket handlers and the leaderboard fast path use
        # the same gate), and masking: SessionScope, DocumentChecks and MaskUnexpectedErrors
        # in one extension.
        partial(OperationHooks, gate),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return extensions

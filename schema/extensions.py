"""Schema extensions: the operation's session scope, request limits, error codes, masking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.exceptions import InvalidOperationTypeError

from infra.redis import RedisUnavailable, is_unavailable
from schema.context import close_operation_scope, open_operation_scope

log = logging.getLogger("channelboard.graphql")


class SessionScope(SchemaExtension):
    """Gives each operation its own lazily opened database session and closes it after."""

    async def on_operation(self) -> AsyncIterator[None]:
        scope = open_operation_scope()
        try:
            yield
        finally:
            await close_operation_scope(scope)


def depth_limit_rule(max_depth: int) -> type[ValidationRule]:
    class QueryDepthLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            fragments = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for definition in context.document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    depth = _depth(definition.selection_set, fragments, 0, frozenset())
                    if depth > max_depth:
                        name = definition.name.value if definition.name else "anonymous"
                        context.report_error(
                            GraphQLError(
                                f"Operation '{name}' is {depth} levels deep; the limit is "
                                f"{max_depth}.",
                                definition,
                                extensions={"code": "QUERY_TOO_DEEP", "maxDepth": max_depth},
                            )
                        )

    return QueryDepthLimit


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    depth: int,
    seen: frozenset[str],
) -> int:
    if selection_set is None:
        return depth
    deepest = depth
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                continue
            deepest = max(deepest, _depth(selection.selection_set, fragments, depth + 1, seen))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, depth, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                continue  # cycles and unknown fragments are reported by the standard rules
            fragment = fragments[name]
            deepest = max(deepest, _depth(fragment.selection_set, fragments, depth, seen | {name}))
    return deepest


def alias_limit_rule(max_aliases: int) -> type[ValidationRule]:
    class AliasLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is not None:
                self.count += 1
                if self.count == max_aliases + 1:
                    self.report_error(
                        GraphQLError(
                            f"The document uses more than {max_aliases} aliases.",
                            node,
                            extensions={"code": "TOO_MANY_ALIASES", "maxAliases": max_aliases},
                        )
                    )

    return AliasLimit


def is_expected(error: GraphQLError) -> bool:
    """Errors we raised on purpose (they carry a code) and GraphQL's own request errors are
    shown as they are; anything else is a bug and is masked."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | InvalidOperationTypeError):
        return True
    return bool(error.extensions and "code" in error.extensions)


def service_unavailable_error(path: Any = None) -> GraphQLError:
    """What a client sees while Redis (standings, live feeds) is out of reach: not a bug,
    a moment to wait. Nothing is lost meanwhile; the outbox applies events once it is back."""
    return GraphQLError(
        "A service this needs is temporarily unavailable; retry shortly.",
        path=path,
        extensions={
            "code": "SERVICE_UNAVAILABLE",
            "retryAfterSeconds": RedisUnavailable.retry_after_seconds,
        },
    )


def _should_mask(error: GraphQLError) -> bool:
    if is_expected(error):
        return False
    if is_unavailable(error.original_error):
        log.warning("Redis unavailable in %s: %s", error.path, error.original_error)
        return True  # replaced by SERVICE_UNAVAILABLE (anonymise_error)
    log.error("unexpected error in %s", error.path, exc_info=error.original_error)
    return True


class MaskUnexpectedErrors(MaskErrors):
    """Masks bugs (no stack traces, no SQL) but tells clients it was one; an unreachable
    Redis is told as SERVICE_UNAVAILABLE with a retry hint."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if is_unavailable(error.original_error):
            unavailable = service_unavailable_error(error.path)
            unavailable.nodes, unavailable.positions = error.nodes, error.positions
            return unavailable
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked


def build_extensions(
    *, max_depth: int, max_aliases: int, max_tokens: int, production: bool
) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        SessionScope,
        partial(MaxTokensLimiter, max_token_count=max_tokens),
        partial(ParserCache, maxsize=512),
        partial(
            AddValidationRules,
            [depth_limit_rule(max_depth), alias_limit_rule(max_aliases)],
        ),
        partial(ValidationCache, maxsize=512),
        partial(
            MaskUnexpectedErrors, should_mask_error=_should_mask, error_message="Internal error."
        ),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return extensions

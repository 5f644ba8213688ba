"""The checks every GraphQL document passes before it is validated, on every path (HTTP, both
websocket protocols, the leaderboard fast path): tokens while parsing, then one walk of the
operation with fragments expanded that measures depth, aliases, selections and how many
fields merge into one response key.

Why before validation: graphql-core's OverlappingFieldsCanBeMerged rule compares every pair
of fields that merge into one response key, recursively, so a 12 KB document repeating one
field ~500 times cost over a second of CPU to validate. The walk here is linear in the
expanded document and stops as soon as a budget is spent, so fragment bombs cost no more
than the budget; a document it accepts is cheap to validate (benchmarks/validation_cost.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    specified_rules,
)
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension

from schema.text_input import nul_in_literals, nul_in_variables

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class DocumentLimits:
    # Lexing costs per character even where there are few tokens (a long string literal or
    # comment is one token): ~100 ms for a megabyte here, ~3 ms for 32 KiB.
    max_bytes: int = 32 << 10
    max_tokens: int = 2_000
    max_depth: int = 12
    # Introspection counts too, against its own allowance: the standard introspection query
    # (GraphiQL, code generators) is 15 levels deep; `__type { fields { type { fields … } } }`
    # chains beyond that are refused.
    max_introspection_depth: int = 15
    max_aliases: int = 20
    # Field selections with fragments expanded (the standard introspection query has 220).
    max_selections: int = 500
    # Fields merged into one response key at one place in the result (`a { x } a { x }`
    # merges two `a` and two `x`): what the overlapping-fields rule compares pairwise.
    max_repeated_fields: int = 10
    max_operations: int = 20
    max_fragments: int = 20
    max_directives: int = 30
    max_variables: int = 30

    def for_anonymous(self) -> DocumentLimits:
        """Smaller budgets for callers without credentials (GraphiQL's introspection query,
        163 tokens and 220 selections, still fits)."""
        return replace(
            self,
            max_bytes=min(self.max_bytes, 8 << 10),
            max_tokens=min(self.max_tokens, 500),
            max_selections=min(self.max_selections, 250),
            max_aliases=min(self.max_aliases, 10),
            max_operations=min(self.max_operations, 5),
            max_fragments=min(self.max_fragments, 20),
            max_directives=min(self.max_directives, 20),
            max_variables=min(self.max_variables, 20),
        )


def limit_error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


class _Refused(Exception):
    def __init__(self, error: GraphQLError) -> None:
        self.error = error


def parse_within(query: str, limits: DocumentLimits) -> DocumentNode | GraphQLError:
    if len(query) * 4 > limits.max_bytes and len(query.encode()) > limits.max_bytes:
        return limit_error(
            f"The document is larger than {limits.max_bytes} bytes.",
            "DOCUMENT_TOO_LARGE", maxBytes=limits.max_bytes,
        )  # fmt: skip
    try:
        return parse(query, max_tokens=limits.max_tokens)
    except GraphQLError as error:
        code = (
            "TOO_MANY_TOKENS"
            if error.message.startswith("Syntax Error: Document contains more than")
            else "GRAPHQL_PARSE_FAILED"
        )
        error.extensions = {**(error.extensions or {}), "code": code}
        if code == "TOO_MANY_TOKENS":
            error.extensions["maxTokens"] = limits.max_tokens
        return error


def check_document(
    document: DocumentNode, operation_name: str | None, limits: DocumentLimits
) -> GraphQLError | None:
    """The first limit the document breaks, or None (also when several operations leave it
    open which to run, or the named one is missing)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if len(operations) > limits.max_operations:
        return limit_error(
            f"The document has more than {limits.max_operations} operations.",
            "TOO_MANY_OPERATIONS", maxOperations=limits.max_operations,
        )  # fmt: skip
    if len(fragments) > limits.max_fragments:
        return limit_error(
            f"The document has more than {limits.max_fragments} fragments.",
            "TOO_MANY_FRAGMENTS", maxFragments=limits.max_fragments,
        )  # fmt: skip
    directives = sum(1 for _ in _directives(document))
    if directives > limits.max_directives:
        return limit_error(
            f"The document uses more than {limits.max_directives} directives.",
            "TOO_MANY_DIRECTIVES", maxDirectives=limits.max_directives,
        )  # fmt: skip
    operation = select_operation(operations, operation_name)
    if isinstance(operation, GraphQLError):
        return operation
    if sum(len(d.variable_definitions or ()) for d in operations) > limits.max_variables:
        return limit_error(
            f"The document declares more than {limits.max_variables} variables.",
            "TOO_MANY_VARIABLES", maxVariables=limits.max_variables,
        )  # fmt: skip
    # Validation runs over the whole document, so every operation and every fragment is
    # measured, not only the operation that would run; they share one budget.
    walk = _Walk(fragments, limits)
    try:
        for definition in operations:
            walk.name = definition.name.value if definition.name else "anonymous"
            walk.merged([definition.selection_set], depth=0, introspection=False)
        for name, fragment in fragments.items():
            if name not in walk.reached:  # unused: still validated
                walk.name = f"fragment {name}"
                walk.reached.add(name)
                walk.merged([fragment.selection_set], depth=0, introspection=False)
    except _Refused as refused:
        return refused.error
    return None


def select_operation(
    operations: Sequence[OperationDefinitionNode], name: str | None
) -> OperationDefinitionNode | GraphQLError:
    """The operation to run: the named one, or the only one (several without a name is a
    request error, as the GraphQL spec's GetOperation says, never "the first"). An empty
    name names no operation (no operation can have it), as graphql-core decides when it
    runs the document: it was taken for no name here and then refused by the executor
    with another code."""
    if name is not None:
        for operation in operations:
            if operation.name is not None and operation.name.value == name:
                return operation
        return limit_error(f"Unknown operation named '{name}'.", "OPERATION_NOT_FOUND")
    if len(operations) == 1:
        return operations[0]
    if not operations:
        return limit_error("The document has no operation.", "OPERATION_NOT_FOUND")
    return limit_error(
        "The document has several operations: send `operationName` to say which to run.",
        "OPERATION_NAME_REQUIRED",
    )


def _directives(node: Any) -> Iterator[Any]:
    """Every directive in the document (an iterative walk: no recursion limit to hit)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield from getattr(current, "directives", None) or ()
        for attr in ("definitions", "variable_definitions"):
            stack.extend(getattr(current, attr, None) or ())
        selection_set = getattr(current, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)


class _Walk:
    def __init__(
        self, fragments: dict[str, FragmentDefinitionNode], limits: DocumentLimits
    ) -> None:
        self.fragments = fragments
        self.limits = limits
        self.name = ""  # of the operation or fragment being walked, for messages
        self.reached: set[str] = set()
        self.selections = 0
        self.aliases = 0

    def merged(
        self, selection_sets: list[SelectionSetNode], *, depth: int, introspection: bool
    ) -> None:
        """Walk the fields that merge at one place in the result, then each response key's
        merged sub-selections one level down."""
        groups: dict[str, list[FieldNode]] = {}
        for field in self._fields(selection_sets, frozenset()):
            key = (field.alias or field.name).value
            group = groups.setdefault(key, [])
            group.append(field)
            self._count()
            if len(group) > self.limits.max_repeated_fields:
                raise _Refused(limit_error(
                    f"'{self.name}' selects '{key}' more than "
                    f"{self.limits.max_repeated_fields} times in one place.",
                    "TOO_MANY_REPEATED_FIELDS", maxRepeatedFields=self.limits.max_repeated_fields,
                ))  # fmt: skip
            if field.alias is not None:
                self.aliases += 1
                if self.aliases > self.limits.max_aliases:
                    raise _Refused(limit_error(
                        f"The document uses more than {self.limits.max_aliases} aliases.",
                        "TOO_MANY_ALIASES", maxAliases=self.limits.max_aliases,
                    ))  # fmt: skip
        level = depth + 1
        for group in groups.values():
            inner = introspection or (depth == 0 and group[0].name.value in INTROSPECTION_ROOTS)
            limit = self.limits.max_introspection_depth if inner else self.limits.max_depth
            if level > limit:
                raise _Refused(limit_error(
                    f"'{self.name}' is nested more than {limit} levels deep.",
                    "QUERY_TOO_DEEP", maxDepth=limit,
                ))  # fmt: skip
            below = [f.selection_set for f in group if f.selection_set is not None]
            if below:
                self.merged(below, depth=level, introspection=inner)

    def _count(self) -> None:
        """Fields, fragment spreads and inline fragments, expanded, share one budget (so a
        spread bomb of fragments without fields is refused too)."""
        self.selections += 1
        if self.selections > self.limits.max_selections:
            raise _Refused(limit_error(
                f"The document selects more than {self.limits.max_selections} fields and "
                "fragments (fragments expanded).",
                "TOO_MANY_SELECTIONS", maxSelections=self.limits.max_selections,
            ))  # fmt: skip

    def _fields(
        self, selection_sets: list[SelectionSetNode], spreading: frozenset[str]
    ) -> Iterator[FieldNode]:
        for selection_set in selection_sets:
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    yield selection
                elif isinstance(selection, InlineFragmentNode):
                    self._count()
                    yield from self._fields([selection.selection_set], spreading)
                elif isinstance(selection, FragmentSpreadNode):
                    self._count()
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is None or name in spreading:
                        continue  # unknown fragments and cycles: the standard rules report them
                    self.reached.add(name)
                    yield from self._fields([fragment.selection_set], spreading | {name})


# A parsed document is about 200 times larger than its text (a 3 KB, 2,000-token document
# parses to ~600 KB of nodes), so each cache is bounded by the text it remembers: at most
# CACHE_MAX_TEXT characters in all (~50 MB of nodes at worst; clients' few documents of a
# KB or two fit by the hundred), and none longer than CACHE_MAX_CHARS. A caller cycling
# distinct maximal documents then costs a bounded amount, not 512 x 600 KB.
CACHE_MAX_CHARS = 64 * 1024
CACHE_MAX_TEXT = 256 * 1024


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, maxsize: int, max_text: int = CACHE_MAX_TEXT) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.max_text = max_text
        self._sizes: dict[Any, int] = {}
        self._text = 0

    def recall(self, key: Any) -> Any:
        found = self.get(key)
        if found is not None:
            self.move_to_end(key)
        return found

    def remember(self, key: Any, value: Any, size: int) -> Any:
        if size <= CACHE_MAX_CHARS:
            if key in self:  # replaced (e.g. a validation keyed by a reused id())
                del self[key]
                self._text -= self._sizes.pop(key)
            self[key] = value
            self._sizes[key] = size
            self._text += size
            while len(self) > self.maxsize or self._text > self.max_text:
                oldest, _ = self.popitem(last=False)
                self._text -= self._sizes.pop(oldest)
        return value


class DocumentGate:
    """Parses and checks documents for one schema, remembering recent answers (clients send
    the same few documents again and again)."""

    def __init__(
        self,
        limits: DocumentLimits,
        *,
        extra_rules: tuple[type[ASTValidationRule], ...] = (),
        maxsize: int = 512,
    ) -> None:
        self.limits = limits
        self.anonymous_limits = limits.for_anonymous()
        # The rules of paths that validate outside strawberry (the leaderboard fast path and
        # the websocket pre-checks): graphql's, plus e.g. no introspection in production.
        self.rules = (*specified_rules, *extra_rules)
        self._parsed = _Lru(maxsize)
        self._checked = _Lru(maxsize)
        self._validated = _Lru(maxsize)

    def parse(self, query: str, *, anonymous: bool = False) -> DocumentNode | GraphQLError:
        limits = self.anonymous_limits if anonymous else self.limits
        key = (query, limits.max_tokens)
        found: DocumentNode | GraphQLError | None = self._parsed.recall(key)
        if found is None:
            found = self._parsed.remember(key, parse_within(query, limits), len(query))
        return found

    def check(
        self, query: str, operation_name: str | None, *, anonymous: bool = False
    ) -> DocumentNode | GraphQLError:
        """The parsed document, or the first error (coded) of parsing or of the limits."""
        key = (query, operation_name, anonymous)
        found: DocumentNode | GraphQLError | None = self._checked.recall(key)
        if found is None:
            found = self.parse(query, anonymous=anonymous)
            if isinstance(found, DocumentNode):
                limits = self.anonymous_limits if anonymous else self.limits
                found = check_document(found, operation_name, limits) or found
            self._checked.remember(key, found, len(query))
        return found

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...] | None = None,
    ) -> list[GraphQLError]:
        """Strawberry's validation of a document that passed `check` (so bounded in cost),
        remembered per document (by identity: the parse cache hands out the same object)
        and rule set."""
        from strawberry.schema.schema import validate_document  # noqa: PLC0415

        rules = self.rules if rules is None else rules
        key = (id(document), rules)
        found = self._validated.recall(key)
        if found is not None and found[0] is document:
            errors: list[GraphQLError] = found[1]
            return errors
        errors = [_as_request_error(e) for e in validate_document(schema, document, rules)]
        if not errors and (nul := nul_in_literals(document)) is not None:
            errors = [nul]
        size = len(document.loc.source.body) if document.loc else 0
        self._validated.remember(key, (document, errors), size)
        return errors


def _as_request_error(error: GraphQLError) -> GraphQLError:
    """A validation error is about the document, never a bug. graphql-core keeps the
    exception a scalar's parse_literal raised (a ValueError: a Score of 1.5, an Int literal
    of more digits than Python converts) as the error's original_error, and the masking
    took that for a bug: INTERNAL_SERVER_ERROR instead of the message. The same error,
    coded, without it."""
    if error.original_error is None or isinstance(error.original_error, GraphQLError):
        return error
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        extensions={**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"},
    )


def refusals(schema: Any, query: str, operation_name: str | None) -> list[GraphQLError]:
    """What stops an operation before it runs, each error coded: a limit, a parse error, or
    validation errors (GRAPHQL_VALIDATION_FAILED), for paths that run outside strawberry's
    HTTP handling (websockets)."""
    gate = gate_of(schema)
    checked = gate.check(query, operation_name)
    if isinstance(checked, GraphQLError):
        return [checked]
    errors = gate.validate(schema._schema, checked)
    for error in errors:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
    return errors


def gate_of(schema: Any) -> DocumentGate:
    """The gate of a schema built by schema.root.build_schema."""
    gate: DocumentGate = schema.document_gate
    return gate


def _stand_in(operation_type: OperationType, name: str | None) -> DocumentNode:
    typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
    operation = OperationDefinitionNode(
        operation=operation_type, name=NameNode(value=name) if name is not None else None,
        variable_definitions=(), directives=(),
        selection_set=SelectionSetNode(selections=(typename,)),
    )  # fmt: skip
    return DocumentNode(definitions=(operation,))


def gate_parse(gate: DocumentGate, context: Any) -> GraphQLError | None:
    """Strawberry's parse step through the gate, for a strawberry ExecutionContext: its
    document, or a stand-in and the refusal (the first limit or parse error) to answer."""
    anonymous = getattr(context.context, "principal", None) is None
    limits = gate.anonymous_limits if anonymous else gate.limits
    context.parse_options["max_tokens"] = limits.max_tokens
    if context.graphql_document is None and context.query:
        checked = gate.check(context.query, context.operation_name, anonymous=anonymous)
        if isinstance(checked, DocumentNode):
            context.graphql_document = checked
        else:
            # A stand-in document, so that strawberry neither parses the text again nor
            # picks "the first" operation; the validation step answers with the refusal.
            allowed = {op.value for op in context.allowed_operations}
            kind = OperationType("query" if "query" in allowed else min(allowed))
            context.graphql_document = _stand_in(kind, context.operation_name)
            return checked
    return None


def gate_validate(gate: DocumentGate, context: Any, refused: GraphQLError | None) -> None:
    """Strawberry's validation step through the gate's cache (``refused``: what
    ``gate_parse`` refused): sets the context's pre-execution errors."""
    if refused is not None:
        context.pre_execution_errors = [refused]
    elif context.graphql_document is not None and context.pre_execution_errors is None:
        context.pre_execution_errors = gate.validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        if not context.pre_execution_errors and (nul := nul_in_variables(context.variables)):
            context.pre_execution_errors = [nul]


class DocumentChecks(SchemaExtension):
    """Strawberry's parse and validate steps through the gate: a document that breaks a limit
    never reaches validation. (Replaces MaxTokensLimiter, ParserCache and ValidationCache.)
    The schema uses the same steps in ``schema.extensions.OperationHooks``."""

    def __init__(self, gate: DocumentGate) -> None:
        super().__init__()
        self.gate = gate
        self.refused: GraphQLError | None = None

    def on_parse(self) -> Iterator[None]:
        self.refused = gate_parse(self.gate, self.execution_context)
        yield

    def on_validate(self) -> Iterator[None]:
        gate_validate(self.gate, self.execution_context, self.refused)
        yield

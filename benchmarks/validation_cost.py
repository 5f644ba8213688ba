"""The worst CPU a document under the limits costs to check and validate, per shape.

Every path (HTTP, both websocket protocols, the leaderboard fast path) checks a document with
schema.document_limits before graphql-core validates it; validation's overlapping-fields rule
is quadratic in fields merged into one response key, so the checks bound that first. For each
shape this prints the largest document the default limits accept (checked and validated, the
cost a client can make the server pay per new document; nothing is cached between runs) and,
beside it, what the gate costs to refuse one just over the limits.

    .venv/bin/python -m benchmarks.validation_cost [--runs 5] [--issue-repeats 490]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from graphql import DocumentNode, GraphQLError, is_non_null_type, specified_rules

from schema.document_limits import DocumentGate, DocumentLimits
from schema.root import build_schema

LIMITS = DocumentLimits()
SCHEMA = build_schema(limits=LIMITS)
GRAPHQL_SCHEMA = SCHEMA._schema
RULES = tuple(specified_rules)

CLAIM = "saleClaims { totalCount }"


def repeated(n: int) -> str:
    """The issue's shape: one field repeated n times in one selection set."""
    return "query { " + " ".join([CLAIM] * n) + " }"


def repeated_nested(n: int) -> str:
    """Repeats at every level: each merged pair compares the fields merged below it."""
    one = "saleClaims { edges { node { id state partner { id name } } } }"
    return "query { " + " ".join([one] * n) + " }"


def aliases(n: int) -> str:
    return "query { " + " ".join(f"a{i}: saleClaims {{ totalCount }}" for i in range(n)) + " }"


def aliases_wide(n: int) -> str:
    """Every alias with the widest sub-selection the selection budget allows."""
    return (
        "query { "
        + " ".join(
            f"a{i}: saleClaims(first: 1) {{ edges {{ node {{ id state partner {{ id }} }} }} }}"
            for i in range(n)
        )
        + " }"
    )


def deep(depth: int) -> str:
    """The deepest nesting the schema has for ordinary fields, padded with inline fragments
    (which nest without adding depth) to `depth` levels of braces."""
    inner = "id"
    for _ in range(depth):
        inner = f"... on Partner {{ {inner} }}"
    return "query { saleClaims { edges { node { partner { " + inner + " } } } } }"


def introspection_deep(depth: int) -> str:
    inner = "name"
    for _ in range(depth - 3):
        inner = f"ofType {{ {inner} }}"
    return "query { __schema { types { " + inner + " } } }"


def introspection_cycle(depth: int) -> str:
    """`__type { fields { type { fields … } } }` to the introspection depth allowance."""
    inner = "name"
    level = 2
    while level + 2 <= depth:
        inner = f"fields {{ name type {{ {inner} }} }}"
        level += 2
    return '{ __type(name: "Query") { ' + inner + " } }"


# Root fields without required arguments: distinct response keys without aliases.
ROOTS = [
    name
    for name, field in GRAPHQL_SCHEMA.query_type.fields.items()  # type: ignore[union-attr]
    if not any(is_non_null_type(a.type) for a in field.args.values())
]


def fragment_fanout(n: int) -> str:
    """n fragments spread side by side (the overlap rule compares fragment pairs)."""
    spreads = " ".join(f"...F{i}" for i in range(n))
    fragments = " ".join(
        f"fragment F{i} on Query {{ {ROOTS[i % len(ROOTS)]} {{ __typename }} }}" for i in range(n)
    )
    return f"query {{ {spreads} }} {fragments}"


def spread_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels expanded selections."""
    defs = [f"fragment B{i} on Query {{ ...B{i + 1} ...B{i + 1} }}" for i in range(levels)]
    defs.append(f"fragment B{levels} on Query {{ __typename }}")
    return "query { ...B0 } " + " ".join(defs)


def many_fragments(n: int) -> str:
    """A chain of n fragments, each spreading the next."""
    defs = [
        f"fragment C{i} on Query {{ {ROOTS[i % len(ROOTS)]} {{ __typename }} ...C{i + 1} }}"
        for i in range(n - 1)
    ]
    defs.append(f"fragment C{n - 1} on Query {{ me {{ role }} }}")
    return "query { ...C0 } " + " ".join(defs)


def directives(n: int) -> str:
    fields = (f"{ROOTS[i % len(ROOTS)]} {{ __typename @skip(if: false) }}" for i in range(n))
    return "query { " + " ".join(fields) + " }"


def directives_on_one(n: int) -> str:
    return "query { me { role " + "@include(if: true) " * n + "} }"


def variables(n: int) -> str:
    defs = ", ".join(f"$v{i}: Boolean = true" for i in range(n))
    uses = " ".join(f"@include(if: $v{i})" for i in range(min(n, 40)))
    return f"query Q({defs}) {{ me {{ role {uses} }} }}"


def operations(n: int) -> str:
    return " ".join(f"query Q{i} {{ me {{ role }} {CLAIM} }}" for i in range(n))


def beside_the_operation(n: int) -> str:
    """Repeats in an operation that does not run and in an unused fragment (validated
    all the same)."""
    repeats = " ".join([CLAIM] * n)
    return (
        f"query Q0 {{ me {{ role }} }} query Q1 {{ {repeats} }} fragment U on Query {{ {repeats} }}"
    )


def long_string(size: int) -> str:
    """Few tokens, many characters: lexing costs per character."""
    return f'query($s: String = "{"y" * size}") {{ __typename }}'


def long_comment(size: int) -> str:
    return "#" + "x" * size + "\n{ __typename }"


def measure(
    query: str, operation_name: str | None, runs: int, *, anonymous: bool
) -> tuple[float, float, str]:
    """Worst CPU seconds of parsing, and of checks + validation, with a fresh gate."""
    worst_parse = worst_rest = 0.0
    outcome = ""
    for run in range(runs + 1):
        gc.collect()
        gate = DocumentGate(LIMITS)
        started = time.process_time()
        gate.parse(query, anonymous=anonymous)
        parsed = time.process_time()
        checked = gate.check(query, operation_name, anonymous=anonymous)  # parse is cached
        if isinstance(checked, DocumentNode):
            errors = gate.validate(GRAPHQL_SCHEMA, checked, RULES)
            outcome = "accepted" if not errors else f"invalid ({len(errors)} errors)"
        else:
            outcome = f"refused {(checked.extensions or {}).get('code')}"
        if run:  # the first run warms graphql-core up
            worst_parse = max(worst_parse, parsed - started)
            worst_rest = max(worst_rest, time.process_time() - parsed)
    return worst_parse, worst_rest, outcome


def unguarded(query: str) -> float:
    """Validation alone, as it ran before the checks (for the issue's shape)."""
    document = DocumentGate(DocumentLimits(max_tokens=100_000)).parse(query)
    assert not isinstance(document, GraphQLError)
    started = time.process_time()
    DocumentGate(LIMITS).validate(GRAPHQL_SCHEMA, document, RULES)
    return time.process_time() - started


Sizes = Callable[[DocumentLimits], int]
# (name, builder, largest accepted n, n just over the limits (or the issue's), operationName)
SHAPES: list[tuple[str, Callable[[int], str], Sizes, Sizes, str | None]] = [
    ("repeated field", repeated, lambda x: x.max_repeated_fields, lambda x: 490, None),
    ("repeated at every level", repeated_nested,
     lambda x: x.max_repeated_fields, lambda x: x.max_repeated_fields + 1, None),
    ("many aliases", aliases, lambda x: x.max_aliases, lambda x: 600, None),
    ("aliases, wide", aliases_wide,
     lambda x: min(x.max_aliases, x.max_selections // 7), lambda x: x.max_aliases + 1, None),
    ("nested inline fragments", deep, lambda x: min(60, x.max_tokens // 6), lambda x: 390, None),
    ("introspection ofType", introspection_deep,
     lambda x: x.max_introspection_depth, lambda x: 40, None),
    ("introspection cycle", introspection_cycle,
     lambda x: x.max_introspection_depth, lambda x: 40, None),
    ("fragment fan-out", fragment_fanout,
     lambda x: min(x.max_fragments, x.max_tokens // 16), lambda x: 120, None),
    ("spread bomb", spread_bomb, lambda x: 3, lambda x: 40, None),
    ("many fragments", many_fragments,
     lambda x: min(x.max_fragments, x.max_tokens // 16), lambda x: 120, None),
    ("directives, many fields", directives,
     lambda x: min(x.max_directives, x.max_tokens // 14), lambda x: 200, None),
    ("directives on one field", directives_on_one,
     lambda x: x.max_directives, lambda x: 400, None),
    ("variables", variables, lambda x: x.max_variables, lambda x: 300, "Q"),
    ("operations", operations, lambda x: x.max_operations, lambda x: 100, "Q0"),
    ("long string literal", long_string, lambda x: x.max_bytes - 64, lambda x: 1 << 20, None),
    ("long comment", long_comment, lambda x: x.max_bytes - 64, lambda x: 1 << 20, None),
    ("repeats beside the operation", beside_the_operation,
     lambda x: x.max_repeated_fields, lambda x: 240, "Q0"),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--issue-repeats", type=int, default=490,
        help="repeats in the issue's document, validated without the checks (quadratic)",
    )  # fmt: skip
    args = parser.parse_args()
    runs = args.runs
    # Each run starts from a collection (outside the timing); the schema's and the imports'
    # objects go to the permanent generation first, or every such pass walks them again
    # (0.1-0.4 s each, most of the benchmark's time).
    gc.collect()
    gc.freeze()
    print(f"limits: {LIMITS}")
    print(f"worst of {runs} runs, CPU ms: parse | checks + validation (nothing cached)")
    for anonymous in (False, True):
        limits = LIMITS.for_anonymous() if anonymous else LIMITS
        print(f"\n{'anonymous' if anonymous else 'authenticated'} (max_tokens {limits.max_tokens})")
        print(f"{'shape':28} {'under the limits':>34}   {'over the limits'}")
        for name, build, ok_n, over_n, op in SHAPES:
            ok_parse, ok_rest, ok_outcome = measure(
                build(ok_n(limits)), op, runs, anonymous=anonymous
            )
            over_parse, over_rest, over_outcome = measure(
                build(over_n(limits)), op, runs, anonymous=anonymous
            )
            print(
                f"{name:28} n={ok_n(limits):<5} {ok_parse * 1000:5.2f} | {ok_rest * 1000:5.2f}"
                f" {ok_outcome:9}  n={over_n(limits):<7} {over_parse * 1000:5.2f} |"
                f" {over_rest * 1000:5.2f} {over_outcome}"
            )
    query = repeated(args.issue_repeats)
    print(
        f"\nbefore the checks, the issue's document ({args.issue_repeats} repeats, "
        f"{len(query)} bytes) cost "
        f"{unguarded(query) * 1000:.0f} ms to validate"
    )


if __name__ == "__main__":
    main()

"""The docs are true: what README.md and docs/*.md show a reader, checked against the code,
in-process (no server). A failure names the page and line.

- GraphQL: every ```graphql block, and every operation a shell block sends (`gql TOKEN '…'`,
  `curl -d '{"query": …}'`), parses and validates against the served schema; a block tagged
  ```graphql sdl is a schema excerpt and must be those types, whole; GraphQL in an untagged
  block is refused (tag it). Inline: a root field takes the arguments shown (a mutation's
  inside `input: {…}`), every `Type.field`, field name and type name exists.
- Commands: `./dev …`, `channelboard …`, `python -m api …`, `python -m benchmarks.X …`,
  `benchmarks/two_hosts.sh …` name real commands and flags, parsed by the real parsers
  (typer's click commands; the benchmarks' own argparse parsers, caught before they parse,
  nothing run); a synopsis (`[--ttl SECONDS]`, `FILE.csv`) is checked for its command,
  option names and the defaults it shows, a concrete line is parsed in full; the README's
  table lists every command.
- Codes: every code named is one the code answers; the lists that give an enum's codes are
  all of it, the code tables name codes of their enums.
- Links, HTTP paths, source paths and Python names resolve; the webhook payload table and
  example are what the mappers send; the document limits stated are the real ones.

The settings variables and their defaults are checked in tests/api/test_settings.py.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import runpy
import shlex
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import NoReturn

import pytest
import typer
from graphql import (
    GraphQLError,
    GraphQLSchema,
    get_named_type,
    is_non_null_type,
    parse,
    print_ast,
    print_type,
    validate,
)
from graphql.language import TypeDefinitionNode
from typer._click.core import Command, Context  # typer's own click (0.2x vendors it)
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`]*)$")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    info: tuple[str, ...]  # ("graphql",), ("graphql", "sdl"), ("sh",), ()
    text: str

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a page (indented ones in list items too)."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = len(opening["indent"])
        end = i + 1
        while not re.match(r"^ *```\s*$", lines[end]):
            end += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : end])
        found.append(Block(path, i + 1, tuple(opening["info"].split()), body))
        i = end + 1
    return found


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a page outside its fenced blocks, numbered."""
    inside = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line) or re.match(r"^ *```\s*$", line):
            inside = not inside
            continue
        if not inside:
            yield number, line


ALL_BLOCKS = [block for path in DOCS for block in blocks(path)]


# --- GraphQL -----------------------------------------------------------------------------


@cache
def served_schema() -> GraphQLSchema:
    from schema.root import build_schema  # noqa: PLC0415

    return build_schema()._schema


def shell_operations(block: Block) -> list[str]:
    """The GraphQL operations a shell block sends: `gql TOKEN '…'` and curl's JSON body."""
    operations = []
    for quoted in re.findall(r"'([^']*)'", block.text):
        body = quoted.strip()
        if re.match(r"(query|mutation|subscription)\b|\{\s*[a-z_]\w*[\s({]", body):
            operations.append(body)
        elif body.startswith('{"query"'):
            operations.append(json.loads(body)["query"])
    return operations


GRAPHQL_BLOCKS = [b for b in ALL_BLOCKS if b.info[:1] == ("graphql",)]


def test_the_graphql_blocks_are_found() -> None:
    # The pages' examples: if this drops, a block lost its ```graphql tag.
    assert len(GRAPHQL_BLOCKS) >= 9
    assert all(b.info in {("graphql",), ("graphql", "sdl")} for b in GRAPHQL_BLOCKS), [
        b.where for b in GRAPHQL_BLOCKS if b.info not in {("graphql",), ("graphql", "sdl")}
    ]
    # GraphQL in a block not tagged so would be skipped: tag it (or `graphql sdl`).
    untagged = [
        b.where
        for b in ALL_BLOCKS
        if b.info[:1] != ("graphql",)
        and re.match(
            r"\s*(query|mutation|subscription|fragment|type|input|enum|interface)\b[^=]*\{"
            r"|\s*\{\s*$|\s*\{\s*[a-z]\w*\s*[({]",
            b.text,
        )
    ]
    assert untagged == []


def problems_of(document: str) -> list[str]:
    try:
        ast_ = parse(document)
    except GraphQLError as exc:  # a syntax error
        return [str(exc)]
    return [error.message for error in validate(served_schema(), ast_)]


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.where) for b in GRAPHQL_BLOCKS if b.info == ("graphql",)]
)
def test_a_graphql_example_validates_against_the_schema(block: Block) -> None:
    assert problems_of(block.text) == [], block.where


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(text, id=f"{block.where}#{n}")
        for block in ALL_BLOCKS
        if block.info[:1] in {("sh",), ()}
        for n, text in enumerate(shell_operations(block))
    ],
)
def test_an_operation_a_shell_example_sends_validates(document: str) -> None:
    assert problems_of(document) == []


def test_shell_operations_are_found() -> None:
    # The README's first query and walkthrough: if this drops, the extraction broke.
    readme = [op for b in blocks(ROOT / "README.md") for op in shell_operations(b)]
    assert len(readme) >= 13
    assert any("partners { totalCount" in op for op in readme)


def sdl_types(text: str) -> dict[str, str]:
    """Each type an SDL text defines, printed alike (no descriptions)."""
    definitions = parse(undescribed(text)).definitions
    return {d.name.value: print_ast(d) for d in definitions if isinstance(d, TypeDefinitionNode)}


def real_type(name: str) -> str:
    return sdl_types(print_type(served_schema().type_map[name]))[name]


def undescribed(sdl: str) -> str:
    return re.sub(r'^\s*"""(?:.|\n)*?"""\n|^\s*"[^"\n]*"\n', "", sdl, flags=re.M)


def test_a_schema_excerpt_is_the_schema() -> None:
    """A block tagged ```graphql sdl shows types as the schema has them, whole (none does
    today: the examples are operations)."""
    for block in GRAPHQL_BLOCKS:
        if block.info != ("graphql", "sdl"):
            continue
        excerpts = sdl_types(block.text)
        assert excerpts, f"{block.where}: no type definition"
        for name, excerpt in excerpts.items():
            assert name in served_schema().type_map, f"{block.where}: no type {name}"
            assert excerpt == real_type(name), block.where


def test_an_excerpt_is_compared_in_full() -> None:
    # The excerpt check itself: a field short, or one more, is a difference.
    money = print_type(served_schema().type_map["Money"])
    assert sdl_types(money)["Money"] == real_type("Money")
    assert sdl_types(money.replace("}", "  extra: Int\n}"))["Money"] != real_type("Money")


def schema_names() -> set[str]:
    """Every field, argument and input field name of the schema."""
    names: set[str] = set()
    for type_ in served_schema().type_map.values():
        for name, field in (getattr(type_, "fields", None) or {}).items():
            names.add(name)
            names.update(getattr(field, "args", None) or {})
    return names


# camelCase names the docs show that are not the schema's: other libraries' and protocols'
# (urql, Apollo Client, GraphQL over HTTP, graphql-ws, Kubernetes probes, CEL) and the word
# "userError".
OTHER_NAMES = {
    "persistedExchange", "operationName", "makeServer", "failureThreshold", "startsWith",
    "userError", "relayStylePagination", "relayPagination", "fetchMore",
}  # fmt: skip


def test_every_field_name_the_docs_show_exists() -> None:
    """A name in backticks (`statusReason`, `users(filter: …)`) is a field, argument or input
    field of the schema, a key the code writes itself (`retryAfterSeconds`), or another
    system's."""
    known = schema_names() | OTHER_NAMES | source_strings()
    unknown = [
        f"{rel(path)}:{number}: {found[1]}"
        for path in DOCS
        for number, line in prose(path)
        for span in re.findall(r"`([^`]+)`", line)
        if (found := re.match(r"^([a-z]+[A-Z][a-zA-Z]*)(\(|\s*\{|$)", span))
        and found[1] not in known
    ]
    assert unknown == []


def top_level(text: str) -> list[str]:
    """The comma-separated parts of an argument list, brackets kept together."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in "{[(") - (char in "}])")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [part for part in [*parts, current.strip()] if part]


def inside_parentheses(rest: str) -> str:
    """`id) { members(at: …) }` -> `id`: the text up to the parenthesis that closes."""
    depth = 0
    for index, char in enumerate(rest):
        depth += (char in "{[(") - (char in "}])")
        if depth < 0:
            return rest[:index]
    return rest


def test_a_root_field_shown_inline_takes_the_arguments_shown() -> None:
    """`userRoleChange(input: {id, role, reason})`: the arguments, and the input fields
    named in its braces, are the field's (a mutation's fields go inside `input: {…}`)."""
    schema = served_schema()
    roots = {
        name: field
        for root in (schema.query_type, schema.mutation_type, schema.subscription_type)
        if root is not None
        for name, field in root.fields.items()
    }
    checked, wrong = 0, []
    for path in DOCS:
        for number, line in prose(path):
            for span in re.findall(r"`([^`]+)`", line):
                call = re.match(r"^([a-z]\w*)\(", span)
                if call is None or call[1] not in roots:
                    continue
                field = roots[call[1]]
                for part in top_level(inside_parentheses(span[call.end() :])):
                    checked += 1
                    name, _, value = (p.strip() for p in part.partition(":"))
                    optional = name.endswith("?")  # `currency?`: may be left out
                    name = name.removesuffix("?")
                    if name not in field.args or (
                        optional and is_non_null_type(field.args[name].type)
                    ):
                        wrong.append(f"{rel(path)}:{number}: {call[1]}({name})")
                    elif value.startswith("{"):
                        input_type = get_named_type(field.args[name].type)
                        for item in top_level(value[1:-1]):
                            key = item.partition(":")[0].strip()
                            if key not in getattr(input_type, "fields", {}):
                                wrong.append(f"{rel(path)}:{number}: {call[1]} {name}.{key}")
    assert checked >= 100
    assert wrong == []


# Capitalised names the docs show that are not ours: HTTP headers, an AWS setting, other
# libraries' classes, and contributing's example domain (MdfQuery, ...).
OTHER_TYPES = {
    "Upgrade", "Vary", "Host", "UnhealthyThresholdCount", "BatchHttpLink",
    "SubscriptionExecutionResult", "MdfQuery", "MdfMutation", "MdfSubscription",
}  # fmt: skip


def test_every_type_name_the_docs_show_exists() -> None:
    """`PartnerErrorCode`, `EarningsSummary`, `OffsetClock`: a schema type or a class of ours."""
    known = set(served_schema().type_map) | source_strings() | OTHER_TYPES
    unknown = [
        f"{rel(path)}:{number}: {span}"
        for path in DOCS
        for number, line in prose(path)
        for span in re.findall(r"`([A-Z][a-z]+[A-Z]\w*|[A-Z][a-z]{2,}\w*)`", line)
        if span not in known
    ]
    assert unknown == []


def test_every_type_field_the_docs_name_exists() -> None:
    schema = served_schema()
    checked, unknown = 0, []
    for path in DOCS:
        for number, line in prose(path):
            for span in re.findall(r"`([^`]+)`", line):
                for type_name, field in re.findall(r"\b([A-Z][A-Za-z]+)\.([a-z][A-Za-z]*)\b", span):
                    type_ = schema.type_map.get(type_name)
                    if type_ is None:
                        continue  # a Python name (`Settings.from_env`)
                    members = getattr(type_, "fields", None) or getattr(type_, "values", {})
                    checked += 1
                    if field not in members:
                        unknown.append(f"{rel(path)}:{number}: {type_name}.{field}")
    assert checked >= 20
    assert unknown == []


# --- Commands ----------------------------------------------------------------------------

COMMAND = re.compile(
    r"(?:^|(?<=[\s(=`]))(?:sudo +)?"
    r"(?P<cmd>\./dev|(?:\.venv/bin/)?channelboard|(?:\.venv/bin/)?python3? +-m +"
    r"(?:api|benchmarks\.\w+)|benchmarks/two_hosts\.sh)(?= |$|`)"
)
SYNOPSIS = re.compile(r"\[|\]|\.\.\.|…|\b[A-Z][A-Z0-9_.-]*[A-Z0-9]\b|\b[A-Z]\b")


@dataclass(frozen=True)
class Invocation:
    where: str
    argv: tuple[str, ...]  # the command, then its arguments
    synopsis: bool  # placeholders or optional parts: names only


def invocation(where: str, text: str) -> Invocation | None:
    text = text.replace("\\\n", " ")
    found = COMMAND.search(text)
    if found is None:
        return None
    rest = text[found.end() :]
    lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    try:
        for word in lexer:
            if set(word) <= set("();<>|&"):
                break
            words.append(word)
    except ValueError:  # an unclosed quote: the span shows a fragment
        words = rest.split()
    synopsis = any(SYNOPSIS.search(word) for word in words)
    words = [w.strip("[]") for w in words if w.strip("[]") not in {"...", "…", ""}]
    words = [w.removesuffix("...") for w in words]
    cmd = re.sub(r"\s+", " ", found["cmd"]).removeprefix(".venv/bin/")
    return Invocation(where, (cmd, *words), synopsis)


def invocations() -> list[Invocation]:
    found: list[Invocation] = []
    for path in DOCS:
        for block in blocks(path):
            if block.info[:1] not in {("sh",), ()}:
                continue
            text = block.text.replace("\\\n", " ")
            for offset, line in enumerate(text.splitlines(), 1):
                for start in COMMAND.finditer(line):
                    call = invocation(f"{rel(path)}:{block.line + offset}", line[start.start() :])
                    if call is not None:
                        found.append(call)
        for number, line in prose(path):
            if line.startswith("    ") and COMMAND.match(line.strip()):  # an indented block
                call = invocation(f"{rel(path)}:{number}", line.strip())
                if call is not None:
                    found.append(call)
                continue
            spans = re.findall(r"`([^`]+)`", line)
            if line.startswith("| `channelboard "):  # the README's table: `vendors list` too
                spans = [
                    span if span.startswith("channelboard ") else f"channelboard {span}"
                    for span in re.findall(r"`([^`]+)`", line.split(" | ")[0])
                ]
            for span in spans:
                if COMMAND.match(span):
                    call = invocation(f"{rel(path)}:{number}", span)
                    if call is not None:
                        found.append(call)
    return found


INVOCATIONS = invocations()


@cache
def channelboard() -> TyperGroup:
    from api.cli.main import app  # noqa: PLC0415

    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    return command


def option_names(command: Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def check_channelboard(call: Invocation, args: list[str]) -> None:
    """The command path resolves; a synopsis names only its options, a concrete line parses."""
    command: Command = channelboard()
    path = ["channelboard"]
    while isinstance(command, TyperGroup):
        if not args or args[0].startswith("-"):
            return  # a group named on its own (`channelboard outbox`)
        sub = command.get_command(Context(command), args[0])
        assert sub is not None, f"{call.where}: no command {' '.join([*path, args[0]])}"
        path.append(args.pop(0))
        command = sub
    if call.synopsis or not args:  # a synopsis, or the command named in a sentence
        unknown = [
            w.split("=")[0]
            for w in args
            if w.startswith("-") and w.split("=")[0] not in option_names(command)
        ]
        assert not unknown, f"{call.where}: {' '.join(path)} has no option {unknown}"
        # `[--batch 1000]`: a synopsis giving a number gives the default
        for option, value in zip(args, args[1:], strict=False):
            if option.startswith("--") and re.fullmatch(r"\d+(\.\d+)?", value):
                param = next(p for p in command.params if option in p.opts)
                assert float(value) == param.default, f"{call.where}: {option} {value}"
        return
    try:
        with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch:
            # The files a command line names were written by the steps before it.
            patch.chdir(scratch)
            for word in args:
                if re.fullmatch(r"[\w-]+\.(csv|json|txt)", word):
                    Path(word).touch()
            command.make_context(" ".join(path), list(args))
    except ClickException as exc:
        pytest.fail(f"{call.where}: {' '.join(path)} {args}: {exc.format_message()}")


class _Parser(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@cache
def benchmark_parser(module: str) -> argparse.ArgumentParser | None:
    """The module's own argparse parser, caught as it is about to parse (nothing runs)."""
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    if "parse_args(" not in source:
        return None

    def caught(self: argparse.ArgumentParser, *_: object, **__: object) -> NoReturn:
        raise _Parser(self)

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setattr(argparse.ArgumentParser, "parse_args", caught)
        patch.setattr(sys, "argv", [module])
        # A test before may have imported the module (the benchmark tests do): runpy warns
        # that it runs a second copy as __main__, which is what is wanted here.
        warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
        try:
            runpy.run_module(module, run_name="__main__")
        except _Parser as found:
            return found.parser
    raise AssertionError(f"{module} did not parse its arguments")


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(name)
            return chosen if isinstance(chosen, argparse.ArgumentParser) else None
    return None


def check_benchmark(call: Invocation, module: str, args: list[str]) -> None:
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{call.where}: no {module}"
    parser = benchmark_parser(module)
    if parser is None:
        assert args == [], f"{call.where}: {module} takes no arguments"
        return
    if call.synopsis:
        known = set(parser._option_string_actions)
        positional = [w for w in args if not w.startswith("-")]
        if positional and (sub := subparser(parser, positional[0])) is not None:
            known |= set(sub._option_string_actions)
        unknown = [w for w in args if w.startswith("-") and w not in known]
        assert not unknown, f"{call.where}: {module} has no option {unknown}"
        return
    try:
        parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{call.where}: {module} refuses {args}")


def check_two_hosts(call: Invocation, args: list[str]) -> None:
    script = (ROOT / "benchmarks" / "two_hosts.sh").read_text()
    known = set(re.findall(r"^\s*(?:-h\|)?(--[a-z-]+)\)", script, re.M))
    unknown = [w for w in args if w.startswith("-") and w not in known]
    assert not unknown, f"{call.where}: two_hosts.sh has no option {unknown}"


def check(call: Invocation) -> None:
    cmd, *args = call.argv
    if cmd == "./dev":
        if not args or args[0] in {"help", "-h", "--help"}:
            return
        if args[0] == "test":
            for word in args[1:]:
                if word.startswith("tests/"):
                    assert (ROOT / word.split("::")[0]).exists(), f"{call.where}: no {word}"
            return
        check_channelboard(call, args)
    elif cmd == "channelboard" or cmd.endswith("-m api"):
        check_channelboard(call, args)
    elif cmd == "benchmarks/two_hosts.sh":
        check_two_hosts(call, args)
    else:
        check_benchmark(call, cmd.split()[-1], args)


@pytest.mark.parametrize(
    "call", [pytest.param(c, id=f"{c.where} {' '.join(c.argv)}"[:120]) for c in INVOCATIONS]
)
def test_a_command_shown_is_a_real_command(call: Invocation) -> None:
    check(call)


def commands(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name in group.list_commands(Context(group)):
        command = group.get_command(Context(group), name)
        if isinstance(command, TyperGroup):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


def test_the_readme_lists_every_command() -> None:
    listed = [
        call.argv[1:]
        for call in INVOCATIONS
        if call.where.startswith("README.md:") and call.argv[0] == "channelboard"
    ]
    missing = [
        " ".join(path)
        for path in commands(channelboard())
        if not any(shown[: len(path)] == path for shown in listed)
    ]
    assert missing == []


def test_the_commands_are_found() -> None:
    shown = {" ".join(c.argv[:3]) for c in INVOCATIONS}
    assert {"channelboard vendors create", "./dev serve", "channelboard token --subject"} <= shown
    assert any(c.argv[0] == "python -m benchmarks.signal_maintenance" for c in INVOCATIONS)
    assert len(INVOCATIONS) > 100


def test_a_wrong_command_or_flag_is_caught() -> None:
    # The checker itself, on lines the docs could have got wrong.
    for line in (
        "channelboard tokens admin@acme.example",
        "channelboard token admin@acme.example --days 3",
        "channelboard serials import FILE.csv [--vendors SLUG]",
        ".venv/bin/python -m benchmarks.reads --big 1000 --minutes 10",
        ".venv/bin/python -m benchmarks.deal_conflicts --fast",
        "./dev test tests/nowhere",
        "channelboard idempotency prune [--batch 500]",
    ):
        call = invocation("example", line)
        assert call is not None
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check(call)


# --- Codes -------------------------------------------------------------------------------

CODE = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})`")
PACKAGES = (
    "api", "schema", "infra", "partners", "catalogue", "deal_registration", "leaderboards",
    "earnings", "notifications", "subscriptions", "forecasts", "webhooks", "signals",
    "incentives", "pilots", "next_actions", "migrations",
)  # fmt: skip
# Upper-case words the docs show that are not codes (headers, SQL, protocols, values of
# other systems).
NOT_CODES = {
    # HTTP methods, uvicorn's variables, Linux
    "OPTIONS", "FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY", "PR_SET_PDEATHSIG",
    # Redis commands and replies
    "PING", "ZINCRBY", "MULTI", "EXEC", "EVAL", "MONITOR", "MIGRATE", "ASKING", "NOSCRIPT",
    "CLUSTERDOWN", "MIGRATING", "IMPORTING",
}  # fmt: skip


@cache
def source_strings() -> set[str]:
    """Every word of the source outside its comments: identifiers and what the strings say.
    (Words, not an AST walk: parsing every module costs seconds.)"""
    known: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            code = re.sub(r"(?m)^\s*#.*$|\s#\s.*$", "", path.read_text())
            known.update(re.findall(r"\w+", code))
    return known


@cache
def known_codes() -> set[str]:
    """Every value the code can answer with: GraphQL enum values, the domains' code enums,
    and every upper-case string constant of the source (extensions codes are literals)."""
    schema = served_schema()
    known = {value for t in schema.type_map.values() if hasattr(t, "values") for value in t.values}
    return known | source_strings()


def test_every_code_the_docs_name_exists() -> None:
    known = known_codes()
    unknown = [
        f"{rel(path)}:{number}: {code}"
        for path in DOCS
        for number, line in prose(path)
        for code in CODE.findall(line)
        if code not in known and code not in NOT_CODES and not code.startswith("CHANNELBOARD_")
    ]
    assert unknown == []


def enum(name: str) -> type[Enum]:
    """A code enum of the domains by its class name."""
    for module in (
        "partners.errors", "webhooks.errors", "deal_registration.registrations.errors",
        "deal_registration.sales.errors", "leaderboards.errors", "earnings.errors",
        "forecasts.errors", "incentives.errors", "subscriptions.errors",
    ):  # fmt: skip
        found = getattr(import_module(module), name, None)
        if isinstance(found, type) and issubclass(found, Enum):
            return found
    raise AssertionError(f"no enum {name}")


def codes_between(page: str, start: str, end: str) -> set[str]:
    text = (ROOT / page).read_text()
    assert start in text, f"{page}: {start!r} moved"
    section = text[text.index(start) :]
    section = section[: section.index(end)]
    return {code for code in CODE.findall(section)}


def test_the_partner_codes_listed_are_all_of_them() -> None:
    listed = codes_between("docs/partners.md", "Error codes: `PartnerErrorCode`", "## Statuses")
    imports = codes_between("docs/partners.md", "## CSV import", "\n## ")
    members = {m.value for m in enum("PartnerErrorCode")}  # type: ignore[var-annotated]
    assert listed <= members
    assert members - listed - imports == set()


def test_the_application_codes_listed_are_all_of_them() -> None:
    listed = codes_between("docs/partners.md", "Codes (`ApplicationErrorCode`)", "\n- ")
    assert listed == {m.value for m in enum("ApplicationErrorCode")}


def test_the_user_account_codes_listed_are_all_of_them() -> None:
    listed = codes_between("README.md", "`userErrors` codes: `NOT_FOUND` (no such", "lists them")
    roles = {"VENDOR_ADMIN", "PARTNER_ADMIN"}  # named in passing
    assert listed - roles == {m.value for m in enum("UserAccountErrorCode")}


def test_the_replay_codes_exist() -> None:
    listed = codes_between("docs/integrations.md", "Codes: `REPLAY_TARGET_REQUIRED`", "Replays at")
    assert listed <= {m.value for m in enum("WebhookErrorCode")}


def members(*names: str) -> set[str]:
    return {str(m.value) for name in names for m in enum(name)}


# (page, where the list or table starts, where it ends, the enums its codes are of)
CODE_LISTS = [
    ("docs/integrations.md", "| code | when |", "\n\n", ["WebhookErrorCode"]),
    ("docs/recurring.md", "| code | when |", "\n\n", ["ForecastErrorCode"]),
    ("docs/signals.md", "| code | when | message |", "\n\n", ["RuleErrorCode"]),
    ("docs/deal-registration.md", "with `DealRegistrationErrorCode`s", "\n\n",
     ["DealRegistrationErrorCode"]),
    ("README.md", "| input | limit | code |", "\n\n",
     ["SaleClaimErrorCode", "SubscriptionErrorCode", "ContestErrorCode"]),
]  # fmt: skip


@pytest.mark.parametrize(("page", "start", "end", "enums"), CODE_LISTS)
def test_the_codes_of_a_list_are_its_enums(
    page: str, start: str, end: str, enums: list[str]
) -> None:
    listed = codes_between(page, start, end)
    assert len(listed) >= 3
    assert listed - members(*enums) == set()


# --- Links -------------------------------------------------------------------------------


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose(path):
        heading = re.match(r"^#{1,6} +(.*?) *#*$", line)
        if heading is None:
            continue
        text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading[1])
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in prose(path):
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
            if not re.match(r"[a-z]+:", target):
                yield number, target


def test_every_relative_link_reaches_a_file_and_heading() -> None:
    broken = []
    for path in DOCS:
        for number, target in links(path):
            file, _, anchor = target.partition("#")
            destination = (path.parent / file).resolve() if file else path
            if not destination.exists():
                broken.append(f"{rel(path)}:{number}: {target} (no file)")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{rel(path)}:{number}: {target} (no heading)")
    assert broken == []


def test_anchors_are_read_as_github_makes_them() -> None:
    assert "measured-two-hosts-benchmarkstwo_hostssh" in anchors(ROOT / "docs" / "deploy.md")
    assert "set-up-your-program" in anchors(ROOT / "README.md")


# --- Webhook payloads --------------------------------------------------------------------


def _outer_dict_keys(function: ast.FunctionDef) -> set[str]:
    """The string keys of the dicts a mapper builds, not those nested in another dict."""
    dicts = [node for node in ast.walk(function) if isinstance(node, ast.Dict)]
    nested = {id(inner) for outer in dicts for v in outer.values for inner in ast.walk(v)}
    return {
        key.value
        for node in dicts
        if id(node) not in nested
        for key in node.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def webhook_data_keys() -> dict[str, set[str]]:
    """Each webhook type's `data` keys, read from the mappers of webhooks/event_types.py."""
    from webhooks.event_types import camel  # noqa: PLC0415

    tree = ast.parse((ROOT / "webhooks" / "event_types.py").read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    mapper_of: dict[str, str] = {}
    for source in ast.walk(tree):
        if not (isinstance(source, ast.Call) and getattr(source.func, "id", "") == "Source"):
            continue
        types, mapper = source.args[1], source.args[2]
        assert isinstance(types, ast.Dict)
        for key in types.keys:
            assert isinstance(key, ast.Constant)
            if isinstance(mapper, ast.Call):  # _one("type", fields)
                name = mapper.args[1]
            else:
                name = mapper
            assert isinstance(name, ast.Name)
            mapper_of[key.value] = name.id
    return {
        type_: set(camel(dict.fromkeys(_outer_dict_keys(functions[name]))))
        for type_, name in mapper_of.items()
    }


def test_the_webhook_payloads_documented_are_those_sent() -> None:
    page = (ROOT / "docs" / "integrations.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| [^|]* \| `([^`]+)`", page, re.M)
    documented = {type_: set(re.sub(r"\[[^\]]*\]", "", keys).split()) for type_, keys in rows}
    from webhooks.event_types import EVENT_TYPES  # noqa: PLC0415

    assert set(documented) == set(EVENT_TYPES)
    assert documented == webhook_data_keys()


# --- Source paths and Python names ---------------------------------------------------------

SOURCE_ROOTS = {*PACKAGES, "tests", "benchmarks", "conformance", "scripts", "docs", ".ci"}
PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+(?:[\w.-]*\.[a-z]+)?)(?![\w/.-])")
DOTTED = re.compile(r"(?<![\w./])([a-z_]+(?:\.[A-Za-z_]\w*)+)(?![\w/(])")


def made_by_a_tool(named: str) -> bool:
    """A path a .gitignore beside it names (`conformance/.gql-venv`: conformance/run makes it)."""
    parts = named.strip("/").split("/")
    for depth in range(len(parts)):
        ignore = ROOT.joinpath(*parts[:depth]) / ".gitignore"
        if ignore.is_file():
            patterns = {line.strip().strip("/") for line in ignore.read_text().splitlines()}
            if parts[depth] in patterns:
                return True
    return False


def resolves(dotted: str) -> bool:
    """A module, or a module's attribute (`infra.db.for_change`)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@cache
def table_columns() -> set[str]:
    from infra.db import metadata  # noqa: PLC0415

    import_module("migrations.metadata")
    return {f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns}


def test_every_source_path_and_python_name_the_docs_give_exists() -> None:
    """`partners/admin.py`, `infra.db.for_change`, `deal_registration.registered_by_id` (a
    column), `earnings.tier` (a GraphQL path): a reader finds each where the docs say."""
    from webhooks.event_types import EVENT_TYPES  # noqa: PLC0415

    query = served_schema().query_type
    assert query is not None
    missing = []
    for path in DOCS:
        for number, line in prose(path):
            for span in re.findall(r"`([^`]+)`", line):
                for named in PATH.findall(span):
                    # (`mdf/` is contributing's example of a new domain)
                    if named.split("/")[0] in SOURCE_ROOTS and "mdf" not in named:
                        if not (ROOT / named).exists() and not made_by_a_tool(named):
                            missing.append(f"{rel(path)}:{number}: {named}")
                for dotted in DOTTED.findall(span):
                    head, _, tail = dotted.partition(".")
                    if head not in SOURCE_ROOTS or tail in {"py", "md", "graphql", "csv", "json"}:
                        continue  # a file's name (`subscriptions.py`)
                    if dotted in EVENT_TYPES or dotted in table_columns():
                        continue
                    if head in query.fields and tail in getattr(
                        get_named_type(query.fields[head].type), "fields", {}
                    ):
                        continue
                    if not resolves(dotted):
                        missing.append(f"{rel(path)}:{number}: {dotted}")
    assert missing == []


# --- Document limits ---------------------------------------------------------------------


def test_the_fixed_and_anonymous_document_limits_stated_are_the_real_ones() -> None:
    from api.app import document_limits  # noqa: PLC0415
    from api.settings import Settings  # noqa: PLC0415

    page = (ROOT / "docs" / "security.md").read_text()
    limits = document_limits(Settings.from_env({}).limits)
    fixed = re.search(r"per document \| (\d+) / (\d+) / (\d+) / (\d+) \|", page)
    assert fixed is not None, "security.md: the fixed limits' row moved"
    assert [int(n) for n in fixed.groups()] == [
        limits.max_operations, limits.max_fragments, limits.max_directives, limits.max_variables
    ]  # fmt: skip
    anonymous = limits.for_anonymous()
    stated = re.search(
        r"get smaller budgets: (\d+) KiB, (\d+) tokens, (\d+) selections, (\d+) aliases, (\d+)\s+"
        r"fragments, directives and variables, (\d+) operations",
        page,
    )
    assert stated is not None, "security.md: the anonymous budgets' sentence moved"
    kib, tokens, selections, aliases, rest, operations = (int(n) for n in stated.groups())
    assert (kib << 10, tokens, selections, aliases, operations) == (
        anonymous.max_bytes, anonymous.max_tokens, anonymous.max_selections,
        anonymous.max_aliases, anonymous.max_operations,
    )  # fmt: skip
    assert {rest} == {
        anonymous.max_fragments, anonymous.max_directives, anonymous.max_variables
    }  # fmt: skip


def test_the_example_webhook_body_is_one_the_code_sends() -> None:
    (example,) = [b for b in blocks(ROOT / "docs" / "integrations.md") if b.info == ("json",)]
    body = json.loads(example.text)
    assert set(body) == {"type", "timestamp", "data"}
    assert set(body["data"]) == webhook_data_keys()[body["type"]]


# --- HTTP paths --------------------------------------------------------------------------


def test_every_http_path_the_docs_name_is_served(tmp_path: Path) -> None:
    """`GET /exports/{kind}.csv`, `/readyz`, `/tv#key=…`: a route of the app (or under one of
    its mounts), with the method shown."""
    from starlette.routing import Mount, Route, WebSocketRoute  # noqa: PLC0415

    from api.app import create_app  # noqa: PLC0415
    from api.settings import Settings  # noqa: PLC0415

    app = create_app(Settings.from_env({"CHANNELBOARD_VAR_DIR": str(tmp_path)}))
    routes: dict[str, set[str]] = {}
    mounts = []
    for route in app.routes:
        if isinstance(route, Route):
            routes.setdefault(re.sub(r"\{\w+\}", "{}", route.path), set()).update(
                route.methods or ()
            )
        elif isinstance(route, WebSocketRoute):
            routes.setdefault(route.path, set())
        elif isinstance(route, Mount):
            mounts.append(route.path)
    checked, unknown = 0, []
    for path in DOCS:
        for number, line in prose(path):
            for method, url in re.findall(r"`(?:(GET|POST) )?(/[a-z][^`\s]*)`", line):
                url = re.split(r"[?#\[]", url)[0]
                if url.startswith("/proc"):
                    continue  # Linux's
                checked += 1
                shape = re.sub(r"\{\w+\}", "{}", url.removesuffix("…"))
                if shape in routes and (not method or method in routes[shape]):
                    continue
                if any(shape.startswith(mount + "/") or shape == mount for mount in mounts):
                    continue
                if any(route.startswith(shape.rstrip("/") + "/") for route in routes):
                    continue  # a prefix of routes (`/exports`)
                unknown.append(f"{rel(path)}:{number}: {method} {url}".replace("  ", " "))
    assert checked >= 30
    assert unknown == []

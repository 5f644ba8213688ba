"""Rule conditions: CEL (the Common Expression Language: no loops, no side effects, always
terminates) compiled and run by the `common-expression-language` library (Rust-backed).
Nothing here parses or evaluates by itself.

A condition reads signals by their names (``signals.definitions.DEFINITIONS``); a signal
without a value on the day (a growth on a zero base) is ``null``, and comparing ``null``
with a number is an evaluation error, which counts as "does not fire" (guard with
``x != null && ...``). CEL does not mix int and double in arithmetic: money and counts are
ints, ratios doubles (``double(revenue_7d) / 100.0``)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from incentives.errors import RuleErrorCode
from infra.errors import DomainError

MAX_LENGTH = 2000
# CEL's standard functions a condition may call (operators are named "_+_", "!_", "@in").
FUNCTIONS = frozenset({
    "size", "int", "uint", "double", "string", "bool", "type", "dyn", "contains",
    "startsWith", "endsWith", "matches", "has", "all", "exists", "exists_one", "map", "filter",
})  # fmt: skip
# What running a condition on values raises when it cannot be evaluated on them: a null
# compared, a type mismatch, a division by zero, a 64-bit integer overflow (ArithmeticError
# covers the last two).
EVALUATION_ERRORS = (TypeError, ValueError, RuntimeError, ArithmeticError)

_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any  # cel.Program
    reads: tuple[str, ...]

    def holds(self, values: Mapping[str, Any]) -> bool:
        """True when the condition is true on these values; False when false or when it
        cannot be evaluated on them (a null compared, a division by zero, an overflow). Only
        the names it reads are handed over: the library converts every value it is given."""
        try:
            return self.program.execute({name: values.get(name) for name in self.reads}) is True
        except EVALUATION_ERRORS:
            return False

    def evaluate(self, values: Mapping[str, Any]) -> tuple[bool, str | None]:
        """(fires, why not when it could not be evaluated)."""
        try:
            return self.program.execute({n: values.get(n) for n in self.reads}) is True, None
        except EVALUATION_ERRORS as error:
            return False, str(error).split("\n")[0][:300]


def compile_condition(source: str, names: Collection[str], field: str = "condition") -> Condition:
    """Compile ``source`` against the signal ``names``. Raises CONDITION_INVALID with the
    line and column of a syntax error, UNKNOWN_SIGNAL listing the valid names, or
    NOT_BOOLEAN when it does not answer true or false."""
    source = source.strip()
    if not source:
        raise DomainError(RuleErrorCode.REQUIRED, "Write a condition.", field)
    if len(source) > MAX_LENGTH:
        raise DomainError(RuleErrorCode.TOO_LONG, f"At most {MAX_LENGTH} characters.", field)
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as error:
        raise DomainError(RuleErrorCode.CONDITION_INVALID, _syntax(str(error)), field) from None
    functions = [
        f for f in program.references()["functions"] if not _operator(f) and f not in FUNCTIONS
    ]
    if functions:
        raise DomainError(
            RuleErrorCode.CONDITION_INVALID,
            f"Unknown function {', '.join(repr(f) for f in functions)}; a condition may call "
            f"{', '.join(sorted(FUNCTIONS))}.",
            field,
        )
    reads = tuple(sorted(program.variables()))
    unknown = [name for name in reads if name not in names]
    if unknown:
        raise DomainError(
            RuleErrorCode.UNKNOWN_SIGNAL,
            f"Unknown signal {', '.join(repr(u) for u in unknown)}; the signals are: "
            f"{', '.join(sorted(names))}.",
            field,
        )
    if not reads:
        raise DomainError(
            RuleErrorCode.NOT_BOOLEAN, "A condition reads at least one signal.", field
        )
    condition = Condition(source, program, reads)
    probes = [{name: 0 for name in reads}, *_typed_probes(names, reads)]
    tried = [_attempt(program, values) for values in probes]
    if any(result is not None and not isinstance(result, bool) for result, _ in tried):
        raise DomainError(
            RuleErrorCode.NOT_BOOLEAN, "A condition answers true or false, not a value.", field
        )
    typed = tried[1:]
    if typed and all(isinstance(error, TypeError) for _, error in typed):
        # On values of the signals' own types (a count, an amount, a ratio, a flag) it
        # cannot be evaluated at all: it would never fire (a field of a number, a function
        # of the wrong type).
        reason = str(typed[0][1]).split("\n")[0][:200]
        raise DomainError(
            RuleErrorCode.CONDITION_INVALID,
            f"The condition cannot be evaluated on the signals' values: {reason}",
            field,
        )
    return condition


# Two values of each signal unit (``signals.definitions.Unit``), neither zero: a division
# by a signal is no error here.
_SAMPLES: dict[str, tuple[Any, Any]] = {
    "MONEY": (100_000, 7), "COUNT": (3, 1), "DAYS": (5, 1), "RATIO": (0.25, 1.5),
    "BOOL": (True, False),
}  # fmt: skip


def _typed_probes(names: Collection[str], reads: tuple[str, ...]) -> list[dict[str, Any]]:
    """Values of the signals' own types, when ``names`` describes them (the definitions:
    each with its ``unit``); none otherwise."""
    if not isinstance(names, Mapping):
        return []
    units = [str(getattr(names[name], "unit", "")) for name in reads]
    if not all(unit in _SAMPLES for unit in units):
        return []
    return [
        {name: _SAMPLES[unit][i] for name, unit in zip(reads, units, strict=True)} for i in range(2)
    ]


def _operator(name: str) -> bool:
    """CEL names its operators "_&&_", "_?_:_", "!_", "-_", "@in"."""
    if name.startswith("@") or name in ("!_", "-_"):
        return True
    return len(name) > 2 and name[0] == name[-1] == "_" and not name[1:-1].isidentifier()


def _attempt(program: Any, values: Mapping[str, Any]) -> tuple[Any, Exception | None]:
    """(the result, None), or (None, the error) when it cannot be evaluated on these."""
    try:
        return program.execute(values), None
    except EVALUATION_ERRORS as error:
        return None, error


def _syntax(message: str) -> str:
    """'Syntax error at line 1, column 5: mismatched input ...' from the library's text."""
    found = _POSITION.search(message)
    if found is None:
        return f"The condition does not compile: {message.splitlines()[0][:300]}"
    line, column, what = found.groups()
    what = what.removeprefix("Syntax error: ")
    return f"Syntax error at line {line}, column {column}: {what[:300]}"

"""EventBridge event-pattern matching, with the semantics of the Amazon EventBridge user guide.

References (the unit tests replay their examples):
- https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
  ("Content filtering in Amazon EventBridge event patterns" / comparison operators)
- https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html (arrays, nesting)
- https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-null-values.html

Model (the same one EventBridge documents): a pattern is a JSON object whose keys mirror the
event's. An object value descends into the event; an array value lists *alternatives* for the leaf
field (OR); several keys must all match (AND); ``"$or"`` lists alternative sub-patterns. A leaf
field of the event that is an array matches when any of its elements matches. Only scalar leaf
values (string, number, boolean, null) take part in matching; ``exists`` looks at leaf values
only, so a missing field, an empty array and an object all count as "does not exist".

Patterns are compiled once (:func:`compile_pattern`); an invalid pattern raises
:class:`InvalidEventPattern` naming what is wrong, like ``InvalidEventPatternException``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CompiledPattern", "InvalidEventPattern", "compile_pattern", "matches"]

#: EventBridge's documented limit for numeric matching: values within +-5.0e9.
NUMERIC_LIMIT = 5.0e9
_NUMERIC_OPS = frozenset({"<", "<=", "=", ">", ">="})
_MISSING: Any = object()


class InvalidEventPattern(ValueError):
    """The pattern is not a valid EventBridge event pattern (InvalidEventPatternException)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Event pattern is not valid. Reason: {reason}")
        self.reason = reason


def _is_number(value: object) -> bool:
    # bool is an int subclass in Python; JSON true is not the number 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar_equal(a: object, b: object) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)  # type: ignore[arg-type]
    if type(a) is not type(b):
        return False
    return a == b


# --- leaf matchers --------------------------------------------------------------------------

#: A leaf matcher sees every scalar value found at its field (possibly none).
LeafTest = Callable[[list[object]], bool]


def _any_value(test: Callable[[object], bool]) -> LeafTest:
    return lambda values: any(test(v) for v in values)


def _string_test(test: Callable[[str], bool]) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str) and test(v)


def _compile_wildcard(pattern: object, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise InvalidEventPattern(f"{where}: wildcard must be a string")
    out: list[str] = []
    i = 0
    previous_star = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
            if nxt not in ("*", "\\"):
                raise InvalidEventPattern(f"{where}: invalid escape in wildcard {pattern!r}")
            out.append(re.escape(nxt))
            i += 2
            previous_star = False
            continue
        if ch == "*":
            if previous_star:
                raise InvalidEventPattern(f"{where}: consecutive wildcard characters in {pattern!r}")
            out.append(".*")
            previous_star = True
        else:
            out.append(re.escape(ch))
            previous_star = False
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _string_or_ignore_case(spec: object, where: str, op: str) -> tuple[str, bool]:
    """``"x"`` or ``{"equals-ignore-case": "x"}`` (the prefix/suffix operand forms)."""
    if isinstance(spec, str):
        return spec, False
    if isinstance(spec, Mapping) and set(spec) == {"equals-ignore-case"}:
        inner = spec["equals-ignore-case"]
        if isinstance(inner, str):
            return inner, True
    raise InvalidEventPattern(f"{where}: {op} must be a string or {{'equals-ignore-case': string}}")


def _strings(spec: object, where: str, op: str) -> list[str]:
    """A string or a non-empty list of strings."""
    items = spec if isinstance(spec, list) else [spec]
    if not items or not all(isinstance(s, str) for s in items):
        raise InvalidEventPattern(f"{where}: {op} must be a string or a non-empty list of strings")
    return [str(s) for s in items]


def _check_number(value: object, where: str) -> float:
    if not _is_number(value):
        raise InvalidEventPattern(f"{where}: numeric operands must be numbers, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number) or abs(number) > NUMERIC_LIMIT:
        raise InvalidEventPattern(f"{where}: numeric values must be within -5.0e9..5.0e9")
    return number


def _compile_numeric(spec: object, where: str) -> Callable[[object], bool]:
    if not isinstance(spec, list) or not spec or len(spec) % 2:
        raise InvalidEventPattern(f"{where}: numeric takes [op, number, ...] pairs")
    lower: tuple[str, float] | None = None
    upper: tuple[str, float] | None = None
    equal: float | None = None
    for op, raw in zip(spec[0::2], spec[1::2], strict=True):
        if op not in _NUMERIC_OPS:
            raise InvalidEventPattern(f"{where}: unknown numeric operator {op!r}")
        number = _check_number(raw, where)
        if op == "=":
            if len(spec) != 2:
                raise InvalidEventPattern(f"{where}: '=' cannot be combined with other comparisons")
            equal = number
        elif op in (">", ">="):
            if lower is not None:
                raise InvalidEventPattern(f"{where}: more than one lower bound")
            lower = (op, number)
        else:
            if upper is not None:
                raise InvalidEventPattern(f"{where}: more than one upper bound")
            upper = (op, number)
    if lower and upper and lower[1] >= upper[1]:
        raise InvalidEventPattern(f"{where}: the lower bound must be below the upper bound")

    def test(value: object) -> bool:
        if not _is_number(value):
            return False
        x = float(value)  # type: ignore[arg-type]
        if equal is not None:
            return x == equal
        if lower and not (x > lower[1] if lower[0] == ">" else x >= lower[1]):
            return False
        return not (upper and not (x < upper[1] if upper[0] == "<" else x <= upper[1]))

    return test


def _compile_cidr(spec: object, where: str) -> Callable[[object], bool]:
    if not isinstance(spec, str):
        raise InvalidEventPattern(f"{where}: cidr must be a string")
    try:
        network = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        raise InvalidEventPattern(f"{where}: {spec!r} is not a CIDR block") from None

    def test(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return ipaddress.ip_address(value) in network
        except ValueError:
            return False

    return test


def _compile_anything_but(spec: object, where: str) -> LeafTest:
    """anything-but: a value, a list of strings or of numbers, or prefix/suffix/ignore-case/wildcard."""
    excluded: Callable[[object], bool]
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise InvalidEventPattern(f"{where}: anything-but takes exactly one operator")
        ((op, operand),) = spec.items()
        if op == "prefix":
            prefixes = _strings(operand, where, "anything-but prefix")
            excluded = _string_test(lambda s: any(s.startswith(p) for p in prefixes))
        elif op == "suffix":
            suffixes = _strings(operand, where, "anything-but suffix")
            excluded = _string_test(lambda s: any(s.endswith(p) for p in suffixes))
        elif op == "equals-ignore-case":
            folded = {s.casefold() for s in _strings(operand, where, "anything-but equals-ignore-case")}
            excluded = _string_test(lambda s: s.casefold() in folded)
        elif op == "wildcard":
            regexes = [_compile_wildcard(w, where) for w in _strings(operand, where, "anything-but wildcard")]
            excluded = _string_test(lambda s: any(r.fullmatch(s) for r in regexes))
        else:
            raise InvalidEventPattern(f"{where}: anything-but does not support {op!r}")
        # These forms only speak about strings: a non-string value is not "anything but" them.
        return _any_value(lambda v: isinstance(v, str) and not excluded(v))
    values = spec if isinstance(spec, list) else [spec]
    if not values:
        raise InvalidEventPattern(f"{where}: anything-but list must not be empty")
    all_strings = all(isinstance(v, str) for v in values)
    all_numbers = all(_is_number(v) for v in values)
    if not (all_strings or all_numbers):
        raise InvalidEventPattern(f"{where}: anything-but takes strings only or numbers only")
    return _any_value(lambda v: not any(_scalar_equal(v, x) for x in values))


def _compile_operator(spec: Mapping[str, object], where: str) -> LeafTest:
    if len(spec) != 1:
        raise InvalidEventPattern(f"{where}: a matcher object takes exactly one operator, got {sorted(spec)}")
    ((op, operand),) = spec.items()
    if op == "prefix":
        text, fold = _string_or_ignore_case(operand, where, "prefix")
        if fold:
            low = text.casefold()
            return _any_value(_string_test(lambda s: s.casefold().startswith(low)))
        return _any_value(_string_test(lambda s: s.startswith(text)))
    if op == "suffix":
        text, fold = _string_or_ignore_case(operand, where, "suffix")
        if fold:
            low = text.casefold()
            return _any_value(_string_test(lambda s: s.casefold().endswith(low)))
        return _any_value(_string_test(lambda s: s.endswith(text)))
    if op == "equals-ignore-case":
        if not isinstance(operand, str):
            raise InvalidEventPattern(f"{where}: equals-ignore-case must be a string")
        low = operand.casefold()
        return _any_value(_string_test(lambda s: s.casefold() == low))
    if op == "wildcard":
        regex = _compile_wildcard(operand, where)
        return _any_value(_string_test(lambda s: regex.fullmatch(s) is not None))
    if op == "anything-but":
        return _compile_anything_but(operand, where)
    if op == "numeric":
        return _any_value(_compile_numeric(operand, where))
    if op == "exists":
        if not isinstance(operand, bool):
            raise InvalidEventPattern(f"{where}: exists must be true or false")
        return bool if operand else (lambda values: not values)
    if op == "cidr":
        return _any_value(_compile_cidr(operand, where))
    raise InvalidEventPattern(f"{where}: unrecognized match type {op!r}")


def _equals(expected: object) -> Callable[[object], bool]:
    return lambda v: _scalar_equal(v, expected)


def _compile_leaf(alternatives: list[object], where: str) -> LeafTest:
    if not alternatives:
        raise InvalidEventPattern(f"{where}: empty arrays are not allowed")
    tests: list[LeafTest] = []
    for alt in alternatives:
        if isinstance(alt, Mapping):
            tests.append(_compile_operator(alt, where))
        elif isinstance(alt, list):
            raise InvalidEventPattern(f"{where}: nested arrays are not allowed")
        elif alt is None or isinstance(alt, str | bool) or _is_number(alt):
            tests.append(_any_value(_equals(alt)))
        else:
            raise InvalidEventPattern(f"{where}: unsupported value {alt!r}")
    return lambda values: any(t(values) for t in tests)


# --- object nodes -----------------------------------------------------------------------------


def _leaf_values(value: object) -> list[object]:
    """The scalar values at a field: arrays are flattened, objects are not leaves."""
    if value is _MISSING or isinstance(value, Mapping):
        return []
    if isinstance(value, list):
        out: list[object] = []
        for item in value:
            out.extend(_leaf_values(item))
        return out
    return [value]


def _objects(value: object) -> list[Mapping[str, Any]]:
    """The objects at a field a nested pattern descends into (any element of an array)."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        found = [o for item in value for o in _objects(item)]
        return found or [{}]
    # Missing or scalar: the nested fields do not exist (only exists:false can match).
    return [{}]


@dataclass(frozen=True)
class _Node:
    leaves: tuple[tuple[str, LeafTest], ...]
    children: tuple[tuple[str, _Node], ...]
    ors: tuple[tuple[_Node, ...], ...]

    def test(self, obj: Mapping[str, Any]) -> bool:
        for key, leaf in self.leaves:
            if not leaf(_leaf_values(obj.get(key, _MISSING))):
                return False
        for key, child in self.children:
            if not any(child.test(o) for o in _objects(obj.get(key, _MISSING))):
                return False
        return all(any(alt.test(obj) for alt in alternatives) for alternatives in self.ors)


def _compile_node(pattern: Mapping[str, object], where: str) -> _Node:
    if not pattern:
        raise InvalidEventPattern(f"{where}: empty objects are not allowed")
    leaves: list[tuple[str, LeafTest]] = []
    children: list[tuple[str, _Node]] = []
    ors: list[tuple[_Node, ...]] = []
    for key, value in pattern.items():
        if not isinstance(key, str):
            raise InvalidEventPattern(f"{where}: keys must be strings")
        path = f"{where}.{key}" if where else key
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise InvalidEventPattern(f"{path}: $or takes a list of at least two patterns")
            if not all(isinstance(v, Mapping) for v in value):
                raise InvalidEventPattern(f"{path}: every $or alternative must be an object")
            ors.append(tuple(_compile_node(v, path) for v in value))
        elif isinstance(value, Mapping):
            children.append((key, _compile_node(value, path)))
        elif isinstance(value, list):
            leaves.append((key, _compile_leaf(value, path)))
        else:
            raise InvalidEventPattern(f"{path}: match values must be arrays or objects, got {value!r}")
    return _Node(tuple(leaves), tuple(children), tuple(ors))


class CompiledPattern:
    """A validated event pattern; :meth:`matches` tests one event (a JSON object)."""

    def __init__(self, pattern: Mapping[str, object]) -> None:
        self.source: dict[str, object] = dict(pattern)
        self._root = _compile_node(pattern, "")

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self._root.test(event)

    def to_json(self) -> str:
        return json.dumps(self.source, separators=(",", ":"))


def compile_pattern(pattern: Mapping[str, object] | str) -> CompiledPattern:
    """Validate and compile a pattern given as a dict or as its JSON text."""
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except json.JSONDecodeError as exc:
            raise InvalidEventPattern(f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(pattern, Mapping):
        raise InvalidEventPattern("the pattern must be a JSON object")
    return CompiledPattern(pattern)


def matches(pattern: Mapping[str, object] | str, event: Mapping[str, Any] | Sequence[Any]) -> bool:
    """Convenience: compile ``pattern`` and test ``event`` (like the TestEventPattern API)."""
    if not isinstance(event, Mapping):
        return False
    return compile_pattern(pattern).matches(event)

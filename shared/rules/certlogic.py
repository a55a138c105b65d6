"""CertLogic, the JsonLogic subset that EU DCC business rules and venue policies are written in."""

from __future__ import annotations

import calendar
import itertools
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shared.rules.certlogic_validation import (
    DATE_TIME_COMPARISONS,
    INTEGER_COMPARISONS,
    MAX_DEPTH,
    OPERATORS,
    TIME_UNITS,
    ValidationIssue,
    format_number,
    integer_value,
    validate,
)

# The specification: ehn-dcc-development/dgc-business-rules, certlogic/specification/README.md.
# Date-times are timezone-aware `datetime` values in UTC with millisecond precision; only
# `plusTime` and `dccDateOfBirth` make them.
SPECIFICATION_VERSION = "1.3.2"

__all__ = [
    "MAX_DEPTH",
    "OPERATORS",
    "SPECIFICATION_VERSION",
    "TIME_UNITS",
    "CertLogicError",
    "ValidationIssue",
    "dcc_date_of_birth",
    "evaluate",
    "format_date_time",
    "is_falsy",
    "is_truthy",
    "parse_date_time",
    "validate",
]


class CertLogicError(ValueError):
    """An invalid expression, or one that cannot be evaluated on the data it was given.

    `operation` names the operator at fault when there is one; `issues` holds every
    validation issue when the expression itself is invalid.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        issues: tuple[ValidationIssue, ...] = (),
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.issues = issues


def evaluate(expression: Any, data: Any) -> Any:
    """Evaluate a CertLogic expression against a data context (both JSON values).

    The whole expression is validated first, so an invalid rule fails on every input, not
    only on the inputs that happen to reach its bad part. Raises `CertLogicError` for an
    invalid expression and for the type mismatches the specification makes errors.
    """
    try:
        issues = validate(expression)
    except RecursionError:
        raise CertLogicError("expression too deeply nested for the interpreter's stack") from None
    if issues:
        first = issues[0]
        where = f" at {first.path}" if first.path else ""
        raise CertLogicError(
            f"invalid CertLogic expression{where}: {first.message}",
            operation=_operator_of(first.expr),
            issues=tuple(issues),
        )
    return evaluate_validated(expression, data)


def evaluate_validated(expression: Any, data: Any) -> Any:
    """`evaluate` for an expression known valid, such as a rule's logic, checked when made."""
    try:
        return _evaluate(expression, data)
    except RecursionError:
        raise CertLogicError("expression too deeply nested for the interpreter's stack") from None


def is_truthy(value: Any) -> bool:
    """Truthy per CertLogic: true, a non-empty string/array/object, a non-zero integer."""
    return _truthiness(value) is True


def is_falsy(value: Any) -> bool:
    """Falsy per CertLogic: false, null, "", 0, [], {}. Some values are neither."""
    return _truthiness(value) is False


def parse_date_time(text: str) -> datetime:
    """A date(-time) string as `plusTime` reads it (amount 0), in UTC to the millisecond."""
    if not isinstance(text, str):
        raise _fail("plusTime", f"{_describe(text)} is not a date(-time) string")
    return _parse_date_time(text, "plusTime")


def dcc_date_of_birth(text: str) -> datetime:
    """A DCC date of birth (YYYY, YYYY-MM or YYYY-MM-DD) as the last date it can mean."""
    if not isinstance(text, str) or not _DATE_OF_BIRTH.fullmatch(text):
        raise CertLogicError(
            f'"dccDateOfBirth": {_describe(text)} is not a date of birth of the form'
            " YYYY, YYYY-MM or YYYY-MM-DD",
            operation="dccDateOfBirth",
        )
    return _parse_date_time(text, "dccDateOfBirth")


def format_date_time(value: datetime) -> str:
    """A date-time in the specification's normal form, e.g. 2021-06-01T00:00:00.000Z."""
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}"
        f":{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


# ---------------------------------------------------------------------------------------------
# Values


def _truthiness(value: Any) -> bool | None:
    """True for truthy, False for falsy, None for values that are neither (date-times, 1.5)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, str | list | dict):
        return len(value) > 0
    integer = integer_value(value)
    if integer is not None:
        return integer != 0
    return None


def _scalar_kind(value: Any) -> str | None:
    """The kind of a value `===` and `in` compare reliably; None for arrays, objects, dates."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _describe(value: Any) -> str:
    """A short description of a value for an error message; never a full repr of the data."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the integer {value}" if value.bit_length() <= 64 else "a very large integer"
    if isinstance(value, float):
        return f"the non-integer number {format_number(value)}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, datetime):
        return f"the date-time {format_date_time(value)}"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' * (len(value) != 1)}"
    if isinstance(value, dict):
        return f"an object with {len(value)} key{'s' * (len(value) != 1)}"
    return f"a value of type {type(value).__name__}"


def _operator_of(expr: Any) -> str | None:
    if isinstance(expr, dict) and len(expr) == 1:
        (key,) = expr
        if isinstance(key, str) and key in OPERATORS:
            return key
    return None


def _fail(operation: str, problem: str) -> CertLogicError:
    return CertLogicError(f'"{operation}": {problem}', operation=operation)


# ---------------------------------------------------------------------------------------------
# Date-times

# YYYY[-MM[-DD[Thh:mm:ss[.S...][Z|(+|-)h[h][[:]mm]]]]]: the formats the specification lists.
_DATE_TIME = re.compile(
    r"(?P<year>[0-9]{4})"
    r"(?:-(?P<month>[0-9]{2})"
    r"(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]+))?"
    r"(?:(?P<zulu>Z)|(?P<sign>[+-])(?P<offset_hours>[0-9]{1,2})(?::?(?P<offset_minutes>[0-9]{2}))?)?"
    r")?)?)?"
)
_DATE_OF_BIRTH = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?")


def _parse_date_time(text: str, operation: str) -> datetime:
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise _fail(operation, f"{_describe(text)} is not a date or date-time in an allowed format")
    try:
        return _from_match(match)
    except (ValueError, OverflowError) as exc:
        raise _fail(operation, f"{_describe(text)} is not a valid date(-time): {exc}") from None


def _from_match(match: re.Match[str]) -> datetime:
    year = int(match["year"])
    if match["month"] is None:  # YYYY: the last day of the year
        return datetime(year, 12, 31, tzinfo=UTC)
    month = int(match["month"])
    if match["day"] is None:  # YYYY-MM: the last day of the month
        if not 1 <= month <= 12:
            raise ValueError("month must be in 1..12")
        return datetime(year, month, calendar.monthrange(year, month)[1], tzinfo=UTC)
    day = int(match["day"])
    if match["hour"] is None:  # a date: midnight, UTC
        return datetime(year, month, day, tzinfo=UTC)
    fraction = match["fraction"] or ""
    millisecond = int((fraction + "000")[:3])  # decimals beyond the third are dropped
    zone = UTC
    if match["sign"] is not None:
        offset_minutes = int(match["offset_minutes"] or 0)
        if offset_minutes > 59:
            raise ValueError("offset minutes must be in 0..59")
        offset = timedelta(hours=int(match["offset_hours"]), minutes=offset_minutes)
        zone = timezone(-offset if match["sign"] == "-" else offset)
    local = datetime(
        year,
        month,
        day,
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"]),
        millisecond * 1000,
        tzinfo=zone,
    )
    return local.astimezone(UTC)


def _plus_time(moment: datetime, amount: int, unit: str) -> datetime:
    """Offset like JS `setUTC<unit>(getUTC<unit>() + amount)`, so days overflow their month.

    31 January + 1 month = 3 March (2 March in a leap year); 29 February + 1 year = 1 March.
    """
    if unit == "hour":
        return moment + timedelta(hours=amount)
    if unit == "day":
        return moment + timedelta(days=amount)
    year, month0 = moment.year, moment.month - 1
    if unit == "year":
        year += amount
    else:
        month0 += amount
        year, month0 = year + month0 // 12, month0 % 12
    first = moment.replace(year=year, month=month0 + 1, day=1)
    return first + timedelta(days=moment.day - 1)


# ---------------------------------------------------------------------------------------------
# Evaluation (of an expression already validated)

_PATH_INDEX = re.compile(r"0|[1-9][0-9]*")

Operands = list[Any]


def _evaluate(expr: Any, data: Any) -> Any:
    if isinstance(expr, dict):
        ((op, operands),) = expr.items()
        if op == "var":
            return _var(operands, data)
        return _OPERATIONS[op](operands, data)
    if isinstance(expr, list):
        return [_evaluate(item, data) for item in expr]
    if isinstance(expr, float):
        return integer_value(expr)
    return expr


def _var(path: str, data: Any) -> Any:
    if path == "":
        return data
    current = data
    for fragment in path.split("."):
        if isinstance(current, dict):
            current = current.get(fragment)
        elif isinstance(current, list) and _PATH_INDEX.fullmatch(fragment):
            index = int(fragment)
            current = current[index] if index < len(current) else None
        else:
            return None
    return current


def _if(operands: Operands, data: Any) -> Any:
    guard, then, otherwise = operands
    return _evaluate(then if is_truthy(_evaluate(guard, data)) else otherwise, data)


def _equals(operands: Operands, data: Any) -> bool:
    left, right = (_evaluate(operand, data) for operand in operands)
    left_kind, right_kind = _scalar_kind(left), _scalar_kind(right)
    if left_kind is None and right_kind is None:
        raise _fail(
            "===",
            "can compare only null, booleans, integers and strings, but got"
            f" {_describe(left)} and {_describe(right)}",
        )
    return left_kind == right_kind and left == right


def _in(operands: Operands, data: Any) -> bool:
    needle, haystack = (_evaluate(operand, data) for operand in operands)
    if not isinstance(haystack, list):
        raise _fail("in", f"the second operand must be an array, but it is {_describe(haystack)}")
    kind = _scalar_kind(needle)
    if kind is None:
        raise _fail(
            "in",
            "the first operand must be null, a boolean, an integer or a string, but it is"
            f" {_describe(needle)}",
        )
    return any(_scalar_kind(item) == kind and item == needle for item in haystack)


def _plus(operands: Operands, data: Any) -> int:
    left, right = (_evaluate(operand, data) for operand in operands)
    left_int, right_int = integer_value(left), integer_value(right)
    if left_int is None or right_int is None:
        raise _fail(
            "+", f"both operands must be integers, but got {_describe(left)} and {_describe(right)}"
        )
    return left_int + right_int


def _and(operands: Operands, data: Any) -> Any:
    value = None
    for position, operand in enumerate(operands, start=1):
        value = _evaluate(operand, data)
        truthiness = _truthiness(value)
        if truthiness is None:
            raise _fail(
                "and",
                f"operand {position} evaluated to {_describe(value)}, which is neither truthy"
                " nor falsy",
            )
        if not truthiness:
            return value
    return value


def _not(operands: Operands, data: Any) -> bool:
    value = _evaluate(operands[0], data)
    truthiness = _truthiness(value)
    if truthiness is None:
        raise _fail("!", f"the operand evaluated to {_describe(value)}, neither truthy nor falsy")
    return not truthiness


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "before": operator.lt,
    "after": operator.gt,
    "not-after": operator.le,
    "not-before": operator.ge,
}


def _comparison(op: str) -> Callable[[Operands, Any], bool]:
    order = _ORDER[op]

    def compare(operands: Operands, data: Any) -> bool:
        values = [_evaluate(operand, data) for operand in operands]
        checked: list[Any]
        if op in INTEGER_COMPARISONS:
            checked = [integer_value(value) for value in values]
            wanted = "integers"
        else:
            checked = [value if isinstance(value, datetime) else None for value in values]
            wanted = "date-times (made by plusTime or dccDateOfBirth)"
        for position, (value, ok) in enumerate(zip(values, checked, strict=True), start=1):
            if ok is None:
                raise _fail(
                    op,
                    f"all operands must be {wanted}, but operand {position} is {_describe(value)}",
                )
        return all(order(a, b) for a, b in itertools.pairwise(checked))

    return compare


def _plus_time_operation(operands: Operands, data: Any) -> datetime:
    value = _evaluate(operands[0], data)
    if not isinstance(value, str):
        raise _fail(
            "plusTime",
            f"the first operand must be a date(-time) string, but it is {_describe(value)}",
        )
    amount, unit = int(operands[1]), operands[2]
    moment = _parse_date_time(value, "plusTime")
    try:
        return _plus_time(moment, amount, unit)
    except (ValueError, OverflowError):
        raise _fail(
            "plusTime",
            f"adding {amount} {unit}(s) to {format_date_time(moment)} leaves the supported range"
            " (years 1 to 9999)",
        ) from None


def _reduce(operands: Operands, data: Any) -> Any:
    array_operand, lambda_, initial_operand = operands
    values = _evaluate(array_operand, data)
    accumulator = _evaluate(initial_operand, data)
    if values is None:
        return accumulator
    if not isinstance(values, list):
        raise _fail(
            "reduce", f"the first operand must be an array or null, but it is {_describe(values)}"
        )
    for current in values:
        accumulator = _evaluate(lambda_, {"current": current, "accumulator": accumulator})
    return accumulator


_UCI_SEPARATORS = re.compile(r"[/#:]")


def _extract_from_uvci(operands: Operands, data: Any) -> str | None:
    value = _evaluate(operands[0], data)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(
            "extractFromUVCI", f"the operand must be a string or null, but it is {_describe(value)}"
        )
    index = int(operands[1])
    fragments = _UCI_SEPARATORS.split(value)
    if fragments[:2] == ["URN", "UVCI"]:
        fragments = fragments[2:]
    return fragments[index] if 0 <= index < len(fragments) else None


def _dcc_date_of_birth_operation(operands: Operands, data: Any) -> datetime:
    return dcc_date_of_birth(_evaluate(operands[0], data))


_OPERATIONS: dict[str, Callable[[Operands, Any], Any]] = {
    "if": _if,
    "===": _equals,
    "in": _in,
    "+": _plus,
    "and": _and,
    "!": _not,
    "plusTime": _plus_time_operation,
    "reduce": _reduce,
    "extractFromUVCI": _extract_from_uvci,
    "dccDateOfBirth": _dcc_date_of_birth_operation,
    **{op: _comparison(op) for op in INTEGER_COMPARISONS | DATE_TIME_COMPARISONS},
}

assert set(_OPERATIONS) | {"var"} == OPERATORS  # the validator and the evaluator agree

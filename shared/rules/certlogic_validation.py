"""Static validation of CertLogic expressions: their shape, before any data is seen."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

#: How deeply operations and arrays may nest. Real rules nest a dozen levels or so; the limit
#: keeps a hostile expression from exhausting the interpreter's stack.
MAX_DEPTH = 100

TIME_UNITS = ("year", "month", "day", "hour")

INTEGER_COMPARISONS = frozenset({"<", ">", "<=", ">="})
DATE_TIME_COMPARISONS = frozenset({"after", "before", "not-after", "not-before"})

# Operator -> (least, most) number of operands; `None` for "no upper bound".
_ARITY: dict[str, tuple[int, int | None]] = {
    "if": (3, 3),
    "===": (2, 2),
    "in": (2, 2),
    "+": (2, 2),
    "and": (2, None),
    "!": (1, 1),
    "plusTime": (3, 3),
    "reduce": (3, 3),
    "extractFromUVCI": (2, 2),
    "dccDateOfBirth": (1, 1),
    **{op: (2, 3) for op in INTEGER_COMPARISONS | DATE_TIME_COMPARISONS},
}

#: Every operator of the specification, `var` included.
OPERATORS = frozenset({"var", *_ARITY})

# A path is "" (the whole data context) or non-empty fragments separated by single periods.
_PATH = re.compile(r"[^.]+(?:\.[^.]+)*")

_FORM_MESSAGE = 'operation not of the form { "<operator>": [ <values...> ] }'
_VAR_MESSAGE = 'not of the form { "var": "<path>" }'


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in an expression: the offending sub-expression, what is wrong, and where.

    `path` is a JSON Pointer into the validated expression ("" for the expression itself).
    """

    expr: Any
    message: str
    path: str = ""


def integer_value(value: Any) -> int | None:
    """The value as an int if it is a JSON integer (JS-style: 2.0 counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def format_number(value: float) -> str:
    """A number as JavaScript would print it in a message (NaN, Infinity)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def validate(expression: Any) -> list[ValidationIssue]:
    """Every structural problem in a CertLogic expression; an empty list means it is valid.

    Validity is about shape only (known operators, operand counts, literal operands where
    the specification requires them, `var` path syntax); type mismatches that depend on the
    data are found during evaluation.
    """
    issues: list[ValidationIssue] = []
    _validate(expression, "", 0, issues)
    return issues


def _validate(expr: Any, path: str, depth: int, issues: list[ValidationIssue]) -> None:
    if depth > MAX_DEPTH:
        issues.append(
            ValidationIssue(expr, f"expression nested more than {MAX_DEPTH} levels deep", path)
        )
        return
    if isinstance(expr, bool | str):
        return
    if isinstance(expr, int | float):
        if integer_value(expr) is None:
            issues.append(
                ValidationIssue(expr, f"{format_number(expr)} is a non-integer number", path)
            )
        return
    if isinstance(expr, list):
        for index, item in enumerate(expr):
            _validate(item, f"{path}/{index}", depth + 1, issues)
        return
    if isinstance(expr, dict):
        _validate_operation(expr, path, depth, issues)
        return
    issues.append(ValidationIssue(expr, "invalid CertLogic expression", path))


def _validate_operation(
    expr: dict[Any, Any], path: str, depth: int, issues: list[ValidationIssue]
) -> None:
    if len(expr) != 1:
        issues.append(
            ValidationIssue(
                expr, f"expression object must have exactly one key, but it has {len(expr)}", path
            )
        )
        return
    ((operator, operands),) = expr.items()
    if operator == "var":
        if not isinstance(operands, str):
            issues.append(ValidationIssue(expr, _VAR_MESSAGE, path))
        elif operands != "" and not _PATH.fullmatch(operands):
            issues.append(
                ValidationIssue(
                    expr, f"data access path doesn't have a valid format: {operands}", path
                )
            )
        return
    if not isinstance(operands, list):
        issues.append(ValidationIssue(expr, _FORM_MESSAGE, path))
        return
    if operator not in _ARITY:
        shown = operator if isinstance(operator, str) else repr(operator)
        issues.append(ValidationIssue(expr, f'unrecognised operator: "{shown}"', path))
        return
    operands_path = f"{path}/{_escape(operator)}"
    least, most = _ARITY[operator]
    count = len(operands)
    if count < least or (most is not None and count > most):
        if most is None:
            wanted = f"at least {least}"
        elif least == most:
            wanted = f"exactly {least}"
        else:
            wanted = f"{least} or {most}"
        noun = "operand" if (least, most) == (1, 1) else "operands"
        issues.append(
            ValidationIssue(
                expr, f'"{operator}" must have {wanted} {noun}, but it has {count}', path
            )
        )
    literal_positions = _check_literal_operands(expr, operator, operands, path, issues)
    for index, operand in enumerate(operands):
        if index not in literal_positions:
            _validate(operand, f"{operands_path}/{index}", depth + 1, issues)


def _check_literal_operands(
    expr: dict[Any, Any],
    operator: str,
    operands: list[Any],
    path: str,
    issues: list[ValidationIssue],
) -> set[int]:
    """Check the operands that must be literals; return their positions (already handled)."""
    if operator == "plusTime":
        positions = set()
        if len(operands) > 1:
            positions.add(1)
            if integer_value(operands[1]) is None:
                issues.append(
                    ValidationIssue(
                        expr,
                        '"plusTime": the amount (2nd operand) must be an integer literal',
                        path,
                    )
                )
        if len(operands) > 2:
            positions.add(2)
            if not (isinstance(operands[2], str) and operands[2] in TIME_UNITS):
                issues.append(
                    ValidationIssue(
                        expr,
                        '"plusTime": the time unit (3rd operand) must be one of '
                        + ", ".join(f'"{unit}"' for unit in TIME_UNITS),
                        path,
                    )
                )
        return positions
    if operator == "extractFromUVCI" and len(operands) > 1:
        if integer_value(operands[1]) is None:
            issues.append(
                ValidationIssue(
                    expr,
                    '"extractFromUVCI": the index (2nd operand) must be an integer literal',
                    path,
                )
            )
        return {1}
    return set()


def _escape(key: str) -> str:
    """A key escaped for use in a JSON Pointer (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")

"""CertLogic engine: the upstream conformance suites, the specification's examples, robustness."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.rules.certlogic import (
    MAX_DEPTH,
    OPERATORS,
    TIME_UNITS,
    CertLogicError,
    dcc_date_of_birth,
    evaluate,
    format_date_time,
    is_falsy,
    is_truthy,
    parse_date_time,
    validate,
)

CERTLOGIC_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "certlogic"
TEST_SUITE = CERTLOGIC_DATA / "testSuite"
VALIDATION_SUITE = CERTLOGIC_DATA / "validation-testSuite"
ABSENT = f"the CertLogic conformance suites are not at {CERTLOGIC_DATA}"


def same_json(left: Any, right: Any) -> bool:
    """Equality without Python's bool/int mixing (True == 1) and with dict/list strictness."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list):
        return (
            isinstance(right, list)
            and len(left) == len(right)
            and all(same_json(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and left.keys() == right.keys()
            and all(same_json(left[key], right[key]) for key in left)
        )
    if left is None or right is None:
        return left is right
    if isinstance(left, int | float):
        return isinstance(right, int | float) and left == right
    return type(left) is type(right) and left == right


# ---------------------------------------------------------------------------------------------
# The conformance suites


def _directive(*levels: dict[str, Any]) -> str | None:
    return next((level["directive"] for level in levels if "directive" in level), None)


def evaluation_cases() -> list[Any]:
    if not TEST_SUITE.is_dir():
        return [pytest.param(None, None, None, "", id="absent", marks=pytest.mark.skip(ABSENT))]
    params = []
    for path in sorted(TEST_SUITE.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        for case_index, case in enumerate(suite["cases"]):
            for index, assertion in enumerate(case["assertions"]):
                expression = assertion.get("certLogicExpression", case.get("certLogicExpression"))
                label = f"{path.name} / case {case['name']!r} / assertion {index}"
                if "message" in assertion:
                    label += f" ({assertion['message']})"
                directive = _directive(assertion, case, suite)
                marks = (
                    [pytest.mark.skip(reason=f"marked 'skip' by the upstream suite: {label}")]
                    if directive == "skip"
                    else []
                )
                params.append(
                    pytest.param(
                        expression,
                        assertion["data"],
                        assertion["expected"],
                        label,
                        id=f"{path.stem}-{case_index}-{index}",
                        marks=marks,
                    )
                )
    return params


def validation_cases() -> list[Any]:
    if not VALIDATION_SUITE.is_dir():
        return [pytest.param(None, None, "", id="absent", marks=pytest.mark.skip(ABSENT))]
    params = []
    for path in sorted(VALIDATION_SUITE.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        for index, case in enumerate(suite["cases"]):
            expression = case["certLogicExpression"]
            name = case.get("name", json.dumps(expression))
            label = f"{path.name} / case {index} {name}"
            marks = (
                [pytest.mark.skip(reason=f"marked 'skip' by the upstream suite: {label}")]
                if _directive(case, suite) == "skip"
                else []
            )
            params.append(
                pytest.param(
                    expression, case["issues"], label, id=f"{path.stem}-{index}", marks=marks
                )
            )
    return params


@pytest.mark.parametrize(("expression", "data", "expected", "label"), evaluation_cases())
def test_evaluation_suite(expression: Any, data: Any, expected: Any, label: str) -> None:
    original = copy.deepcopy(data)
    try:
        actual = evaluate(expression, data)
    except CertLogicError as exc:
        pytest.fail(f"{label}: raised {exc}, expected {json.dumps(expected)}")
    assert same_json(actual, expected), f"{label}: got {actual!r}, expected {expected!r}"
    assert same_json(data, original), f"{label}: evaluation changed the data"


@pytest.mark.parametrize(("expression", "issues", "label"), validation_cases())
def test_validation_suite(expression: Any, issues: list[dict[str, Any]], label: str) -> None:
    actual = [{"expr": issue.expr, "message": issue.message} for issue in validate(expression)]
    assert same_json(actual, issues), f"{label}: got {actual}, expected {issues}"
    if issues:
        with pytest.raises(CertLogicError, match="invalid CertLogic expression"):
            evaluate(expression, {})
    else:
        evaluate(expression, {})


@pytest.mark.skipif(not CERTLOGIC_DATA.is_dir(), reason=ABSENT)
def test_every_suite_file_is_read() -> None:
    for folder in (TEST_SUITE, VALIDATION_SUITE):
        files = sorted(folder.glob("*.json"))
        assert files, f"no suite files in {folder}"
        for path in files:
            assert json.loads(path.read_text(encoding="utf-8"))["cases"], f"{path.name}: no cases"


# ---------------------------------------------------------------------------------------------
# Date-times: formats, plusTime, dccDateOfBirth


def plus_time(value: str, amount: int, unit: str) -> str:
    return format_date_time(evaluate({"plusTime": [value, amount, unit]}, None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021", "2021-12-31T00:00:00.000Z"),
        ("2021-02", "2021-02-28T00:00:00.000Z"),
        ("2020-02", "2020-02-29T00:00:00.000Z"),
        ("2021-06-01", "2021-06-01T00:00:00.000Z"),
        ("2021-06-01T12:34:56", "2021-06-01T12:34:56.000Z"),
        ("2021-06-01T12:34:56Z", "2021-06-01T12:34:56.000Z"),
        ("2021-06-01T12:34:56+2", "2021-06-01T10:34:56.000Z"),
        ("2021-06-01T12:34:56+02", "2021-06-01T10:34:56.000Z"),
        ("2021-06-01T12:34:56+230", "2021-06-01T10:04:56.000Z"),
        ("2021-06-01T12:34:56+0230", "2021-06-01T10:04:56.000Z"),
        ("2021-06-01T12:34:56+2:30", "2021-06-01T10:04:56.000Z"),
        ("2021-06-01T12:34:56+02:30", "2021-06-01T10:04:56.000Z"),
        ("2021-06-01T12:34:56-5", "2021-06-01T17:34:56.000Z"),
        ("2021-06-01T22:00:00-05:00", "2021-06-02T03:00:00.000Z"),
        ("2021-06-01T12:34:56.1", "2021-06-01T12:34:56.100Z"),
        ("2021-06-01T12:34:56.5Z", "2021-06-01T12:34:56.500Z"),
        ("2021-06-01T12:34:56.123456789", "2021-06-01T12:34:56.123Z"),
        ("2021-06-01T12:34:56.9999+01", "2021-06-01T11:34:56.999Z"),
        ("2021-06-01T12:34:56.25-0130", "2021-06-01T14:04:56.250Z"),
        ("2021-06-01T12:34:56.25+1:30", "2021-06-01T11:04:56.250Z"),
    ],
)
def test_plus_time_reads_every_allowed_format(text: str, expected: str) -> None:
    assert plus_time(text, 0, "day") == expected
    parsed = parse_date_time(text)
    assert parsed.tzinfo is UTC
    assert format_date_time(parsed) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "21-06-01",
        "2021-6-01",
        "2021-06-01T12:34",
        "2021-06-01 12:34:56",
        "2021-06-01T12:34:56.",
        "2021-06-01T12:34:56z",
        "2021-06-01Z",
        "2021-06-01T12:34:56+123:00",
        "2021-06-01T12:34:56+01:60",
        "2021-06-01T12:34:56+24",
        "2021-13-01",
        "2021-13",
        "2021-02-30",
        "2021-06-01T24:00:00",
        "2021-06-01T12:60:00",
        "0000-01-01",
        "\uff12\uff10\uff12\uff11-06-01",  # full-width digits are not [0-9]
        " 2021-06-01",
        "2021-06-01\n",
        "yesterday",
    ],
)
def test_plus_time_rejects_other_formats(text: str) -> None:
    with pytest.raises(CertLogicError, match='"plusTime"'):
        evaluate({"plusTime": [text, 0, "day"]}, None)


@pytest.mark.parametrize(
    ("start", "amount", "unit", "expected"),
    [
        # The specification's leap-day table.
        ("2020-02-29", 1, "day", "2020-03-01T00:00:00.000Z"),
        ("2020-02-29", 1, "month", "2020-03-29T00:00:00.000Z"),
        ("2020-02-29", 1, "year", "2021-03-01T00:00:00.000Z"),
        # A day beyond the end of the target month overflows into the next (JS Date).
        ("2021-01-31", 1, "month", "2021-03-03T00:00:00.000Z"),
        ("2020-01-31", 1, "month", "2020-03-02T00:00:00.000Z"),
        ("2021-03-31", -1, "month", "2021-03-03T00:00:00.000Z"),
        ("2021-05-31", 1, "month", "2021-07-01T00:00:00.000Z"),
        ("2020-02-29", -1, "year", "2019-03-01T00:00:00.000Z"),
        ("2020-02-29", 4, "year", "2024-02-29T00:00:00.000Z"),
        # Month arithmetic carries into years, both ways.
        ("2021-12-15", 1, "month", "2022-01-15T00:00:00.000Z"),
        ("2021-01-15", -1, "month", "2020-12-15T00:00:00.000Z"),
        ("2021-01-15", -13, "month", "2019-12-15T00:00:00.000Z"),
        ("2021-01-15", 25, "month", "2023-02-15T00:00:00.000Z"),
        ("2021-06-01T10:20:30.456Z", 12, "month", "2022-06-01T10:20:30.456Z"),
        # Days and hours are fixed lengths: no DST, no leap seconds.
        ("2021-03-27T12:00:00+01:00", 1, "day", "2021-03-28T11:00:00.000Z"),
        ("2021-06-01T23:30:00+02:00", 1, "hour", "2021-06-01T22:30:00.000Z"),
        ("2021-06-01", -180, "day", "2020-12-03T00:00:00.000Z"),
        ("2021-06-01", -48, "hour", "2021-05-30T00:00:00.000Z"),
        # Units act on the UTC fields: 2021-02-01T00:30+01:00 is 31 January in UTC.
        ("2021-02-01T00:30:00+01:00", 1, "month", "2021-03-03T23:30:00.000Z"),
        # Partial dates are read as dccDateOfBirth reads them, then offset.
        ("2004", -1, "year", "2003-12-31T00:00:00.000Z"),
        ("2004-02", 1, "day", "2004-03-01T00:00:00.000Z"),
        ("2004-01", 1, "month", "2004-03-02T00:00:00.000Z"),
        # Every unit with amount 0 gives the date-time as-is.
        ("2021-06-01T12:00:00Z", 0, "year", "2021-06-01T12:00:00.000Z"),
        ("2021-06-01T12:00:00Z", 0, "month", "2021-06-01T12:00:00.000Z"),
        ("2021-06-01T12:00:00Z", 0, "hour", "2021-06-01T12:00:00.000Z"),
    ],
)
def test_plus_time_offsets(start: str, amount: int, unit: str, expected: str) -> None:
    assert plus_time(start, amount, unit) == expected


@pytest.mark.parametrize(
    ("start", "amount", "unit"),
    [
        ("9999-12-31", 1, "day"),
        ("9999-06-01", 1, "year"),
        ("0001-01-01", -1, "hour"),
        ("2021-01-01", 10**30, "day"),
        ("2021-01-01", -(10**30), "month"),
        ("2021-01-01", 10**30, "year"),
        ("0001-01-01T00:00:00+01:00", 0, "day"),
    ],
)
def test_plus_time_out_of_range_is_a_certlogic_error(start: str, amount: int, unit: str) -> None:
    with pytest.raises(CertLogicError, match='"plusTime"'):
        plus_time(start, amount, unit)


def test_plus_time_takes_only_strings() -> None:
    for value in (None, 20210101, True, ["2021-01-01"], {"date": "2021-01-01"}):
        with pytest.raises(CertLogicError, match='"plusTime": the first operand'):
            evaluate({"plusTime": [{"var": "d"}, 0, "day"]}, {"d": value})
    # Nor a date-time value: plusTime(plusTime(...)) is not valid.
    nested = {"plusTime": [{"plusTime": ["2021-01-01", 0, "day"]}, 1, "day"]}
    with pytest.raises(CertLogicError, match='"plusTime": the first operand'):
        evaluate(nested, None)


@pytest.mark.parametrize(
    ("dob", "expected"),
    [
        ("1998", "1998-12-31T00:00:00.000Z"),
        ("1998-02", "1998-02-28T00:00:00.000Z"),
        ("2000-02", "2000-02-29T00:00:00.000Z"),
        ("1900-02", "1900-02-28T00:00:00.000Z"),
        ("2004-01", "2004-01-31T00:00:00.000Z"),
        ("2004-04", "2004-04-30T00:00:00.000Z"),
        ("1998-12", "1998-12-31T00:00:00.000Z"),
        ("1998-02-26", "1998-02-26T00:00:00.000Z"),
        ("2000-02-29", "2000-02-29T00:00:00.000Z"),
    ],
)
def test_dcc_date_of_birth_is_the_last_date_consistent_with_the_data(
    dob: str, expected: str
) -> None:
    assert (
        format_date_time(evaluate({"dccDateOfBirth": [{"var": "dob"}]}, {"dob": dob})) == expected
    )
    assert format_date_time(dcc_date_of_birth(dob)) == expected
    # plusTime reads the same strings the same way.
    assert plus_time(dob, 0, "day") == expected


@pytest.mark.parametrize(
    "dob", ["", "98", "1998-2", "1998-02-2", "1998-13", "1998-02-30", "1998-02-26T00:00:00", "x"]
)
def test_dcc_date_of_birth_rejects_what_is_not_a_dob(dob: str) -> None:
    with pytest.raises(CertLogicError, match='"dccDateOfBirth"'):
        evaluate({"dccDateOfBirth": [dob]}, None)


def test_dcc_date_of_birth_takes_only_strings() -> None:
    for dob in (None, 1998, ["1998"]):
        with pytest.raises(CertLogicError, match='"dccDateOfBirth"'):
            evaluate({"dccDateOfBirth": [{"var": "dob"}]}, {"dob": dob})


MINOR = {
    "after": [
        {"dccDateOfBirth": [{"var": "payload.dob"}]},
        {"plusTime": [{"var": "external.validationClock"}, -18, "year"]},
    ]
}


@pytest.mark.parametrize(
    ("dob", "clock", "minor"),
    [
        ("2004-02-29", "2022-02-28T23:59:59Z", True),
        ("2004-02-29", "2022-03-01T00:00:00Z", False),
        ("2004-02", "2022-02-28T12:00:00Z", True),
        ("2004-02", "2022-03-01T00:00:00Z", False),
        ("2004", "2022-12-30T23:59:59.999Z", True),
        ("2004", "2022-12-31T00:00:00Z", False),
        ("1998", "2021-06-01T00:00:00Z", False),
    ],
)
def test_the_specifications_minor_check(dob: str, clock: str, minor: bool) -> None:
    data = {"payload": {"dob": dob}, "external": {"validationClock": clock}}
    assert evaluate(MINOR, data) is minor


def test_date_times_compare_by_instant_in_every_form() -> None:
    same = {
        "not-after": [
            {"plusTime": ["2021-06-01T12:00:00+02:00", 0, "hour"]},
            {"plusTime": ["2021-06-01T10:00:00Z", 0, "hour"]},
            {"plusTime": ["2021-06-01T05:00:00-05", 0, "hour"]},
        ]
    }
    assert evaluate(same, None) is True
    between = {
        "before": [
            {"plusTime": ["2021-01-01", 0, "day"]},
            {"plusTime": [{"var": ""}, 0, "day"]},
            {"plusTime": ["2022-01-01", 0, "day"]},
        ]
    }
    assert evaluate(between, "2021-06-01T00:00:00Z") is True
    assert evaluate(between, "2022-01-01") is False
    assert evaluate(between, "2021-01-01T00:00:00.001Z") is True


# ---------------------------------------------------------------------------------------------
# extractFromUVCI


@pytest.mark.parametrize(
    ("uvci", "index", "expected"),
    [
        # The specification's example: 6 fragments.
        ("a::c/#/f", 0, "a"),
        ("a::c/#/f", 1, ""),
        ("a::c/#/f", 2, "c"),
        ("a::c/#/f", 3, ""),
        ("a::c/#/f", 4, ""),
        ("a::c/#/f", 5, "f"),
        ("a::c/#/f", 6, None),
        ("a::c/#/f", -1, None),
        # The optional URN:UVCI: prefix is ignored.
        ("URN:UVCI:01:NL:187/37512422923", 0, "01"),
        ("URN:UVCI:01:NL:187/37512422923", 1, "NL"),
        ("URN:UVCI:01:NL:187/37512422923", 2, "187"),
        ("URN:UVCI:01:NL:187/37512422923", 3, "37512422923"),
        ("URN:UVCI:01:NL:187/37512422923", 4, None),
        ("01:NL:187/37512422923", 2, "187"),
        ("URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W", 0, "01DE"),
        ("URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W", 1, "IZ12345A"),
        ("URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W", 3, "W"),
        # Only the exact fragments "URN", "UVCI" at the start are a prefix.
        ("urn:uvci:01:NL", 0, "urn"),
        ("NL:URN:UVCI", 1, "URN"),
        ("", 0, ""),
        ("", 1, None),
    ],
)
def test_extract_from_uvci(uvci: str, index: int, expected: str | None) -> None:
    assert evaluate({"extractFromUVCI": [{"var": "ci"}, index]}, {"ci": uvci}) == expected


def test_extract_from_uvci_null_and_non_strings() -> None:
    assert evaluate({"extractFromUVCI": [{"var": "missing"}, 0]}, {}) is None
    for value in (42, True, ["URN:UVCI:01"], {"ci": "x"}):
        with pytest.raises(CertLogicError, match='"extractFromUVCI"'):
            evaluate({"extractFromUVCI": [{"var": "ci"}, 0]}, {"ci": value})
    issues = validate({"extractFromUVCI": ["URN:UVCI:01", {"var": "i"}]})
    assert [issue.message for issue in issues] == [
        '"extractFromUVCI": the index (2nd operand) must be an integer literal'
    ]


# ---------------------------------------------------------------------------------------------
# Values, operators and their type rules


DATE_TIME = datetime(2021, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [False, None, "", 0, [], {}, 0.0])
def test_falsy_values(value: Any) -> None:
    assert is_falsy(value)
    assert not is_truthy(value)
    assert evaluate({"!": [{"var": ""}]}, value) is True
    assert evaluate({"if": [{"var": ""}, "T", "F"]}, value) == "F"


@pytest.mark.parametrize("value", [True, "x", "0", "false", 1, -1, [0], [None], {"a": None}])
def test_truthy_values(value: Any) -> None:
    assert is_truthy(value)
    assert not is_falsy(value)
    assert evaluate({"!": [{"var": ""}]}, value) is False
    assert evaluate({"if": [{"var": ""}, "T", "F"]}, value) == "T"


@pytest.mark.parametrize("value", [1.5, float("nan"), DATE_TIME])
def test_values_neither_truthy_nor_falsy(value: Any) -> None:
    assert not is_truthy(value)
    assert not is_falsy(value)
    with pytest.raises(CertLogicError, match='"!": the operand'):
        evaluate({"!": [{"var": ""}]}, value)
    with pytest.raises(CertLogicError, match='"and": operand 2'):
        evaluate({"and": [True, {"var": ""}]}, value)
    # `if` takes the else branch for anything that is not truthy, as the specification says.
    assert evaluate({"if": [{"var": ""}, "T", "F"]}, value) == "F"


def test_neither_truthy_nor_falsy_date_time_in_and() -> None:
    expression = {"and": [True, {"plusTime": ["2021-01-01", 0, "day"]}]}
    with pytest.raises(CertLogicError, match="neither truthy nor falsy"):
        evaluate(expression, None)


def test_and_stops_at_the_first_falsy_operand() -> None:
    poison = {"plusTime": ["not a date", 0, "day"]}
    assert evaluate({"and": [True, 0, poison]}, None) == 0
    with pytest.raises(CertLogicError):
        evaluate({"and": [True, 1, poison]}, None)


def test_if_evaluates_only_the_branch_it_takes() -> None:
    poison = {"plusTime": ["not a date", 0, "day"]}
    assert evaluate({"if": [True, "yes", poison]}, None) == "yes"
    assert evaluate({"if": [False, poison, "no"]}, None) == "no"


@pytest.mark.parametrize("op", ["<", ">", "<=", ">="])
@pytest.mark.parametrize("bad", [None, "1", True, 1.5, [1], DATE_TIME])
def test_integer_comparisons_take_only_integers(op: str, bad: Any) -> None:
    with pytest.raises(CertLogicError, match=f'"{op}": all operands must be integers'):
        evaluate({op: [1, {"var": "x"}]}, {"x": bad})
    with pytest.raises(CertLogicError, match=f'"{op}"'):
        evaluate({op: [{"var": "x"}, 1, 2]}, {"x": bad})


@pytest.mark.parametrize("op", ["after", "before", "not-after", "not-before"])
@pytest.mark.parametrize("bad", [None, "2021-06-01", 20210601, True])
def test_date_time_comparisons_take_only_date_times(op: str, bad: Any) -> None:
    date = {"plusTime": ["2021-06-01", 0, "day"]}
    with pytest.raises(CertLogicError, match=f'"{op}": all operands must be date-times'):
        evaluate({op: [date, {"var": "x"}]}, {"x": bad})


@pytest.mark.parametrize(
    ("op", "operands", "expected"),
    [
        ("<", [1, 2, 3], True),
        ("<", [1, 3, 3], False),
        (">", [3, 2, 1], True),
        (">", [3, 2, 2], False),
        (">=", [3, 3, 1], True),
        (">=", [1, 3, 1], False),
        ("<=", [-5, -5, -5], True),
        ("before", ["2021-01-01", "2021-01-02", "2021-01-03"], True),
        ("before", ["2021-01-01", "2021-01-03", "2021-01-02"], False),
        ("after", ["2021-01-03", "2021-01-02"], True),
        ("not-after", ["2021-01-02", "2021-01-02", "2021-01-02"], True),
        ("not-before", ["2021-01-02", "2021-01-03"], False),
    ],
)
def test_binary_and_ternary_comparisons(op: str, operands: list[Any], expected: bool) -> None:
    if isinstance(operands[0], str):
        operands = [{"plusTime": [operand, 0, "day"]} for operand in operands]
    assert evaluate({op: operands}, None) is expected


def test_equality_is_strict() -> None:
    assert evaluate({"===": [1, 1]}, None) is True
    assert evaluate({"===": ["1", 1]}, None) is False
    assert evaluate({"===": [True, 1]}, None) is False
    assert evaluate({"===": [{"var": "x"}, 0]}, {"x": False}) is False
    assert evaluate({"===": [{"var": "x"}, {"var": "y"}]}, {}) is True  # null === null
    assert evaluate({"===": [{"var": "x"}, "foo"]}, {"x": {"a": 1}}) is False
    assert evaluate({"===": [{"var": "x"}, 2]}, {"x": 2.0}) is True  # JSON cannot tell them apart


def test_equality_of_two_arrays_objects_or_date_times_is_an_error() -> None:
    date = {"plusTime": ["2021-06-01", 0, "day"]}
    for left, right in (([1], [1]), ({"var": "a"}, {"var": "a"}), (date, date)):
        with pytest.raises(CertLogicError, match='"===": can compare only'):
            evaluate({"===": [left, right]}, {"a": {"b": 1}})


def test_in() -> None:
    assert evaluate({"in": [1, [0, 1]]}, None) is True
    assert evaluate({"in": [True, [1]]}, None) is False
    assert evaluate({"in": ["1", [1]]}, None) is False
    assert evaluate({"in": [{"var": "x"}, [[1], {"var": "x"}]]}, {"x": None}) is True
    for haystack in (None, "foo", {"foo": 1}, 3):
        with pytest.raises(CertLogicError, match='"in": the second operand must be an array'):
            evaluate({"in": ["foo", {"var": "h"}]}, {"h": haystack})
    with pytest.raises(CertLogicError, match='"in": the first operand'):
        evaluate({"in": [[1], [[1]]]}, None)


def test_plus() -> None:
    assert evaluate({"+": [{"var": "a"}, -3]}, {"a": 2}) == -1
    assert evaluate({"+": [2**70, 2**70]}, None) == 2**71
    for bad in (None, "1", True, 1.5, [1]):
        with pytest.raises(CertLogicError, match='"\\+": both operands must be integers'):
            evaluate({"+": [1, {"var": "a"}]}, {"a": bad})


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("", [1], [1]),
        ("a.b", {"a": {"b": 0}}, 0),
        ("a.1", {"a": [5, 6]}, 6),
        ("a.01", {"a": [5, 6]}, None),  # not the canonical index 1
        ("a.-1", {"a": [5, 6]}, None),  # no counting from the end
        ("a.2", {"a": [5, 6]}, None),
        ("a.0", {"a": {"0": "key"}}, "key"),
        ("a.length", {"a": [5, 6]}, None),
        ("a.0", {"a": "string"}, None),
        ("a.b", {"a": 7}, None),
        ("a.b.c", {"a": {"b": None}}, None),
    ],
)
def test_var(path: str, data: Any, expected: Any) -> None:
    assert same_json(evaluate({"var": path}, data), expected)


def test_reduce() -> None:
    total = {"reduce": [{"var": "xs"}, {"+": [{"var": "accumulator"}, {"var": "current"}]}, 0]}
    assert evaluate(total, {"xs": [1, 2, 3]}) == 6
    assert evaluate(total, {"xs": []}) == 0
    assert evaluate(total, {}) == 0  # a null operand gives the initial value
    for bad in ("123", 5, {"a": 1}):
        with pytest.raises(CertLogicError, match='"reduce": the first operand'):
            evaluate(total, {"xs": bad})
    # "all" written as a reduction.
    all_positive = {
        "reduce": [
            {"var": "xs"},
            {"and": [{"var": "accumulator"}, {">": [{"var": "current"}, 0]}]},
            True,
        ]
    }
    assert evaluate(all_positive, {"xs": [1, 2]}) is True
    assert evaluate(all_positive, {"xs": [1, -2, 3]}) is False
    # The lambda sees only current and accumulator: the "data" key is not (yet) specified.
    sees = {"reduce": [[1], {"var": "data"}, 0]}
    assert evaluate(sees, {"z": 1}) is None


def test_reduce_can_accumulate_date_times() -> None:
    latest = {
        "reduce": [
            {"var": "dates"},
            {
                "if": [
                    {
                        "after": [
                            {"plusTime": [{"var": "current"}, 0, "day"]},
                            {"var": "accumulator"},
                        ]
                    },
                    {"plusTime": [{"var": "current"}, 0, "day"]},
                    {"var": "accumulator"},
                ]
            },
            {"plusTime": ["1900-01-01", 0, "day"]},
        ]
    }
    data = {"dates": ["2021-05-01", "2021-07-01T10:00:00+02:00", "2021-06-01"]}
    assert format_date_time(evaluate(latest, data)) == "2021-07-01T08:00:00.000Z"


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"if": [True, 1]}, '"if" must have exactly 3 operands, but it has 2'),
        ({"===": [1, 2, 3]}, '"===" must have exactly 2 operands, but it has 3'),
        ({"in": [1]}, '"in" must have exactly 2 operands, but it has 1'),
        ({"+": [1, 2, 3]}, '"+" must have exactly 2 operands, but it has 3'),
        ({"and": [True]}, '"and" must have at least 2 operands, but it has 1'),
        ({"<": [1]}, '"<" must have 2 or 3 operands, but it has 1'),
        ({"after": [1, 2, 3, 4]}, '"after" must have 2 or 3 operands, but it has 4'),
        ({"!": []}, '"!" must have exactly 1 operand, but it has 0'),
        ({"!!": [1]}, 'unrecognised operator: "!!"'),
        ({"reduce": [[], 0]}, '"reduce" must have exactly 3 operands, but it has 2'),
        (
            {"dccDateOfBirth": ["1998", 1]},
            '"dccDateOfBirth" must have exactly 1 operand, but it has 2',
        ),
        (
            {"plusTime": ["2021-01-01", {"var": "n"}, "day"]},
            '"plusTime": the amount (2nd operand) must be an integer literal',
        ),
        (
            {"plusTime": ["2021-01-01", 1, "week"]},
            '"plusTime": the time unit (3rd operand) must be one of "year", "month", "day", "hour"',
        ),
        ({"var": ["x"]}, 'not of the form { "var": "<path>" }'),
        ({"var": ".x"}, "data access path doesn't have a valid format: .x"),
        ({"var": "x..y"}, "data access path doesn't have a valid format: x..y"),
        ({"if": "x"}, 'operation not of the form { "<operator>": [ <values...> ] }'),
        ({"extractFromUCVI": ["x", 0]}, 'unrecognised operator: "extractFromUCVI"'),
        (1.5, "1.5 is a non-integer number"),
        (datetime(2021, 1, 1, tzinfo=UTC), "invalid CertLogic expression"),
    ],
)
def test_validation_messages(expression: Any, message: str) -> None:
    assert [issue.message for issue in validate(expression)] == [message]
    with pytest.raises(CertLogicError, match="invalid CertLogic expression") as raised:
        evaluate(expression, {})
    assert message in str(raised.value)
    assert raised.value.issues


def test_validation_finds_every_issue_with_its_location() -> None:
    expression = {
        "and": [
            {"var": 3},
            [1, 2.5, {"foo": []}],
            {"if": [True, {"plusTime": ["2021", 1, "hours"]}, None]},
        ]
    }
    found = [(issue.path, issue.message) for issue in validate(expression)]
    assert found == [
        ("/and/0", 'not of the form { "var": "<path>" }'),
        ("/and/1/1", "2.5 is a non-integer number"),
        ("/and/1/2", 'unrecognised operator: "foo"'),
        (
            "/and/2/if/1",
            '"plusTime": the time unit (3rd operand) must be one of "year", "month", "day", "hour"',
        ),
        ("/and/2/if/2", "invalid CertLogic expression"),
    ]
    with pytest.raises(CertLogicError, match="at /and/0") as raised:
        evaluate(expression, {})
    assert raised.value.operation == "var"
    assert len(raised.value.issues) == 5


def test_an_invalid_part_fails_even_where_evaluation_would_not_reach_it() -> None:
    with pytest.raises(CertLogicError, match='unrecognised operator: "all"'):
        evaluate({"if": [True, 1, {"all": [[], True]}]}, None)


def test_public_helpers() -> None:
    assert format_date_time(parse_date_time("0001-01-01")) == "0001-01-01T00:00:00.000Z"
    assert parse_date_time("2021-06-01T02:00:00+02:00") == datetime(2021, 6, 1, tzinfo=UTC)
    for helper in (parse_date_time, dcc_date_of_birth):
        with pytest.raises(CertLogicError):
            helper(None)  # type: ignore[arg-type]


def test_the_error_is_a_value_error() -> None:
    assert issubclass(CertLogicError, ValueError)
    assert {"var", "if", "===", "and", "plusTime", "extractFromUVCI"} <= OPERATORS
    assert TIME_UNITS == ("year", "month", "day", "hour")


# ---------------------------------------------------------------------------------------------
# Robustness


def nested_not(depth: int) -> Any:
    expression: Any = True
    for _ in range(depth):
        expression = {"!": [expression]}
    return expression


def test_nesting_up_to_the_limit_evaluates() -> None:
    assert evaluate(nested_not(MAX_DEPTH), None) is True  # an even number of negations


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000, 200_000])
def test_a_deeply_nested_expression_is_refused_not_a_crash(depth: int) -> None:
    expression = nested_not(depth)
    assert any("nested more than" in issue.message for issue in validate(expression))
    with pytest.raises(CertLogicError, match="nested more than"):
        evaluate(expression, None)
    arrays: Any = []
    for _ in range(depth):
        arrays = [arrays]
    with pytest.raises(CertLogicError, match="nested more than"):
        evaluate(arrays, None)


def test_a_cyclic_expression_is_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(CertLogicError, match="nested more than"):
        evaluate(cyclic, None)


def test_deep_data_is_fine() -> None:
    data: Any = "bottom"
    for _ in range(50_000):
        data = {"a": data}
    assert evaluate({"var": "a.a.a"}, data) is data["a"]["a"]["a"]
    assert evaluate({"!": [{"var": "a.a"}]}, data) is False
    with pytest.raises(CertLogicError, match='"===": can compare only'):
        evaluate({"===": [{"var": ""}, {"var": ""}]}, data)
    with pytest.raises(CertLogicError, match='"\\+": both operands'):
        evaluate({"+": [{"var": ""}, 1]}, data)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "0", "2021-06-01", "2020-02-29T23:00:00+01:00", "1998-02", "URN:UVCI:01"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.sampled_from(["x", "0", "current"])),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
var_paths = st.one_of(
    st.sampled_from(["", "x", "x.0", "0", "a.b", "current", "accumulator", "x.", "x..y"]),
    st.text(alphabet="xab01.", max_size=6),
)


# Operand counts the specification allows, so that most generated operations are valid.
ARITY = {
    "if": (3, 3),
    "===": (2, 2),
    "in": (2, 2),
    "+": (2, 2),
    "and": (2, 4),
    "!": (1, 1),
    "reduce": (3, 3),
    "dccDateOfBirth": (1, 1),
    **{op: (2, 3) for op in ("<", ">", "<=", ">=", "after", "before", "not-after", "not-before")},
}


def operations(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def operation(op: str) -> st.SearchStrategy[Any]:
        least, most = ARITY[op]
        return st.lists(children, min_size=least, max_size=most).map(lambda args: {op: args})

    return st.one_of(
        st.sampled_from(sorted(ARITY)).flatmap(operation),
        st.builds(
            lambda op, args: {op: args},
            st.sampled_from(sorted(OPERATORS - {"var"})),
            st.lists(children, max_size=4),
        ),
        st.builds(lambda path: {"var": path}, var_paths),
        st.builds(
            lambda operand, amount, unit: {"plusTime": [operand, amount, unit]},
            children,
            st.integers(min_value=-(10**6), max_value=10**6) | st.integers(),
            st.sampled_from([*TIME_UNITS, "week"]),
        ),
        st.builds(
            lambda operand, index: {"extractFromUVCI": [operand, index]},
            children,
            st.integers(min_value=-2, max_value=6),
        ),
        st.lists(children, max_size=3),
    )


expression_leaves = st.one_of(
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from(["", "x", "2021-06-01", "2004-02", "2021-06-01T12:00:00.5+02:00", "a:b/c"]),
    st.builds(lambda path: {"var": path}, var_paths),
    json_scalars,  # now and then an invalid literal (null, a float)
)
expressions = st.recursive(expression_leaves, operations, max_leaves=25)


def _check_total(expression: Any, data: Any) -> None:
    try:
        first = evaluate(expression, data)
    except CertLogicError as exc:
        with pytest.raises(CertLogicError) as again:
            evaluate(expression, data)
        assert str(again.value) == str(exc)  # deterministic, errors included
        return
    second = evaluate(expression, data)
    assert repr(first) == repr(second)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=json_values, data=json_values)
def test_arbitrary_json_raises_only_certlogic_errors(expression: Any, data: Any) -> None:
    _check_total(expression, data)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=expressions, data=json_values)
def test_arbitrary_operations_raise_only_certlogic_errors(expression: Any, data: Any) -> None:
    _check_total(expression, data)

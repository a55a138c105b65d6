"""`sentinel conformance dcc`: our EU DCC verification against dgc-testdata's expected results.

Each test file holds one certificate at every stage of its encoding and, in EXPECTEDRESULTS,
what each validation step should conclude. For every expected result a file holds, the runner
works that step out on its own, from the step's inputs and with the project's own verification
code, and compares. A disagreement that a known flaw of the data explains is named as such.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from shared.dcc.certificates import (
    CertificateError,
    SignerCertificate,
    load_certificate,
    trust_list,
)
from shared.dcc.hcert import (
    HCERT_CLAIM,
    PREFIX,
    certificate_types,
    check_key_usage,
    dcc_payload,
    json_value,
    single_entry,
)
from shared.dcc.schema import SchemaStore, default_schema_dir
from shared.dcc.value_sets import packaged_value_sets
from shared.envelope import (
    CredentialError,
    CwtClaims,
    Stage,
    base45,
    check_expiry,
    inflate,
    parse_cose,
    parse_cwt,
    unprefix,
    verify,
)
from shared.keys import ES256, KeyPurpose

EXIT_CONFORMS = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2
UPSTREAM_ISSUES = "https://github.com/eu-digital-green-certificates/dgc-testdata/issues/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    suites = parser.add_subparsers(dest="suite", required=True, metavar="SUITE")
    dcc = suites.add_parser(
        "dcc",
        help="EU DCC test files (the dgc-testdata layout)",
        description="Check each EXPECTED* result of dgc-testdata files against our own.",
    )
    dcc.add_argument("paths", nargs="+", metavar="PATH", help="test files or directories of them")
    dcc.add_argument(
        "--schemas",
        type=Path,
        metavar="DIR",
        help="the eu-dcc-schema directory (default: $SENTINEL_DCC_SCHEMAS, else ../shared/data)",
    )
    dcc.add_argument(
        "--strict-schema",
        action="store_true",
        help="a payload declaring a version with no schema (1.0.4, say) fails, instead of "
        "being validated against the newest schema of its major version",
    )
    dcc.add_argument("--json", action="store_true", help="one JSON report instead of tables")


class Inapplicable(Exception):
    """The file lacks an input the step needs, so the step cannot be tested on it."""


class StepFailed(Exception):
    """A step's own comparison of two of the file's fields found them different."""


@dataclass(frozen=True)
class TestCase:
    """One dgc-testdata file: its name as shown, its location and its content."""

    __test__ = False  # not a pytest test class, despite the name
    name: str
    file: Path
    data: Mapping[str, Any]

    @property
    def expected(self) -> Mapping[str, Any]:
        return self.data["EXPECTEDRESULTS"]

    @property
    def context(self) -> Mapping[str, Any]:
        context = self.data.get("TESTCTX")
        return context if isinstance(context, Mapping) else {}

    def in_folder(self, folder: str) -> bool:
        """Whether the file lies under a folder of this name (an issuer's, such as "NL")."""
        return folder in self.file.resolve().parts[:-1]

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if not isinstance(value, str):
            raise Inapplicable(f"no {name}")
        return value

    def hex(self, name: str) -> bytes:
        try:
            return bytes.fromhex(self.text(name))
        except ValueError:
            raise Inapplicable(f"{name} is not hex") from None

    def json(self) -> Any:
        if "JSON" not in self.data:
            raise Inapplicable("no JSON")
        return self.data["JSON"]

    def certificate(self) -> SignerCertificate:
        try:
            der = base64.b64decode(self.context["CERTIFICATE"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise Inapplicable("no base64 TESTCTX.CERTIFICATE") from None
        try:
            return load_certificate(der)
        except CertificateError as error:
            raise StepFailed(f"TESTCTX.CERTIFICATE: {error}") from None

    def clock(self) -> datetime:
        try:
            clock = datetime.fromisoformat(self.context["VALIDATIONCLOCK"])
        except (KeyError, TypeError, ValueError):
            raise Inapplicable("no ISO 8601 TESTCTX.VALIDATIONCLOCK") from None
        return clock if clock.tzinfo else clock.replace(tzinfo=UTC)

    def cwt(self) -> CwtClaims:
        """The CWT claims of COSE."""
        return parse_cwt(parse_cose(self.hex("COSE")).payload)

    def encoded_dcc(self) -> Any:
        """The DCC as the file encodes it: in CBOR (the whole CWT or the DCC alone) or COSE."""
        if not self.has("CBOR"):
            return dcc_payload(self.cwt().claims)
        try:
            decoded = cbor2.loads(self.hex("CBOR"))
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
            raise StepFailed(f"CBOR does not decode ({error})") from None
        if isinstance(decoded, Mapping) and HCERT_CLAIM in decoded:
            return dcc_payload(decoded)
        try:
            return json_value(decoded)
        except ValueError as error:
            raise StepFailed(f"CBOR is not JSON: {error}") from None


@dataclass
class Runner:
    """What the steps share: the schemas and the QR decoder (made on first use)."""

    schemas: SchemaStore | None
    _qr: Any = field(default=None, repr=False)

    def qr_texts(self, png: bytes) -> list[str]:
        import cv2
        import numpy as np

        from hardware.qr import QrDecoder

        if self._qr is None:
            self._qr = QrDecoder()
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise StepFailed("2DCODE is not an image")
        return self._qr.decode(image)

    def validate(self, payload: Any) -> None:
        if self.schemas is None:
            raise Inapplicable("no schema directory")
        self.schemas.validate(payload)


# ---- the steps: each returns when it succeeds and raises CredentialError or StepFailed -----


def picture_decode(case: TestCase, runner: Runner) -> None:
    """EXPECTEDPICTUREDECODE: the 2DCODE PNG reads as a QR code holding PREFIX."""
    try:
        png = base64.b64decode(case.text("2DCODE"), validate=True)
    except binascii.Error:
        raise StepFailed("2DCODE is not base64") from None
    prefixed = case.text("PREFIX")
    texts = runner.qr_texts(png)
    if prefixed not in texts:
        raise StepFailed("no QR code read" if not texts else "the QR code holds other text")


def unprefix_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDUNPREFIX: PREFIX starts with HC1: and the rest is BASE45."""
    body = unprefix(case.text("PREFIX"), PREFIX)
    if case.has("BASE45") and body != case.text("BASE45"):
        raise StepFailed("PREFIX less its prefix differs from BASE45")


def base45_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDB45DECODE: BASE45 (else PREFIX less HC1:) decodes, to COMPRESSED."""
    text = case.text("BASE45") if case.has("BASE45") else unprefix(case.text("PREFIX"), PREFIX)
    data = base45(text)
    if case.has("COMPRESSED") and data != case.hex("COMPRESSED"):
        raise StepFailed("decodes to other bytes than COMPRESSED")


def compression_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDCOMPRESSION: COMPRESSED inflates, to COSE."""
    cose = inflate(case.hex("COMPRESSED"))
    if case.has("COSE") and cose != case.hex("COSE"):
        raise StepFailed("inflates to other bytes than COSE")


def signature_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDVERIFY: COSE's signature verifies under TESTCTX.CERTIFICATE, found by its kid."""
    cose = parse_cose(case.hex("COSE"))
    verify(cose, trust_list([case.certificate()]), KeyPurpose.DCC)


def decode_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDDECODE: CBOR decodes to the DCC that COSE carries, and to JSON."""
    encoded = case.encoded_dcc()
    if case.has("COSE") and case.has("CBOR"):
        _same("COSE's payload", dcc_payload(case.cwt().claims), "CBOR", encoded)
    _same("CBOR", encoded, "JSON", case.json())


def valid_json_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDVALIDJSON: the whole chain from PREFIX decodes, to JSON."""
    cose = parse_cose(inflate(base45(unprefix(case.text("PREFIX"), PREFIX))))
    _same("PREFIX", dcc_payload(parse_cwt(cose.payload).claims), "JSON", case.json())


def schema_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDSCHEMAVALIDATION: the encoded DCC is valid under the schema its `ver` names."""
    runner.validate(case.encoded_dcc())


def valid_object_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDVALIDOBJECT: the JSON is valid under the schema its `ver` names."""
    runner.validate(case.json())


def encode_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDENCODE: JSON encodes to the CBOR of CBOR (both encoded anew, canonically)."""
    ours = cbor2.dumps(case.json(), canonical=True)
    if ours != cbor2.dumps(case.encoded_dcc(), canonical=True):
        raise StepFailed("JSON encodes to other CBOR than CBOR holds")


def expiry_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDEXPIRATIONCHECK: valid at TESTCTX.VALIDATIONCLOCK (not expired, not future)."""
    clock = case.clock()
    check_expiry(case.cwt(), clock, valid_at_expiry=True)


def key_usage_step(case: TestCase, runner: Runner) -> None:
    """EXPECTEDKEYUSAGE: TESTCTX.CERTIFICATE's key usage allows the type COSE carries.

    The signature is EXPECTEDVERIFY's business: PL 6 expects a valid key usage from a
    certificate that did not make the signature.
    """
    signer = case.certificate().trusted_key()
    check_key_usage(signer, certificate_types(dcc_payload(case.cwt().claims)))


def _same(name: str, value: Any, other_name: str, other: Any) -> None:
    where = first_difference(value, other)
    if where is not None:
        raise StepFailed(f"{name} differs from {other_name} at {where}")


def first_difference(first: Any, second: Any, path: str = "$") -> str | None:
    """The JSON path of the first place two JSON values differ (None if equal); no values shown."""
    if isinstance(first, dict) and isinstance(second, dict):
        for key in sorted(first.keys() | second.keys()):
            if key not in first or key not in second:
                return f"{path}.{key} (in one only)"
            found = first_difference(first[key], second[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(first, list) and isinstance(second, list):
        if len(first) != len(second):
            return f"{path} (lengths {len(first)} and {len(second)})"
        for index, (item, other) in enumerate(zip(first, second, strict=True)):
            found = first_difference(item, other, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    same_kind = isinstance(first, bool) == isinstance(second, bool)
    return None if same_kind and first == second else path


Step = Callable[[TestCase, Runner], None]


@dataclass(frozen=True)
class Expectation:
    """One EXPECTED* key and the step that answers it."""

    key: str
    step: Step
    note: str = ""


EXPECTATIONS = (
    Expectation("EXPECTEDPICTUREDECODE", picture_decode),
    Expectation("EXPECTEDUNPREFIX", unprefix_step),
    Expectation("EXPECTEDB45DECODE", base45_step),
    Expectation("EXPECTEDCOMPRESSION", compression_step),
    Expectation("EXPECTEDVERIFY", signature_step),
    Expectation("EXPECTEDDECODE", decode_step),
    Expectation("EXPECTEDVALIDJSON", valid_json_step),
    Expectation("EXPECTEDSCHEMAVALIDATION", schema_step),
    Expectation("EXPECTEDVALIDOBJECT", valid_object_step),
    Expectation("EXPECTEDENCODE", encode_step),
    Expectation("EXPECTEDEXPIRATIONCHECK", expiry_step),
    Expectation(
        "EXPTECTEDEXPIRED",
        expiry_step,
        note=f"upstream's misspelling in BG's files: the old name of EXPECTEDEXPIRATIONCHECK, "
        f"true meaning valid at the clock ({UPSTREAM_ISSUES}178)",
    ),
    Expectation("EXPECTEDKEYUSAGE", key_usage_step),
)


# ---- known flaws of the test data ------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One expected result of one file, ours beside it, and what explains a disagreement."""

    name: str
    key: str
    expected: bool
    actual: bool | None  # None: the step cannot be tested on this file (reason says why)
    reason: str
    known_issue: str | None = None

    @property
    def verdict(self) -> str:
        if self.actual is None:
            return "not applicable"
        if self.actual == self.expected:
            return "match"
        return "known issue" if self.known_issue else "mismatch"


@dataclass(frozen=True)
class KnownIssue:
    """A flaw of the test data, recognised by a condition on the file and our outcome."""

    name: str
    source: str  # where it is recorded
    description: str
    keys: frozenset[str]  # the expected results it can put wrong
    applies: Callable[[TestCase, Outcome], bool]

    def explains(self, case: TestCase, outcome: Outcome) -> bool:
        if outcome.key not in self.keys:
            return False
        try:
            return self.applies(case, outcome)
        except (Inapplicable, StepFailed, CredentialError):
            return False


def _has_null_members(case: TestCase, outcome: Outcome) -> bool:
    payload = case.json() if outcome.key == "EXPECTEDVALIDOBJECT" else case.encoded_dcc()
    return isinstance(payload, dict) and any(value is None for value in payload.values())


def _signs_es256_off_p256(case: TestCase, outcome: Outcome) -> bool:
    key = case.certificate().public_key
    return (
        outcome.expected
        and parse_cose(case.hex("COSE")).alg == ES256
        and isinstance(key, ec.EllipticCurvePublicKey)
        and not isinstance(key.curve, ec.SECP256R1)
    )


def _json_names_another_holder(case: TestCase, outcome: Outcome) -> bool:
    encoded, written = case.encoded_dcc(), case.json()
    if not isinstance(encoded, dict) or not isinstance(written, dict):
        return False
    holder = ("nam", "dob")
    without_holder = [
        {key: value for key, value in payload.items() if key not in holder}
        for payload in (encoded, written)
    ]
    return without_holder[0] == without_holder[1] and encoded != written


def _refused_by_value_sets(case: TestCase, outcome: Outcome) -> bool:
    if not (outcome.expected is False and outcome.actual is True):
        return False
    kind, entry = single_entry(case.encoded_dcc())
    try:
        packaged_value_sets().check(kind, entry)
    except CredentialError as refusal:
        return refusal.stage is Stage.VALUESET
    return False


SCHEMA_KEYS = frozenset({"EXPECTEDSCHEMAVALIDATION", "EXPECTEDVALIDOBJECT"})
KNOWN_ISSUES = (
    KnownIssue(
        "NL schema expectations",
        f"{UPSTREAM_ISSUES}107 (open; in upstream's known_issues.csv for all NL files)",
        "NL files declare schema 1.0.0 yet expect it to pass on values it refuses "
        "(a dob of 1963, 1963-00, 1815-08-24; an empty co; dn or sd of 0) and to fail on "
        "values it accepts (a dob in 2023)",
        SCHEMA_KEYS,
        lambda case, outcome: case.in_folder("NL"),
    ),
    KnownIssue(
        "null members",
        f"{UPSTREAM_ISSUES}298 (open; BG 1 and 2 in upstream's known_issues.csv)",
        "the payload carries 'r': null and 't': null, as about a million BG production "
        "certificates do; the schema wants arrays or nothing",
        SCHEMA_KEYS,
        _has_null_members,
    ),
    KnownIssue(
        "HU text too long",
        f"{UPSTREAM_ISSUES}340 (HU 3 in upstream's known_issues.csv)",
        "a text is longer than the schema's maxLength",
        SCHEMA_KEYS,
        lambda case, outcome: case.in_folder("HU") and "fails maxLength" in outcome.reason,
    ),
    KnownIssue(
        "value sets are not in the schema",
        f"{UPSTREAM_ISSUES}246 (open; PL 8's country code XY)",
        "the file expects schema validation to refuse a code outside its value set (country "
        "code, test device, manufacturer); the schema checks the form only, and our own "
        "value-set stage (valueset, on the packaged value sets) is what refuses each of these",
        frozenset({"EXPECTEDSCHEMAVALIDATION"}),
        _refused_by_value_sets,
    ),
    KnownIssue(
        "certificate without DCC key usage",
        f"{UPSTREAM_ISSUES}244 (open; IS 3)",
        "EXPECTEDKEYUSAGE is false although the certificate names no DCC key usage, so by "
        "the HCERT specification (A.4) it may sign every type",
        frozenset({"EXPECTEDKEYUSAGE"}),
        lambda case, outcome: (
            outcome.expected is False and case.certificate().certificate_types is None
        ),
    ),
    KnownIssue(
        "P-384 key under ES256",
        f"{UPSTREAM_ISSUES}228 (ES 401-403 in upstream's known_issues.csv)",
        "the COSE header says ES256 (P-256 with SHA-256) but the certificate's key is on "
        "another curve; a strict verifier refuses it",
        frozenset({"EXPECTEDVERIFY"}),
        _signs_es256_off_p256,
    ),
    KnownIssue(
        "JSON names another holder",
        "found by this runner; not filed upstream",
        "JSON equals the encoded certificate (same UVCI) except for the holder's nam and dob: "
        "the JSON field was edited after encoding",
        frozenset({"EXPECTEDDECODE", "EXPECTEDVALIDJSON"}),
        _json_names_another_holder,
    ),
)


# ---- running and reporting -------------------------------------------------------------------


def run_step(step: Step, case: TestCase, runner: Runner) -> tuple[bool | None, str]:
    """Our answer to one step: succeeded or not (None: cannot be tested) and why."""
    try:
        step(case, runner)
    except Inapplicable as missing:
        return None, str(missing)
    except (CredentialError, StepFailed) as failure:
        return False, str(failure)
    return True, "succeeds"


def check_case(case: TestCase, runner: Runner) -> list[Outcome]:
    """Every expected result the file holds against ours, disagreements explained if known."""
    outcomes = []
    for expectation in EXPECTATIONS:
        expected = case.expected.get(expectation.key)
        if not isinstance(expected, bool):
            continue
        actual, reason = run_step(expectation.step, case, runner)
        outcome = Outcome(case.name, expectation.key, expected, actual, reason)
        if actual is not None and actual != expected:
            issue = next((issue for issue in KNOWN_ISSUES if issue.explains(case, outcome)), None)
            if issue is not None:
                outcome = Outcome(case.name, expectation.key, expected, actual, reason, issue.name)
        outcomes.append(outcome)
    return outcomes


def test_files(paths: list[str]) -> Iterator[tuple[str, Path]]:
    """(name to show, file) for each file named and each *.json under a directory named."""
    for given in paths:
        root = Path(given)
        if root.is_dir():
            for file in sorted(root.rglob("*.json")):
                yield file.relative_to(root).as_posix(), file
        else:
            yield given, root


def load_case(name: str, file: Path) -> TestCase | None:
    """The test case in a file, or None if the file is JSON but no test case."""
    data = json.loads(file.read_text("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("EXPECTEDRESULTS"), dict):
        return None
    return TestCase(name, file, data)


VERDICTS = ("match", "mismatch", "known issue", "not applicable")
LISTED_PER_ISSUE = 10


@dataclass
class Report:
    """All outcomes of a run, and the files that could not be read or held no test case."""

    outcomes: list[Outcome] = field(default_factory=list)
    cases: int = 0
    unreadable: list[str] = field(default_factory=list)
    not_cases: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.verdict == "mismatch"]

    @property
    def conforms(self) -> bool:
        return not self.mismatches and not self.unreadable

    def counts(self) -> dict[str, Counter[str]]:
        """Per EXPECTED* key (in procedure order) the number of outcomes of each verdict."""
        counts: dict[str, Counter[str]] = {}
        for expectation in EXPECTATIONS:
            outcomes = [outcome for outcome in self.outcomes if outcome.key == expectation.key]
            if outcomes:
                counts[expectation.key] = Counter(outcome.verdict for outcome in outcomes)
        return counts

    def table(self) -> list[str]:
        """The per-step table, in Markdown, with a totals row."""
        lines = [
            "| expected result | " + " | ".join(VERDICTS) + " |",
            "|---" * (len(VERDICTS) + 1) + "|",
        ]
        totals: Counter[str] = Counter()
        for key, counts in self.counts().items():
            totals.update(counts)
            lines.append(f"| {key} | " + " | ".join(str(counts[v]) for v in VERDICTS) + " |")
        lines.append("| **total** | " + " | ".join(f"**{totals[v]}**" for v in VERDICTS) + " |")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "conforms": self.conforms,
            "counts": {key: dict(counts) for key, counts in self.counts().items()},
            "mismatches": [_outcome_json(outcome) for outcome in self.mismatches],
            "known_issues": [
                {
                    "name": issue.name,
                    "source": issue.source,
                    "description": issue.description,
                    "outcomes": [
                        _outcome_json(outcome)
                        for outcome in self.outcomes
                        if outcome.known_issue == issue.name
                    ],
                }
                for issue in KNOWN_ISSUES
            ],
            "not_applicable": [
                _outcome_json(outcome)
                for outcome in self.outcomes
                if outcome.verdict == "not applicable"
            ],
            "unreadable": self.unreadable,
            "not_test_cases": self.not_cases,
        }


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "file": outcome.name,
        "expected_result": outcome.key,
        "expected": outcome.expected,
        "ours": outcome.actual,
        "reason": outcome.reason,
    }


def check_paths(paths: list[str], runner: Runner) -> Report:
    """Run every test file under the paths."""
    report = Report()
    for name, file in test_files(paths):
        try:
            case = load_case(name, file)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            report.unreadable.append(f"{name}: {error}")
            continue
        if case is None:
            report.not_cases.append(name)
            continue
        report.cases += 1
        report.outcomes += check_case(case, runner)
    return report


def print_report(report: Report, options: str) -> None:
    print(f"dgc-testdata conformance: {report.cases} test files ({options})\n")
    print("\n".join(report.table()))
    for expectation in EXPECTATIONS:
        if expectation.note and expectation.key in report.counts():
            print(f"\n{expectation.key}: {expectation.note}")
    if report.mismatches:
        print(f"\nMismatches ({len(report.mismatches)}):")
        for outcome in report.mismatches:
            print(f"  {_line(outcome)}")
    for issue in KNOWN_ISSUES:
        explained = [outcome for outcome in report.outcomes if outcome.known_issue == issue.name]
        if explained:
            print(f"\nKnown issue '{issue.name}' ({len(explained)}): {issue.description}.")
            print(f"  source: {issue.source}")
            for outcome in explained[:LISTED_PER_ISSUE]:
                print(f"  {_line(outcome)}")
            if len(explained) > LISTED_PER_ISSUE:
                print(f"  ... and {len(explained) - LISTED_PER_ISSUE} more (--json lists them all)")
    inapplicable = Counter(
        f"{outcome.key}: {outcome.reason}"
        for outcome in report.outcomes
        if outcome.verdict == "not applicable"
    )
    if inapplicable:
        print("\nNot applicable (the file lacks the step's input):")
        for reason, count in inapplicable.items():
            print(f"  {reason} ({count})")
    for problem in report.unreadable:
        print(f"\nunreadable: {problem}")


def _line(outcome: Outcome) -> str:
    expected = "succeeds" if outcome.expected else "fails"
    return f"{outcome.name}: {outcome.key} expects it {expected}; ours: {outcome.reason}"


def run(args: argparse.Namespace) -> int:
    schema_dir = args.schemas or default_schema_dir()
    try:
        schemas = (
            SchemaStore.from_directory(schema_dir, strict=args.strict_schema)
            if schema_dir is not None
            else None
        )
    except (OSError, ValueError) as error:
        print(f"sentinel conformance: schemas: {error}", file=sys.stderr)
        return EXIT_USAGE
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:
        print(
            f"sentinel conformance: no such file or directory: {', '.join(missing)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report = check_paths(args.paths, Runner(schemas))
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        options = (
            "--strict-schema"
            if args.strict_schema
            else "a version with no schema takes the newest of its major version"
        )
        if schemas is None:
            options += "; no schema directory, so schema steps are not applicable"
        print_report(report, options)
    return EXIT_CONFORMS if report.conforms else EXIT_MISMATCH

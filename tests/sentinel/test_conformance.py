"""`sentinel conformance dcc`: the whole of dgc-testdata, and made-up files for each verdict."""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sentinel import conformance
from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.envelope import base45, inflate, unprefix
from shared.keys import ES256
from shared.qrimage import qr_png
from tests.conftest import SHARED_DATA
from tests.shared.dcc.conftest import SCHEMA_DIR, VACCINATION_OID

DGC_TESTDATA = SHARED_DATA / "dcc" / "dgc-testdata"
ALL_TRUE = {expectation.key: True for expectation in conformance.EXPECTATIONS}
del ALL_TRUE["EXPTECTEDEXPIRED"]


@pytest.fixture(scope="module")
def schemas() -> SchemaStore:
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"the DCC schemas are not at {SCHEMA_DIR}")
    return SchemaStore.from_directory(SCHEMA_DIR)


@pytest.fixture(scope="module")
def signer() -> SpecimenSigner:
    return SpecimenSigner.generate(ES256, extended_key_usage=[VACCINATION_OID])


def dgc_file(
    signer: SpecimenSigner,
    *,
    payload: dict[str, Any] | None = None,
    expected: dict[str, bool] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A test file in dgc-testdata's layout, every stage filled in from one specimen DCC."""
    payload = payload or specimen_payload("v")
    prefixed = issue_dcc(payload, signer)
    compressed = base45(unprefix(prefixed, "HC1:"))
    cose = inflate(compressed)
    data: dict[str, Any] = {
        "JSON": payload,
        "CBOR": cbor2.dumps(payload).hex(),
        "COSE": cose.hex(),
        "COMPRESSED": compressed.hex(),
        "BASE45": prefixed[4:],
        "PREFIX": prefixed,
        "2DCODE": base64.b64encode(qr_png(prefixed)).decode(),
        "TESTCTX": {
            "VERSION": 1,
            "SCHEMA": payload.get("ver"),
            "CERTIFICATE": base64.b64encode(signer.certificate_der).decode(),
            "VALIDATIONCLOCK": (EPOCH + timedelta(days=1)).isoformat(),
            "DESCRIPTION": "made up by the tests",
        },
        "EXPECTEDRESULTS": expected if expected is not None else dict(ALL_TRUE),
    }
    data.update(fields)
    return data


def check(tmp_path: Path, name: str, data: dict[str, Any], schemas: SchemaStore) -> dict:
    """Our verdicts on one file: {EXPECTED*: (verdict, known issue)}."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    report = conformance.check_paths([str(path)], conformance.Runner(schemas))
    return {outcome.key: (outcome.verdict, outcome.known_issue) for outcome in report.outcomes}


def test_a_sound_file_matches_at_every_step(
    tmp_path: Path, signer: SpecimenSigner, schemas: SchemaStore
) -> None:
    verdicts = check(tmp_path, "XX/1.json", dgc_file(signer), schemas)
    assert verdicts == {key: ("match", None) for key in ALL_TRUE}


@pytest.mark.parametrize(
    ("fields", "failing"),
    [
        ({"PREFIX": "HL0:ABC"}, "EXPECTEDUNPREFIX"),
        ({"BASE45": "abc"}, "EXPECTEDB45DECODE"),
        ({"COMPRESSED": "78da00"}, "EXPECTEDCOMPRESSION"),
        ({"JSON": specimen_payload("v", uvci="URN:UVCI:01:XX:OTHER#A")}, "EXPECTEDDECODE"),
        ({"2DCODE": base64.b64encode(qr_png("HC1:OTHER")).decode()}, "EXPECTEDPICTUREDECODE"),
    ],
)
def test_a_broken_stage_is_found_by_its_own_step(
    tmp_path: Path, signer: SpecimenSigner, schemas: SchemaStore, fields: dict, failing: str
) -> None:
    data = dgc_file(signer, expected={failing: True}, **fields)
    assert check(tmp_path, "XX/1.json", data, schemas) == {failing: ("mismatch", None)}
    data["EXPECTEDRESULTS"] = {failing: False}
    assert check(tmp_path, "XX/1.json", data, schemas) == {failing: ("match", None)}


def test_signature_key_usage_expiry_and_schema_failures_match_false_expectations(
    tmp_path: Path, signer: SpecimenSigner, schemas: SchemaStore
) -> None:
    other_usage = SpecimenSigner.generate(ES256, extended_key_usage=[VACCINATION_OID])
    expected = {key: False for key in ("EXPECTEDVERIFY", "EXPECTEDSCHEMAVALIDATION")}
    expected |= {"EXPECTEDVALIDOBJECT": False, "EXPECTEDKEYUSAGE": False}
    expected |= {"EXPECTEDEXPIRATIONCHECK": False, "EXPTECTEDEXPIRED": False}
    payload = specimen_payload("t")
    payload["nam"]["fnt"] = "lower"
    data = dgc_file(signer, payload=payload, expected=expected)
    data["TESTCTX"]["VALIDATIONCLOCK"] = (EPOCH + timedelta(days=400)).isoformat()
    data["TESTCTX"]["CERTIFICATE"] = base64.b64encode(other_usage.certificate_der).decode()
    verdicts = check(tmp_path, "XX/1.json", data, schemas)
    assert {verdict for verdict, _ in verdicts.values()} == {"match"}
    assert set(verdicts) == set(expected)
    # Key usage is the certificate's business alone: a vaccination DSC may sign a 'v' entry
    # even where the signature step fails (dgc-testdata PL 6 expects exactly that).
    data = dgc_file(signer, expected={"EXPECTEDKEYUSAGE": True, "EXPECTEDVERIFY": False})
    data["TESTCTX"]["CERTIFICATE"] = base64.b64encode(other_usage.certificate_der).decode()
    assert check(tmp_path, "XX/2.json", data, schemas) == {
        "EXPECTEDKEYUSAGE": ("match", None),
        "EXPECTEDVERIFY": ("match", None),
    }


def test_known_issues_are_recognised_by_their_condition(
    tmp_path: Path, signer: SpecimenSigner, schemas: SchemaStore
) -> None:
    p384 = SpecimenSigner.generate(ES256, curve=ec.SECP384R1())
    data = dgc_file(p384, expected={"EXPECTEDVERIFY": True})
    assert check(tmp_path, "ES/401.json", data, schemas) == {
        "EXPECTEDVERIFY": ("known issue", "P-384 key under ES256")
    }
    unrestricted = SpecimenSigner.generate(ES256)
    data = dgc_file(unrestricted, expected={"EXPECTEDKEYUSAGE": False})
    assert check(tmp_path, "IS/3.json", data, schemas) == {
        "EXPECTEDKEYUSAGE": ("known issue", "certificate without DCC key usage")
    }
    nulls = {**specimen_payload("v"), "t": None, "r": None}
    data = dgc_file(signer, payload=nulls, expected={"EXPECTEDSCHEMAVALIDATION": True})
    assert check(tmp_path, "BG/1.json", data, schemas) == {
        "EXPECTEDSCHEMAVALIDATION": ("known issue", "null members")
    }
    edited = dgc_file(signer, expected={"EXPECTEDVALIDJSON": True, "EXPECTEDDECODE": True})
    edited["JSON"] = {**edited["JSON"], "nam": {"fn": "Other", "fnt": "OTHER"}}
    assert {verdict for verdict, _ in check(tmp_path, "PL/1.json", edited, schemas).values()} == {
        "known issue"
    }
    edited["JSON"]["v"] = []  # more than the holder differs now: no longer explained
    assert check(tmp_path, "PL/1.json", edited, schemas)["EXPECTEDDECODE"] == ("mismatch", None)
    outside = {**specimen_payload("r"), "r": [{**specimen_payload("r")["r"][0], "co": "XY"}]}
    data = dgc_file(signer, payload=outside, expected={"EXPECTEDSCHEMAVALIDATION": False})
    assert check(tmp_path, "PL/8.json", data, schemas) == {
        "EXPECTEDSCHEMAVALIDATION": ("known issue", "value sets are not in the schema")
    }
    nl = dgc_file(signer, expected={"EXPECTEDSCHEMAVALIDATION": False})
    # Schema-valid with every code in its value set: nothing explains expecting a failure.
    assert check(tmp_path, "PL/9.json", nl, schemas) == {
        "EXPECTEDSCHEMAVALIDATION": ("mismatch", None)
    }
    assert check(tmp_path, "NL/2DCode/raw/1.json", nl, schemas) == {
        "EXPECTEDSCHEMAVALIDATION": ("known issue", "NL schema expectations")
    }
    assert check(tmp_path, "SE/2DCode/raw/1.json", nl, schemas) == {
        "EXPECTEDSCHEMAVALIDATION": ("mismatch", None)
    }


def test_files_lacking_a_steps_input_are_not_applicable(
    tmp_path: Path, signer: SpecimenSigner, schemas: SchemaStore
) -> None:
    data = dgc_file(signer, expected={"EXPECTEDPICTUREDECODE": True, "EXPECTEDCOMPRESSION": True})
    del data["2DCODE"], data["COMPRESSED"]
    verdicts = check(tmp_path, "XX/1.json", data, schemas)
    assert set(verdicts.values()) == {("not applicable", None)}


def test_the_whole_of_dgc_testdata_has_no_unexplained_mismatch(schemas: SchemaStore) -> None:
    """Every disagreement is a named known issue of the data; strictly, the DCCs declaring a
    version with no schema (IE's 1.0.4) disagree too."""
    if not DGC_TESTDATA.is_dir():
        pytest.skip(f"dgc-testdata is not at {DGC_TESTDATA} (../shared/data/dcc/dgc-testdata)")
    report = conformance.check_paths([str(DGC_TESTDATA)], conformance.Runner(schemas))
    assert report.cases == 425
    assert report.unreadable == []
    assert report.conforms
    counts = report.counts()
    assert set(counts) == {expectation.key for expectation in conformance.EXPECTATIONS}
    assert counts["EXPECTEDVERIFY"]["match"] == sum(counts["EXPECTEDVERIFY"].values())
    used = {outcome.known_issue for outcome in report.outcomes} - {None}
    assert used == {issue.name for issue in conformance.KNOWN_ISSUES} - {"P-384 key under ES256"}

    def explained_by(issue: str) -> set[tuple[str, str]]:
        return {(o.name, o.key) for o in report.outcomes if o.known_issue == issue}

    # Our value-set stage refuses PL 7, 8 and 9 (device 9999, country XY, ORG-99999999).
    assert explained_by("value sets are not in the schema") == {
        (f"PL/{version}/2DCode/raw/{number}.json", "EXPECTEDSCHEMAVALIDATION")
        for version in ("1.0.0", "1.2.1", "1.3.0")
        for number in (7, 8, 9)
    }
    assert explained_by("certificate without DCC key usage") == {
        ("IS/2DCode/raw/3.json", "EXPECTEDKEYUSAGE")
    }

    strict = conformance.Runner(SchemaStore(schemas.schemas, strict=True))
    strict_report = conformance.check_paths([str(DGC_TESTDATA / "IE")], strict)
    assert {(o.name, o.key) for o in strict_report.mismatches} == {
        (f"2DCode/Raw/{number}.json", "EXPECTEDSCHEMAVALIDATION") for number in (1, 2, 3, 4)
    }
    for outcome in strict_report.mismatches:
        assert "no schema for version 1.0.4" in outcome.reason


def test_strict_schema_is_a_switch_of_the_command(
    tmp_path: Path, signer: SpecimenSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"the DCC schemas are not at {SCHEMA_DIR}")
    unpublished = {**specimen_payload("v"), "ver": "1.0.4"}
    data = dgc_file(signer, payload=unpublished, expected={"EXPECTEDSCHEMAVALIDATION": True})
    (tmp_path / "IE.json").write_text(json.dumps(data))
    parser = argparse.ArgumentParser()
    conformance.add_arguments(parser)
    command = ["dcc", str(tmp_path), "--schemas", str(SCHEMA_DIR), "--json"]
    assert conformance.run(parser.parse_args(command)) == conformance.EXIT_CONFORMS
    strict = parser.parse_args([*command, "--strict-schema"])
    assert conformance.run(strict) == conformance.EXIT_MISMATCH
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "no schema for version 1.0.4" in report["mismatches"][0]["reason"]


def test_the_command_prints_the_table_and_exits_by_the_verdict(
    tmp_path: Path, signer: SpecimenSigner
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(dgc_file(signer)))
    bad = dgc_file(signer, expected={"EXPECTEDB45DECODE": False})
    (folder / "bad.json").write_text(json.dumps(bad))
    (folder / "other.json").write_text("[1, 2]")
    (folder / "broken.json").write_text("{")
    command = [sys.executable, "-m", "sentinel", "conformance", "dcc", str(folder)]
    if SCHEMA_DIR.is_dir():
        command += ["--schemas", str(SCHEMA_DIR)]

    def sentinel(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra], capture_output=True, text=True, timeout=120, check=False
        )

    result = sentinel("--json")
    assert result.stdout, result.stderr[-2000:]
    assert result.returncode == conformance.EXIT_MISMATCH
    report = json.loads(result.stdout)
    assert report["cases"] == 2
    assert report["not_test_cases"] == ["other.json"]
    assert report["unreadable"][0].startswith("broken.json")
    assert [(m["file"], m["expected_result"]) for m in report["mismatches"]] == [
        ("bad.json", "EXPECTEDB45DECODE")
    ]
    (folder / "bad.json").unlink()
    (folder / "broken.json").unlink()
    result = sentinel()
    assert result.returncode == conformance.EXIT_CONFORMS, result.stdout[-2000:]
    assert "| EXPECTEDVERIFY | 1 | 0 | 0 | 0 |" in result.stdout
    assert "| **total** |" in result.stdout

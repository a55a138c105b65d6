"""`sentinel verify` through a real process: EU DCCs, health codes, venue codes; and its bench."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel import verify
from sentinel.bench import verify as bench
from shared import healthcode, venuecode
from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.dcc.value_sets import TEST_DEVICES, VALUE_SETS_DIR_ENV
from shared.keys import ES256, KeyPurpose, SigningKey, b64url
from shared.messages import PublishedKey
from shared.qrimage import qr_png
from tests.shared.dcc.conftest import SCHEMA_DIR, TEST_OID

AT = (EPOCH + timedelta(days=1)).isoformat()


def sentinel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verified_json(*args: str) -> tuple[int, dict]:
    result = sentinel("verify", "--json", *args)
    assert result.stdout, result.stderr[-2000:]
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def test_signer() -> SpecimenSigner:
    """A DCC signer whose certificate allows test certificates only."""
    return SpecimenSigner.generate(ES256, extended_key_usage=[TEST_OID])


@pytest.fixture
def signer_pem(tmp_path: Path, test_signer: SpecimenSigner) -> Path:
    path = tmp_path / "signers" / "dsc.pem"
    path.parent.mkdir()
    path.write_bytes(test_signer.pem)
    return path


def test_a_dcc_verifies_with_its_claims_and_schema(
    signer_pem: Path, test_signer: SpecimenSigner
) -> None:
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"the DCC schemas are not at {SCHEMA_DIR}")
    text = issue_dcc(specimen_payload("t", uvci="URN:UVCI:01:XX:CLI/1#Q"), test_signer)
    status, result = verified_json(
        "--trust", str(signer_pem.parent), "--schemas", str(SCHEMA_DIR), "--at", AT, text
    )
    assert status == 0
    assert result == {
        "ok": True,
        "kind": "dcc",
        "failed_stage": None,
        "reason": None,
        "claims": {
            "type": "test",
            "uvci": "URN:UVCI:01:XX:CLI/1#Q",
            "country": "XX",
            "issued_at": EPOCH.isoformat(),
            "expires_at": (EPOCH + timedelta(days=365)).isoformat(),
            "signer_kid": test_signer.kid.hex(),
            "schema_version": "1.3.0",
            "schema_declared": "1.3.0",
            "not_checked": [],
        },
    }


def test_a_dcc_the_signer_may_not_sign_fails_at_key_usage(
    signer_pem: Path, test_signer: SpecimenSigner, tmp_path: Path
) -> None:
    text = issue_dcc(specimen_payload("v"), test_signer)
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    (empty / "1.3.0.json").write_text("{}")  # accepts anything: key usage must still refuse
    status, result = verified_json(
        "--trust", str(signer_pem), "--schemas", str(empty), "--at", AT, text
    )
    assert status == 1
    assert (result["ok"], result["failed_stage"]) == (False, "keyusage")
    assert "not vaccination" in result["reason"]


def test_host_codes_verify_against_published_keys_and_an_image(tmp_path: Path) -> None:
    health_key, venue_key = SigningKey.generate(), SigningKey.generate()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps(
            {
                "keys": [
                    PublishedKey.of(health_key, KeyPurpose.HEALTH).model_dump(mode="json"),
                    PublishedKey.of(venue_key, KeyPurpose.VENUE).model_dump(mode="json"),
                ]
            }
        )
    )
    now = datetime.now(UTC)
    code = healthcode.new_code(
        person_ref="p-cli",
        kind=healthcode.CodeKind.DYNAMIC,
        colour=healthcode.Colour.GREEN,
        test=None,
        now=now,
    )
    png = tmp_path / "code.png"
    png.write_bytes(qr_png(healthcode.issue(code, health_key)))
    status, result = verified_json("--trust", str(keys_file), "--image", str(png))
    assert (status, result["kind"], result["ok"]) == (0, "health", True)
    assert result["claims"]["person_ref"] == "p-cli"
    assert result["claims"]["colour"] == "green"

    url = venuecode.issue_url(venuecode.VenueCode("v-42"), "https://s.example", venue_key)
    plain = sentinel("verify", "--trust", str(keys_file), url)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("VERIFIED venue code")
    assert "venue_id: v-42" in plain.stdout
    forged = verify.verify_text(
        url.replace("v-42", "v-43"), verify.load_trust([keys_file]), now=now, schemas=None
    )
    assert (forged["ok"], forged["failed_stage"]) == (False, "signature")
    assert verify.summary(forged).startswith("NOT VERIFIED venue code: signature:")


@pytest.mark.parametrize(
    "arguments",
    [
        ["HC1:X", "--image", "x.png"],  # both a text and an image
        ["--trust", "/nonexistent/dsc.pem", "HC1:X"],
        ["--at", "yesterday", "HC1:X"],
    ],
)
def test_usage_errors_exit_2(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from sentinel.cli import main

    assert main(["verify", *arguments]) == verify.EXIT_USAGE
    assert "sentinel verify:" in capsys.readouterr().err


def test_published_keys_load_as_a_list_or_under_keys(tmp_path: Path) -> None:
    key = SigningKey.generate()
    published = [PublishedKey.of(key, KeyPurpose.VENUE).model_dump(mode="json")]
    as_list, as_object = tmp_path / "list.json", tmp_path / "object.json"
    as_list.write_text(json.dumps(published))
    as_object.write_text(json.dumps({"keys": published}))
    for path in (as_list, as_object):
        assert len(verify.load_trust([path]).candidates(key.kid, KeyPurpose.VENUE)) == 1
    signer = SpecimenSigner.generate(ES256)
    with_signers = tmp_path / "config.json"
    with_signers.write_text(
        json.dumps({"keys": published, "dcc_signers": [b64url(signer.certificate_der)]})
    )
    trust = verify.load_trust([with_signers])
    assert len(trust.candidates(signer.kid, KeyPurpose.DCC)) == 1
    published[0]["kid"] = published[0]["kid"][::-1]
    as_list.write_text(json.dumps(published))
    with pytest.raises(verify.UsageError, match="does not match"):
        verify.load_trust([as_list])


def test_text_that_is_no_credential_fails_at_unprefix() -> None:
    result = verify.verify_text("hello", verify.load_trust([]), now=EPOCH, schemas=None)
    assert result["ok"] is False
    assert (result["kind"], result["failed_stage"]) == ("unknown", "unprefix")


def test_a_dcc_without_schemas_says_the_schema_was_not_checked(
    test_signer: SpecimenSigner, signer_pem: Path
) -> None:
    text = issue_dcc(specimen_payload("t"), test_signer)
    trust = verify.load_trust([signer_pem])
    result = verify.verify_text(text, trust, now=EPOCH, schemas=None, show_payload=True)
    assert result["claims"]["not_checked"] == ["schema"]
    assert result["claims"]["payload"]["nam"]["fnt"] == "SPECIMEN"
    assert "not checked: schema" in verify.summary(result)


def test_a_dcc_with_an_unknown_code_fails_unless_newer_value_sets_know_it(
    test_signer: SpecimenSigner,
    signer_pem: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = specimen_payload("t")
    payload["t"][0] |= {"tt": "LP217198-3", "ma": "9999"}  # a rapid test, a device unknown
    text = issue_dcc(payload, test_signer)
    trust = verify.load_trust([signer_pem])
    monkeypatch.delenv(VALUE_SETS_DIR_ENV, raising=False)
    result = verify.verify_text(text, trust, now=EPOCH, schemas=None)
    assert (result["ok"], result["failed_stage"]) == (False, "valueset")
    assert result["reason"].startswith("$.t[0].ma is not a code of the value set")

    newer = tmp_path / "value-sets"
    newer.mkdir()
    devices = {"valueSetId": TEST_DEVICES, "valueSetDate": "2023-06-30"}
    devices["valueSetValues"] = {"9999": {"display": "a device", "active": True}}
    (newer / "test-manf.json").write_text(json.dumps(devices))
    monkeypatch.setenv(VALUE_SETS_DIR_ENV, str(newer))
    value_sets = verify.load_value_sets()
    assert verify.verify_text(text, trust, now=EPOCH, schemas=None, value_sets=value_sets)["ok"]

    (newer / "test-manf.json").write_text("[]")
    from sentinel.cli import main

    assert main(["verify", "--trust", str(signer_pem), "--at", AT, text]) == verify.EXIT_USAGE
    assert f"${VALUE_SETS_DIR_ENV}:" in capsys.readouterr().err


def test_the_bench_times_each_credential_and_its_signature() -> None:
    schemas = SchemaStore.from_directory(SCHEMA_DIR) if SCHEMA_DIR.is_dir() else None
    credentials = bench.credentials(schemas)
    bench.measure(credentials, iterations=20)
    names = [credential.name for credential in credentials]
    assert names == [
        "EU DCC, ES256",
        "EU DCC, PS256 (RSA)",
        "health code (DS1:)",
        "venue code (URL)",
    ]
    for credential in credentials:
        assert len(credential.verify_us) == len(credential.signature_us) == 20
    table = bench.table(credentials)
    assert len(table) == 2 + len(credentials)
    expected_source = "dgc-testdata" if bench.DGC_TESTDATA.is_dir() else "specimen"
    assert credentials[0].source.startswith(expected_source)
    assert {row["credential"] for row in bench.as_json(credentials)} == set(names)

"""`sentinel card` (hardware.smartcard.cli): options, exit statuses, masked output, via pcscd."""

import json
import subprocess
import sys

import pytest

from hardware.smartcard import cli
from hardware.smartcard.specimen import SPECIMEN_TD3, issue_passport
from tests.conftest import PCSCD_GROUP
from tests.hardware.smartcard.conftest import REPO_ROOT_FOR_SUBPROCESS

pytestmark = pytest.mark.xdist_group(PCSCD_GROUP)  # one pcscd, one worker


def test_a_bad_mrz_is_a_usage_error(capsys):
    assert cli.main(["read", "--mrz", "L898902C3,7408,120415", "--json"]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert json.loads(out)["exit"] == cli.EXIT_USAGE
    assert "YYMMDD" in err
    assert "L898902C3" not in err


def test_a_missing_csca_file_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "none.pem"
    assert cli.main(["read", "--csca", str(missing)]) == cli.EXIT_USAGE


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_card_read_through_pcscd(slots, pki, tmp_path, capsys):
    first, second = slots
    first.insert(issue_passport(SPECIMEN_TD3, pki=pki, dg2=True))
    second.insert(issue_passport(uid=bytes.fromhex("0411223344")))
    csca = tmp_path / "csca.pem"
    csca.write_bytes(pki.csca_pem)
    reader = ["--reader", first.reader, "--timeout", "5"]

    status = cli.main(["read", *reader, "--mrz", "L898902C3,740812,120415", "--dg2"])
    out, _ = capsys.readouterr()
    assert status == cli.EXIT_READ  # no CSCA given: passive authentication not configured
    assert "document: P UTO L8*****C3 (TD3)" in out
    assert "name: E*******, A*** M****" in out
    assert "passive authentication not configured" in out
    assert "face image: jpeg" in out
    assert "L898902C" not in out and "ERIKSSON" not in out

    status = cli.main(["read", *reader, "--mrz", "L898902C3,1974-08-12,2012-04-15"])
    assert status == cli.EXIT_READ
    status = cli.main(["read", *reader, "--mrz", SPECIMEN_TD3, "--csca", str(csca), "--json"])
    assert status == cli.EXIT_READ
    out, _ = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    assert result["document_number"] == "L8*****C3"
    assert result["checks"]["passive_authentication"]["outcome"] == "passed"

    status = cli.main(["read", *reader, "--mrz", "L898902C3,740812,120415", "--reveal", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["surname"] == "ERIKSSON"
    fields = ("document_number", "given_names", "birth_date", "expiry_date", "nationality", "sex")
    assert {name: result[name] for name in fields} == {
        "document_number": "L898902C3",
        "given_names": "ANNA MARIA",
        "birth_date": "740812",
        "expiry_date": "120415",
        "nationality": "UTO",
        "sex": "F",
    }

    assert cli.main(["read", *reader, "--mrz", "L898902C3,740812,120416"]) == (
        cli.EXIT_ACCESS_DENIED
    )
    assert "Basic Access Control refused" in capsys.readouterr().err

    assert cli.main(["read", "--reader", second.reader, "--json"]) == cli.EXIT_READ
    assert json.loads(capsys.readouterr().out)["uid"] == "0411223344"

    assert cli.main(["read", "--reader", "no such reader"]) == cli.EXIT_NO_READER
    assert "no reader named like" in capsys.readouterr().err

    second.remove()
    assert cli.main(["read", "--reader", second.reader, "--timeout", "0.2"]) == cli.EXIT_NO_READ
    assert "no card on" in capsys.readouterr().err

    assert cli.main(["readers", "--json"]) == cli.EXIT_READ
    listed = {r["reader"]: r["atr"] for r in json.loads(capsys.readouterr().out)["readers"]}
    assert listed[first.reader] is not None
    assert listed[second.reader] is None


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_the_module_runs_as_a_program(slots):
    first, _ = slots
    first.insert(issue_passport())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hardware.smartcard.cli",
            "read",
            "--reader",
            first.reader,
            "--mrz",
            "L898902C3,740812,120415",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT_FOR_SUBPROCESS,
        check=False,
    )
    assert done.returncode == cli.EXIT_CHECK_FAILED, done.stderr
    assert json.loads(done.stdout)["checks"]["passive_authentication"]["reason"] == (
        "the document has no EF.SOD"
    )

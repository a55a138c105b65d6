"""APDU and BER-TLV encoding, EF.COM, DG1, DG2, and EF.SOD passive authentication."""

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.smartcard.apdu import ApduError, CommandApdu, ResponseApdu
from hardware.smartcard.lds import (
    TlvError,
    build_dg1,
    build_dg2,
    build_ef_com,
    decode_tlv,
    encode_tlv,
    face_image,
    iter_tlv,
    parse_dg1,
    parse_ef_com,
)
from hardware.smartcard.sod import Outcome, build_sod, load_csca_list, parse_sod, verify_sod
from hardware.smartcard.specimen import SPECIMEN_FACE, SPECIMEN_TD1, SPECIMEN_TD3, make_test_pki

H = bytes.fromhex


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        ("00A4040C07A0000002471001", CommandApdu(0, 0xA4, 4, 0x0C, H("A0000002471001"))),
        ("00B0000004", CommandApdu(0, 0xB0, 0, 0, le=4)),
        ("00B0000000", CommandApdu(0, 0xB0, 0, 0, le=256)),
        ("0084000008", CommandApdu(0, 0x84, 0, 0, le=8)),
        ("0CB000000D9701048E08ED6705417E96BA5500", None),
        ("00B00000000400", CommandApdu(0, 0xB0, 0, 0, le=1024)),
        ("FFCA000000", CommandApdu(0xFF, 0xCA, 0, 0, le=256)),
        ("0020000100", CommandApdu(0, 0x20, 0, 1, le=256)),
    ],
)
def test_command_apdus_round_trip(raw, command):
    parsed = CommandApdu.parse(H(raw))
    if command is not None:
        assert parsed == command
    assert parsed.to_bytes() == H(raw)


@given(
    st.binary(max_size=300),
    st.one_of(st.none(), st.integers(1, 65536)),
)
def test_any_command_apdu_round_trips(data, le):
    command = CommandApdu(0x00, 0xB0, 0x01, 0x02, data, le)
    assert CommandApdu.parse(command.to_bytes()) == command


@given(st.binary(max_size=40))
def test_any_bytes_parse_as_an_apdu_or_raise_apdu_error(raw):
    with contextlib.suppress(ApduError):
        CommandApdu.parse(raw)


def test_responses():
    assert ResponseApdu.parse(H("60145F019000")) == ResponseApdu(H("60145F01"), 0x9000)
    assert ResponseApdu.parse(H("6A82")).sw == 0x6A82
    with pytest.raises(ApduError):
        ResponseApdu.parse(b"\x90")


def test_tlv_lengths_and_multibyte_tags():
    for size in (0, 1, 127, 128, 255, 256, 65535, 70000):
        value = bytes(size)
        assert decode_tlv(encode_tlv(0x5F1F, value), 0x5F1F) == value
    assert encode_tlv(0x5F1F, b"ab") == H("5F1F026162")
    assert encode_tlv(0x77, bytes(300))[:4] == H("7782012C")
    for bad in ("5F", "61", "6105", "61800000", "618401020304", "5F1F8101"):
        with pytest.raises(TlvError):
            list(iter_tlv(H(bad)))


@given(st.binary(max_size=64))
def test_any_bytes_iterate_as_tlv_or_raise_tlv_error(raw):
    with contextlib.suppress(TlvError):
        list(iter_tlv(raw))


def test_ef_com_and_dg1():
    # EF.COM of Part 11, Appendix D.4.
    com = parse_ef_com(H("60145F0104303130365F36063034303030305C026175"))
    assert (com.lds_version, com.unicode_version, com.data_groups) == ("0106", "040000", (1, 2))
    assert parse_ef_com(build_ef_com((1, 2, 14))).data_groups == (1, 2, 14)
    for mrz in (SPECIMEN_TD3, SPECIMEN_TD1):
        dg1 = build_dg1(mrz)
        assert dg1[:3] in (H("615B5F"), H("615D5F"))
        assert parse_dg1(dg1) == mrz.replace("\n", "")
    with pytest.raises(TlvError):
        parse_dg1(encode_tlv(0x61, encode_tlv(0x5F20, b"x")))
    with pytest.raises(TlvError):
        parse_ef_com(encode_tlv(0x60, encode_tlv(0x5C, b"\x99")))


def test_dg2_face_image_is_found():
    dg2 = build_dg2(SPECIMEN_FACE)
    assert face_image(dg2) == ("jpeg", SPECIMEN_FACE)
    assert face_image(build_dg2(b"\x00\x00\x00\x0cjP  ", image_type=1)) == (
        "jpeg2000",
        b"\x00\x00\x00\x0cjP  ",
    )
    assert face_image(b"\x75\x00") is None
    assert face_image(b"garbage") is None


# --- passive authentication ------------------------------------------------------------------


@pytest.fixture(scope="module", params=["ec", "rsa"])
def module_pki(request):
    return make_test_pki(request.param)


def _groups():
    return {1: build_dg1(SPECIMEN_TD3), 2: build_dg2(SPECIMEN_FACE)}


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_a_good_sod_passes(module_pki, algorithm):
    groups = _groups()
    sod = build_sod(groups, module_pki.ds_key, module_pki.ds, hash_algorithm=algorithm)
    parsed = parse_sod(sod)
    assert parsed.hash_algorithm == algorithm
    assert set(parsed.hashes) == {1, 2}
    result = verify_sod(sod, groups, [module_pki.csca])
    assert result.outcome is Outcome.PASSED, result.reason
    assert (result.signature, result.certificate, result.hashes) == (Outcome.PASSED,) * 3
    assert result.data_groups == (1, 2)


def test_without_a_csca_list_the_signature_and_hashes_are_checked(module_pki):
    groups = _groups()
    sod = build_sod(groups, module_pki.ds_key, module_pki.ds)
    result = verify_sod(sod, groups, None)
    assert result.outcome is Outcome.NOT_CONFIGURED
    assert (result.signature, result.hashes) == (Outcome.PASSED, Outcome.PASSED)
    tampered = {**groups, 1: build_dg1(SPECIMEN_TD3.replace("ANNA", "ANNE"))}
    assert verify_sod(sod, tampered, None).outcome is Outcome.FAILED


def test_a_changed_data_group_fails(module_pki):
    groups = _groups()
    sod = build_sod(groups, module_pki.ds_key, module_pki.ds)
    changed = {**groups, 2: build_dg2(SPECIMEN_FACE + b"x")}
    result = verify_sod(sod, changed, [module_pki.csca])
    assert (result.outcome, result.hashes) == (Outcome.FAILED, Outcome.FAILED)
    assert result.reason == "DG2's hash differs from EF.SOD's"
    result = verify_sod(sod, {**groups, 3: b"\x63\x00"}, [module_pki.csca])
    assert result.reason == "DG3 is not in EF.SOD"


def test_a_document_signer_of_another_csca_fails(module_pki):
    groups = _groups()
    sod = build_sod(groups, module_pki.ds_key, module_pki.ds)
    other = make_test_pki("ec", country="XX")
    result = verify_sod(sod, groups, [other.csca])
    assert (result.outcome, result.certificate) == (Outcome.FAILED, Outcome.FAILED)
    assert "no CSCA certificate of the list" in result.reason
    # Same subject name, other key: the DS certificate's signature does not verify.
    same_name = make_test_pki("ec")
    assert "does not verify" in verify_sod(sod, groups, [same_name.csca]).reason


def test_a_signature_by_another_key_fails(module_pki):
    groups = _groups()
    other = make_test_pki("ec")
    # Signed with another key but carrying our DS certificate.
    sod = build_sod(groups, other.ds_key, module_pki.ds)
    result = verify_sod(sod, groups, [module_pki.csca])
    assert (result.outcome, result.signature) == (Outcome.FAILED, Outcome.FAILED)


def test_an_expired_document_signer_fails(module_pki):
    groups = _groups()
    sod = build_sod(groups, module_pki.ds_key, module_pki.ds)
    later = datetime.now(UTC) + timedelta(days=400)
    result = verify_sod(sod, groups, [module_pki.csca], at=later)
    assert "outside its validity period" in result.reason


@pytest.mark.parametrize("sod", [b"", H("7700"), H("770330010A"), encode_tlv(0x77, b"\x30\x00")])
def test_garbage_sod_fails_cleanly(sod):
    result = verify_sod(sod, _groups(), None)
    assert result.outcome is Outcome.FAILED
    assert "EF.SOD" in result.reason


def test_csca_lists_from_a_file_or_a_folder(tmp_path, module_pki):
    other = make_test_pki("ec")
    (tmp_path / "a.pem").write_bytes(module_pki.csca_pem + other.csca_pem)
    (tmp_path / "notes.txt").write_text("not a certificate")
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "b.der").write_bytes(other.ds.public_bytes(serialization.Encoding.DER))
    assert len(load_csca_list(tmp_path / "a.pem")) == 2
    assert len(load_csca_list(tmp_path)) == 3
    with pytest.raises(ValueError, match="not a PEM or DER"):
        load_csca_list(tmp_path / "notes.txt")


@pytest.fixture(scope="module")
def good_sod():
    pki = make_test_pki("ec")
    return build_sod(_groups(), pki.ds_key, pki.ds), pki


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_damaged_sod_never_raises(good_sod, data):
    """Bytes flipped, cut or added anywhere in EF.SOD: a failed outcome, never an exception."""
    sod, pki = good_sod
    damaged = bytearray(sod)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        index = data.draw(st.integers(0, len(damaged) - 1))
        if action == "flip":
            damaged[index] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del damaged[index : index + data.draw(st.integers(1, 40))]
        else:
            damaged[index:index] = data.draw(st.binary(min_size=1, max_size=8))
        if not damaged:
            break
    result = verify_sod(bytes(damaged), _groups(), [pki.csca])
    if bytes(damaged) != sod:
        assert result.outcome in (Outcome.FAILED, Outcome.PASSED)


@given(st.binary(max_size=200))
def test_random_bytes_as_a_sod_fail_cleanly(raw):
    assert verify_sod(encode_tlv(0x77, raw), _groups(), None).outcome is Outcome.FAILED

"""BAC and secure messaging against every intermediate value of Doc 9303 Part 11, Appendix D.

D.2 key derivation from the MRZ information, D.3 mutual authentication and session keys
with the example's RND.IFD, K.IFD, RND.IC, K.IC, and D.4 the protected SELECT EF.COM and
the two READ BINARY of EF.COM with their responses. Then the same exchange run for real:
our reader against our virtual card, both fed the example's random numbers, must put
exactly the published APDUs on the wire. Last, the example's responses with DO'99' left out,
as some cards send them: the status word is then the response's own.
"""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.smartcard.apdu import CommandApdu, ResponseApdu, read_binary, select_file
from hardware.smartcard.bac import (
    TAG_ENCRYPTED,
    TAG_MAC,
    TAG_STATUS,
    BacKeys,
    BacTerminal,
    SecureMessaging,
    adjust_parity,
    card_authenticate,
    derive_key,
    initial_ssc,
    key_seed,
    pad,
    retail_mac,
    session_keys,
    tdes_decrypt,
    tdes_encrypt,
)
from hardware.smartcard.emrtd import EmrtdSession
from hardware.smartcard.errors import AccessDenied, SecureMessagingError
from hardware.smartcard.lds import EF_COM, build_ef_com, encode_tlv, parse_ef_com
from hardware.smartcard.mrz import MrzInformation
from hardware.smartcard.virtual_card import VirtualPassport

H = bytes.fromhex

# D.2
MRZ_INFORMATION = "L898902C<369080619406236"
SHA1_OF_MRZ_INFORMATION = H("239AB9CB282DAF66231DC5A4DF6BFBAEDF477565")
K_SEED = H("239AB9CB282DAF66231DC5A4DF6BFBAE")
K_ENC_BEFORE_PARITY = H("AB94FCEDF2664EDFB9B291F85D7F77F2")
K_ENC = H("AB94FDECF2674FDFB9B391F85D7F76F2")
K_MAC = H("7962D9ECE03D1ACD4C76089DCE131543")
# D.3
RND_IC = H("4608F91988702212")
RND_IFD = H("781723860C06C226")
K_IFD = H("0B795240CB7049B01C19B33E32804F0B")
S = H("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B")
E_IFD = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
M_IFD = H("5F1448EEA8AD90A7")
CMD_DATA = E_IFD + M_IFD
K_IC = H("0B4F80323EB3191CB04970CB4052790B")
R = H("4608F91988702212781723860C06C2260B4F80323EB3191CB04970CB4052790B")
E_IC = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F")
M_IC = H("2F2D235D074D7449")
RESP_DATA = E_IC + M_IC
KS_SEED = H("0036D272F5C350ACAC50C3F572D23600")
KS_ENC = H("979EC13B1CBFE9DCD01AB0FED307EAE5")
KS_MAC = H("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = 0x887022120C06C226
# D.4, SELECT EF.COM
SELECT_HEADER = H("0CA4020C80000000")
SELECT_PADDED_DATA = H("011E800000000000")
SELECT_ENCRYPTED = H("6375432908C044F6")
SELECT_DO87 = H("8709016375432908C044F6")
SELECT_M = H("0CA4020C800000008709016375432908C044F6")
SELECT_N = H("887022120C06C2270CA4020C800000008709016375432908C044F68000000000")
SELECT_CC = H("BF8B92D635FF24F8")
SELECT_PROTECTED = H("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
SELECT_RAPDU = H("990290008E08FA855A5D4C50A8ED9000")
SELECT_K = H("887022120C06C2289902900080000000")
SELECT_CC_RESPONSE = H("FA855A5D4C50A8ED")
# D.4, READ BINARY of the first 4 bytes
READ4_HEADER = H("0CB0000080000000")
READ4_DO97 = H("970104")
READ4_M = H("0CB0000080000000970104")
READ4_N = H("887022120C06C2290CB00000800000009701048000000000")
READ4_CC = H("ED6705417E96BA55")
READ4_PROTECTED = H("0CB000000D9701048E08ED6705417E96BA5500")
READ4_RAPDU = H("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000")
READ4_K = H("887022120C06C22A8709019FF0EC34F99226519902900080")
READ4_CC_RESPONSE = H("AD55CC17140B2DED")
READ4_DATA = H("60145F01")
# D.4, READ BINARY of the remaining 18 bytes from offset 4
READ18_DO97 = H("970112")
READ18_CC = H("2EA28A70F3C7B535")
READ18_PROTECTED = H("0CB000040D9701128E082EA28A70F3C7B53500")
READ18_RAPDU = H(
    "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000"
)
READ18_CC_RESPONSE = H("C8B2787EAEA07D74")
READ18_DATA = H("04303130365F36063034303030305C026175")
EF_COM_CONTENT = READ4_DATA + READ18_DATA


def _from(*values):
    """A `random` that hands out the example's numbers in order."""
    queue = list(values)

    def take(size):
        value = queue.pop(0)
        assert len(value) == size
        return value

    return take


# --- D.2 -----------------------------------------------------------------------------------


def test_d2_key_seed_and_document_basic_access_keys():
    info = MrzInformation("L898902C<", "690806", "940623")
    assert info.key_input() == MRZ_INFORMATION
    assert hashlib.sha1(MRZ_INFORMATION.encode()).digest() == SHA1_OF_MRZ_INFORMATION
    assert key_seed(MRZ_INFORMATION) == K_SEED
    assert hashlib.sha1(K_SEED + b"\x00\x00\x00\x01").digest()[:16] == K_ENC_BEFORE_PARITY
    assert adjust_parity(K_ENC_BEFORE_PARITY) == K_ENC
    assert derive_key(K_SEED, 1) == K_ENC
    assert derive_key(K_SEED, 2) == K_MAC
    keys = BacKeys.from_mrz_information(MRZ_INFORMATION)
    assert (keys.k_enc, keys.k_mac) == (K_ENC, K_MAC)
    assert "AB94" not in repr(keys)


# --- D.3 -----------------------------------------------------------------------------------


def test_d3_the_readers_cryptogram():
    assert RND_IFD + RND_IC + K_IFD == S
    assert tdes_encrypt(K_ENC, S) == E_IFD
    assert retail_mac(K_MAC, E_IFD) == M_IFD
    terminal = BacTerminal(BacKeys(K_ENC, K_MAC), _from(RND_IFD, K_IFD))
    cmd_data, rnd_ifd, k_ifd = terminal.authenticate_command(RND_IC)
    assert (cmd_data, rnd_ifd, k_ifd) == (CMD_DATA, RND_IFD, K_IFD)


def test_d3_the_cards_answer_and_the_session_keys():
    response, card_session = card_authenticate(BacKeys(K_ENC, K_MAC), CMD_DATA, RND_IC, K_IC)
    assert response == RESP_DATA
    assert tdes_decrypt(K_ENC, E_IC) == R
    assert retail_mac(K_MAC, E_IC) == M_IC
    assert bytes(a ^ b for a, b in zip(K_IFD, K_IC, strict=True)) == KS_SEED
    assert session_keys(K_IFD, K_IC) == (KS_ENC, KS_MAC)
    assert initial_ssc(RND_IC, RND_IFD) == SSC
    assert (card_session.ks_enc, card_session.ks_mac, card_session.ssc) == (KS_ENC, KS_MAC, SSC)
    terminal = BacTerminal(BacKeys(K_ENC, K_MAC))
    session = terminal.open_session(RESP_DATA, RND_IC, RND_IFD, K_IFD)
    assert (session.ks_enc, session.ks_mac, session.ssc) == (KS_ENC, KS_MAC, SSC)


def test_d3_wrong_keys_are_refused_on_both_sides():
    other = BacKeys.from_mrz_information("L898902C<369080619406237")
    with pytest.raises(AccessDenied, match="MAC does not match"):
        card_authenticate(other, CMD_DATA, RND_IC, K_IC)
    with pytest.raises(AccessDenied, match="nonce echoed back is wrong"):
        card_authenticate(BacKeys(K_ENC, K_MAC), CMD_DATA, H("0000000000000000"), K_IC)
    with pytest.raises(AccessDenied):
        BacTerminal(other).open_session(RESP_DATA, RND_IC, RND_IFD, K_IFD)


# --- D.4 -----------------------------------------------------------------------------------


def test_d4_the_intermediate_values():
    assert pad(H("0CA4020C")) == SELECT_HEADER
    assert pad(H("011E")) == SELECT_PADDED_DATA
    assert tdes_encrypt(KS_ENC, SELECT_PADDED_DATA) == SELECT_ENCRYPTED
    assert SELECT_HEADER + SELECT_DO87 == SELECT_M
    assert pad(H("887022120C06C227") + SELECT_M) == SELECT_N
    assert retail_mac(KS_MAC, H("887022120C06C227") + SELECT_M) == SELECT_CC
    assert pad(H("887022120C06C228") + H("99029000")) == SELECT_K
    assert retail_mac(KS_MAC, H("887022120C06C228") + H("99029000")) == SELECT_CC_RESPONSE
    assert READ4_HEADER + READ4_DO97 == READ4_M
    assert pad(H("887022120C06C229") + READ4_M) == READ4_N
    assert retail_mac(KS_MAC, H("887022120C06C229") + READ4_M) == READ4_CC
    k = H("887022120C06C22A8709019FF0EC34F992265199029000")
    assert pad(k) == READ4_K
    assert retail_mac(KS_MAC, k) == READ4_CC_RESPONSE
    read18_m = H("0CB0000480000000") + READ18_DO97
    assert retail_mac(KS_MAC, H("887022120C06C22B") + read18_m) == READ18_CC
    k = H("887022120C06C22C") + READ18_RAPDU[:-12]  # DO87 and DO99, less DO8E and SW
    assert retail_mac(KS_MAC, k) == READ18_CC_RESPONSE


def test_d4_protected_apdus_and_response_verification():
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    assert sm.protect_command(select_file(EF_COM)).to_bytes() == SELECT_PROTECTED
    response = sm.unprotect_response(ResponseApdu.parse(SELECT_RAPDU))
    assert response == ResponseApdu(b"", 0x9000)
    assert sm.ssc == 0x887022120C06C228
    assert sm.protect_command(read_binary(0, 4)).to_bytes() == READ4_PROTECTED
    assert sm.unprotect_response(ResponseApdu.parse(READ4_RAPDU)).data == READ4_DATA
    assert sm.ssc == 0x887022120C06C22A
    assert sm.protect_command(read_binary(4, 0x12)).to_bytes() == READ18_PROTECTED
    assert sm.unprotect_response(ResponseApdu.parse(READ18_RAPDU)).data == READ18_DATA
    assert sm.ssc == 0x887022120C06C22C
    com = parse_ef_com(EF_COM_CONTENT)
    assert (com.lds_version, com.unicode_version, com.data_groups) == ("0106", "040000", (1, 2))


def test_d4_the_card_side_reproduces_the_published_responses():
    card = SecureMessaging(KS_ENC, KS_MAC, SSC)
    plain = card.unprotect_command(CommandApdu.parse(SELECT_PROTECTED))
    assert plain == CommandApdu(0x00, 0xA4, 0x02, 0x0C, H("011E"))
    assert card.protect_response(ResponseApdu(b"", 0x9000)).to_bytes() == SELECT_RAPDU
    plain = card.unprotect_command(CommandApdu.parse(READ4_PROTECTED))
    assert plain == read_binary(0, 4)
    assert card.protect_response(ResponseApdu(READ4_DATA, 0x9000)).to_bytes() == READ4_RAPDU
    plain = card.unprotect_command(CommandApdu.parse(READ18_PROTECTED))
    assert card.protect_response(ResponseApdu(READ18_DATA, 0x9000)).to_bytes() == READ18_RAPDU


@pytest.mark.parametrize("index", [0, 3, 5, 10, 13])
def test_d4_a_changed_response_byte_fails_the_mac(index):
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    sm.protect_command(select_file(EF_COM))
    tampered = bytearray(SELECT_RAPDU)
    tampered[index] ^= 0x01
    with pytest.raises(SecureMessagingError):
        sm.unprotect_response(ResponseApdu.parse(bytes(tampered)))


def test_d4_a_replayed_response_fails_the_mac():
    """The SSC makes each response good once: the SELECT answer replayed later is refused."""
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    sm.protect_command(select_file(EF_COM))
    sm.unprotect_response(ResponseApdu.parse(SELECT_RAPDU))
    sm.protect_command(read_binary(0, 4))
    with pytest.raises(SecureMessagingError, match="MAC does not match"):
        sm.unprotect_response(ResponseApdu.parse(SELECT_RAPDU))


def test_d3_and_d4_on_the_wire_reader_against_virtual_card():
    """Our reader and our virtual card, given the example's nonces and keys, exchange exactly
    Appendix D's APDUs (after the unprotected SELECT of the application)."""
    # A TD2 whose MRZ information is the example's (Part 11, D.2).
    mrz = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL898902C<3UTO6908061F9406236<<<<<<<2"
    card = VirtualPassport(mrz, random=_from(RND_IC, K_IC))
    card.files[EF_COM] = build_ef_com((1, 2), lds_version="0106")
    assert card.files[EF_COM] == EF_COM_CONTENT
    wire: list[tuple[bytes, bytes]] = []

    def transmit(command: bytes) -> bytes:
        response = card.process(command)
        wire.append((command, response))
        return response

    session = EmrtdSession(transmit, random=_from(RND_IFD, K_IFD))
    session.select_application()
    session.basic_access_control(MrzInformation.parse("L898902C<,690806,940623"))
    assert session.read_file(EF_COM) == EF_COM_CONTENT
    assert wire == [
        (H("00A4040C07A0000002471001"), H("9000")),
        (H("0084000008"), RND_IC + H("9000")),
        (H("0082000028") + CMD_DATA + H("28"), RESP_DATA + H("9000")),
        (SELECT_PROTECTED, SELECT_RAPDU),
        (READ4_PROTECTED, READ4_RAPDU),
        (READ18_PROTECTED, READ18_RAPDU),
    ]


# --- responses without DO'99' -------------------------------------------------------------

READ4_DO87 = READ4_RAPDU[:11]
READ4_RESPONSE_SSC = 0x887022120C06C22A


def _reader_after_read4_command() -> SecureMessaging:
    """The reader of D.4, with SELECT EF.COM done and READ BINARY of 4 bytes just sent."""
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    sm.protect_command(select_file(EF_COM))
    sm.unprotect_response(ResponseApdu.parse(SELECT_RAPDU))
    assert sm.protect_command(read_binary(0, 4)).to_bytes() == READ4_PROTECTED
    return sm


def _maced(objects: bytes, ssc: int = READ4_RESPONSE_SSC) -> bytes:
    """The data objects followed by their DO'8E', as the card of D.4 would MAC them."""
    return objects + encode_tlv(TAG_MAC, retail_mac(KS_MAC, ssc.to_bytes(8, "big") + objects))


@pytest.mark.parametrize("sw", [0x9000, 0x6282])
def test_d4_a_response_without_do99_takes_its_own_status_word(sw):
    """D.4's READ BINARY answer less DO'99': the MAC over DO'87' alone verifies."""
    response = ResponseApdu(_maced(READ4_DO87), sw)
    assert response.data == H("8709019FF0EC34F99226518E08") + response.data[-8:]
    assert _reader_after_read4_command().unprotect_response(response) == ResponseApdu(
        READ4_DATA, sw
    )


def test_d4_a_response_of_a_mac_alone_takes_its_own_status_word():
    sm = SecureMessaging(KS_ENC, KS_MAC, SSC)
    sm.protect_command(select_file(EF_COM))
    response = ResponseApdu(_maced(b"", ssc=0x887022120C06C228), 0x9000)
    assert sm.unprotect_response(response) == ResponseApdu(b"", 0x9000)


def test_d4_do99_is_still_the_status_word_when_there_is_one():
    """The MAC covers DO'99' and not the trailing SW1 SW2: DO'99' wins."""
    response = ResponseApdu.parse(READ4_RAPDU[:-2] + H("6282"))
    assert _reader_after_read4_command().unprotect_response(response).sw == 0x9000


@pytest.mark.parametrize(
    "objects",
    [
        READ4_DO87 + encode_tlv(TAG_STATUS, H("9000")) + encode_tlv(TAG_STATUS, H("9000")),
        READ4_DO87 + encode_tlv(TAG_STATUS, H("900000")),
        READ4_DO87 + encode_tlv(TAG_STATUS, b""),
    ],
)
def test_d4_a_do99_that_is_not_one_status_word_is_refused(objects):
    with pytest.raises(SecureMessagingError, match="not one status word"):
        _reader_after_read4_command().unprotect_response(ResponseApdu(_maced(objects), 0x9000))


def test_d4_a_response_without_do99_still_needs_its_mac():
    maced = bytearray(_maced(READ4_DO87))
    maced[-1] ^= 0x01
    with pytest.raises(SecureMessagingError, match="MAC does not match"):
        _reader_after_read4_command().unprotect_response(ResponseApdu(bytes(maced), 0x9000))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0x6000, 0x9FFF))
def test_any_plain_response_protected_without_do99_comes_back(data, sw):
    """What a card protects and MACs without DO'99' reads as the data and its SW1 SW2."""
    objects = b""
    if data:
        objects = encode_tlv(TAG_ENCRYPTED, b"\x01" + tdes_encrypt(KS_ENC, pad(data)))
    response = ResponseApdu(_maced(objects), sw)
    assert _reader_after_read4_command().unprotect_response(response) == ResponseApdu(data, sw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_any_response_bytes_unprotect_or_fail_with_a_secure_messaging_error(raw):
    """A card's bytes, whatever they are, never raise anything but SecureMessagingError."""
    response = ResponseApdu.parse(raw + H("9000"))
    try:
        plain = _reader_after_read4_command().unprotect_response(response)
    except SecureMessagingError:
        return
    assert plain.sw == 0x9000

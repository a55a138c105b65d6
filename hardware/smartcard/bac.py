"""Basic Access Control and 3DES secure messaging (ICAO Doc 9303 Part 11, 4.3 and 9.8).

Both sides of the protocol live here, so the reader (emrtd.py) and the virtual card
(virtual_card.py) share one definition:

- keys: Kseed = SHA-1(MRZ_information)[:16]; Kenc/Kmac = SHA-1(Kseed || counter)[:16] with
  DES parity (counter 1 for encryption, 2 for MAC);
- mutual authentication: the reader sends E.IFD || M.IFD with E.IFD = 3DES-CBC(Kenc,
  RND.IFD || RND.ICC || K.IFD), M.IFD = retail MAC(Kmac, E.IFD); the card answers E.ICC ||
  M.ICC over RND.ICC || RND.IFD || K.ICC;
- the session: KSenc/KSmac derived from K.IFD xor K.ICC, SSC = RND.ICC[4:] || RND.IFD[4:];
- secure messaging: DO'87' (padded, encrypted data), DO'97' (Le), DO'99' (status word) and
  DO'8E' (the MAC over SSC || header || data objects), the SSC incremented before every
  command and every response.

The MAC is ISO/IEC 9797-1 MAC algorithm 3 (retail MAC) with single DES and padding method 2;
encryption is two-key 3DES in CBC mode with a zero IV.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hardware.smartcard.apdu import CommandApdu, ResponseApdu
from hardware.smartcard.errors import AccessDenied, SecureMessagingError
from hardware.smartcard.lds import TlvError, encode_tlv, iter_tlv

try:  # cryptography >= 43 keeps 3DES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore

KDF_ENC = 1
KDF_MAC = 2
BLOCK = 8
ZERO_IV = bytes(BLOCK)
# CLA bits b3-b4 set: "secure messaging, header authenticated" (ISO/IEC 7816-4, 5.4.1).
SM_CLA = 0x0C

TAG_ENCRYPTED = 0x87
TAG_LE = 0x97
TAG_STATUS = 0x99
TAG_MAC = 0x8E


# --- primitives ----------------------------------------------------------------------------


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80, then 00 up to a multiple of 8 bytes."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def unpad(data: bytes) -> bytes:
    """Remove padding method 2; raises SecureMessagingError when there is none."""
    end = data.rstrip(b"\x00")
    if not end or end[-1] != 0x80:
        raise SecureMessagingError("decrypted data is not padded as ISO/IEC 9797-1 method 2")
    return end[:-1]


def adjust_parity(key: bytes) -> bytes:
    """Each byte with odd parity, as DES keys are written (the low bit is the parity bit)."""
    out = bytearray()
    for byte in key:
        high = byte & 0xFE
        out.append(high | (bin(high).count("1") + 1) % 2)
    return bytes(out)


def key_seed(mrz_information: str) -> bytes:
    """Kseed: the first 16 bytes of SHA-1 of the MRZ information."""
    return hashlib.sha1(mrz_information.encode("ascii")).digest()[:16]


def derive_key(seed: bytes, counter: int) -> bytes:
    """A two-key 3DES key from a seed: SHA-1(seed || counter)[:16], parity adjusted."""
    return adjust_parity(hashlib.sha1(seed + counter.to_bytes(4, "big")).digest()[:16])


def _des3(key: bytes) -> TripleDES:
    """3DES with a 24-byte key: K1 K2 K1 for two-key 3DES, K1 K1 K1 for single DES."""
    if len(key) == 8:
        return TripleDES(key * 3)
    if len(key) == 16:
        return TripleDES(key + key[:8])
    return TripleDES(key)


def tdes_encrypt(key: bytes, data: bytes, iv: bytes = ZERO_IV) -> bytes:
    """3DES-CBC encryption of whole blocks."""
    encryptor = Cipher(_des3(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def tdes_decrypt(key: bytes, data: bytes, iv: bytes = ZERO_IV) -> bytes:
    """3DES-CBC decryption of whole blocks."""
    if len(data) % BLOCK:
        raise SecureMessagingError("encrypted data is not a whole number of 8-byte blocks")
    decryptor = Cipher(_des3(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def retail_mac(key: bytes, message: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES over a message padded with method 2.

    Single-DES CBC with K1 over every block, then the last block decrypted with K2 and
    encrypted again with K1.
    """
    k1, k2 = key[:8], key[8:16]
    data = pad(message)
    chained = Cipher(_des3(k1), modes.CBC(ZERO_IV)).encryptor()
    last = (chained.update(data) + chained.finalize())[-BLOCK:]
    step = Cipher(_des3(k2), modes.ECB()).decryptor()
    last = step.update(last) + step.finalize()
    final = Cipher(_des3(k1), modes.ECB()).encryptor()
    return final.update(last) + final.finalize()


# --- keys and mutual authentication --------------------------------------------------------


@dataclass(frozen=True)
class BacKeys:
    """The Document Basic Access Keys Kenc and Kmac."""

    k_enc: bytes = field(repr=False)
    k_mac: bytes = field(repr=False)

    @classmethod
    def from_mrz_information(cls, mrz_information: str) -> BacKeys:
        """Keys from the MRZ_information string ("L898902C<369080619406236")."""
        seed = key_seed(mrz_information)
        return cls(derive_key(seed, KDF_ENC), derive_key(seed, KDF_MAC))


def authentication_data(keys: BacKeys, first: bytes, second: bytes, key: bytes) -> bytes:
    """E || M: first || second || key encrypted with Kenc, then its MAC with Kmac (40 bytes).

    The reader sends it with (RND.IFD, RND.ICC, K.IFD), the card with (RND.ICC, RND.IFD, K.ICC).
    """
    encrypted = tdes_encrypt(keys.k_enc, first + second + key)
    return encrypted + retail_mac(keys.k_mac, encrypted)


def open_authentication_data(keys: BacKeys, data: bytes, expected_second: bytes) -> bytes:
    """Check the MAC of E || M, decrypt, check the echoed nonce; returns (first, key) parts.

    Returns first || key (8 + 16 bytes). Raises AccessDenied when the MAC or the echoed
    nonce is wrong: the other side used different keys, i.e. a different MRZ.
    """
    if len(data) != 40:
        raise AccessDenied("mutual authentication data is not 40 bytes")
    encrypted, mac = data[:32], data[32:]
    if not hmac.compare_digest(retail_mac(keys.k_mac, encrypted), mac):
        raise AccessDenied("mutual authentication failed: the MAC does not match")
    plain = tdes_decrypt(keys.k_enc, encrypted)
    if not hmac.compare_digest(plain[8:16], expected_second):
        raise AccessDenied("mutual authentication failed: the nonce echoed back is wrong")
    return plain[:8] + plain[16:32]


def session_keys(k_ifd: bytes, k_icc: bytes) -> tuple[bytes, bytes]:
    """KSenc and KSmac from K.IFD xor K.ICC."""
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_icc, strict=True))
    return derive_key(seed, KDF_ENC), derive_key(seed, KDF_MAC)


def initial_ssc(rnd_icc: bytes, rnd_ifd: bytes) -> int:
    """The send sequence counter: the last 4 bytes of RND.ICC then of RND.IFD."""
    return int.from_bytes(rnd_icc[4:8] + rnd_ifd[4:8], "big")


@dataclass
class BacTerminal:
    """The reader's side of mutual authentication: nonces, K.IFD and what the card answers.

    `random` makes RND.IFD and K.IFD (os.urandom; tests pass Appendix D's values).
    """

    keys: BacKeys
    random: Callable[[int], bytes] = os.urandom

    def authenticate_command(self, rnd_icc: bytes) -> tuple[bytes, bytes, bytes]:
        """(cmd_data for EXTERNAL AUTHENTICATE, RND.IFD, K.IFD) for the card's challenge."""
        rnd_ifd, k_ifd = self.random(8), self.random(16)
        return authentication_data(self.keys, rnd_ifd, rnd_icc, k_ifd), rnd_ifd, k_ifd

    def open_session(
        self, response: bytes, rnd_icc: bytes, rnd_ifd: bytes, k_ifd: bytes
    ) -> SecureMessaging:
        """Check the card's E.ICC || M.ICC and derive the session; raises AccessDenied."""
        opened = open_authentication_data(self.keys, response, rnd_ifd)
        if not hmac.compare_digest(opened[:8], rnd_icc):
            raise AccessDenied("mutual authentication failed: the card's nonce is not its own")
        ks_enc, ks_mac = session_keys(k_ifd, opened[8:])
        return SecureMessaging(ks_enc, ks_mac, initial_ssc(rnd_icc, rnd_ifd))


def card_authenticate(
    keys: BacKeys, cmd_data: bytes, rnd_icc: bytes, k_icc: bytes
) -> tuple[bytes, SecureMessaging]:
    """The card's side: check the reader's E.IFD || M.IFD, answer E.ICC || M.ICC.

    Returns (response data, the card's session). Raises AccessDenied when the reader used
    other keys (a wrong MRZ) or did not echo RND.ICC.
    """
    opened = open_authentication_data(keys, cmd_data, rnd_icc)
    rnd_ifd, k_ifd = opened[:8], opened[8:]
    response = authentication_data(keys, rnd_icc, rnd_ifd, k_icc)
    ks_enc, ks_mac = session_keys(k_ifd, k_icc)
    return response, SecureMessaging(ks_enc, ks_mac, initial_ssc(rnd_icc, rnd_ifd))


# --- secure messaging ----------------------------------------------------------------------


@dataclass
class SecureMessaging:
    """A 3DES secure-messaging session: KSenc, KSmac and the send sequence counter.

    The reader calls protect_command then unprotect_response for each exchange; the card
    calls unprotect_command then protect_response. Each call first increments the SSC, so
    both sides stay in step as long as every message gets through.
    """

    ks_enc: bytes = field(repr=False)
    ks_mac: bytes = field(repr=False)
    ssc: int = field(repr=False)

    def _next_ssc(self) -> bytes:
        self.ssc = (self.ssc + 1) % (1 << 64)
        return self.ssc.to_bytes(8, "big")

    def _mac(self, ssc: bytes, message: bytes) -> bytes:
        return retail_mac(self.ks_mac, ssc + message)

    def _encrypt_do(self, data: bytes) -> bytes:
        return encode_tlv(TAG_ENCRYPTED, b"\x01" + tdes_encrypt(self.ks_enc, pad(data)))

    def _decrypt_do(self, value: bytes) -> bytes:
        if not value or value[0] != 0x01:
            raise SecureMessagingError("DO'87' does not start with the padding indicator 01")
        return unpad(tdes_decrypt(self.ks_enc, value[1:]))

    # reader side

    def protect_command(self, command: CommandApdu) -> CommandApdu:
        """The protected form of a plain command (CLA 0C, DO'87', DO'97', DO'8E')."""
        cla = command.cla | SM_CLA
        header = bytes((cla, command.ins, command.p1, command.p2))
        objects = b""
        if command.data:
            objects += self._encrypt_do(command.data)
        if command.le is not None:
            width = 1 if command.le <= 256 else 2
            objects += encode_tlv(TAG_LE, (command.le % (1 << (8 * width))).to_bytes(width, "big"))
        mac = self._mac(self._next_ssc(), pad(header) + objects)
        data = objects + encode_tlv(TAG_MAC, mac)
        le = 256 if len(data) <= 255 and (command.le or 0) <= 231 else 65536
        return CommandApdu(cla, command.ins, command.p1, command.p2, data, le)

    def unprotect_response(self, response: ResponseApdu) -> ResponseApdu:
        """Check the MAC of a protected response and decrypt it.

        Raises SecureMessagingError for a missing or wrong MAC, or a DO'99' that is not one
        status word. A response with no data at all is returned as it is (a plain status word:
        the card refused the command and dropped the session; the caller reports the status
        word), but only for an error status: a plain 9000 would be unauthenticated.

        The status word is the one in DO'99', which the MAC covers. Some cards leave DO'99' out
        of a response whose MAC is good; as lenient readers do, the status word is then the
        response's own trailing SW1 SW2, which the MAC does not cover.
        """
        ssc = self._next_ssc()
        if not response.data:
            if response.ok:
                raise SecureMessagingError("a success status without secure messaging")
            return response
        try:
            objects = list(iter_tlv(response.data))
        except TlvError as error:
            raise SecureMessagingError(f"response data objects malformed: {error}") from None
        macs = [value for tag, value, _ in objects if tag == TAG_MAC]
        if len(macs) != 1 or objects[-1][0] != TAG_MAC:
            raise SecureMessagingError("the response has no DO'8E' (MAC) at its end")
        covered = b"".join(raw for tag, _, raw in objects if tag != TAG_MAC)
        if not hmac.compare_digest(self._mac(ssc, covered), macs[0]):
            raise SecureMessagingError("the response MAC does not match: read aborted")
        statuses = [value for tag, value, _ in objects if tag == TAG_STATUS]
        if len(statuses) > 1 or any(len(status) != 2 for status in statuses):
            raise SecureMessagingError("the response's DO'99' is not one status word")
        sw = int.from_bytes(statuses[0], "big") if statuses else response.sw
        data = b""
        for tag, value, _ in objects:
            if tag == TAG_ENCRYPTED:
                data = self._decrypt_do(value)
        return ResponseApdu(data, sw)

    # card side

    def unprotect_command(self, command: CommandApdu) -> CommandApdu:
        """Check the MAC of a protected command and return the plain one.

        Raises SecureMessagingError when the CLA does not say secure messaging, a data
        object is missing or malformed, or the MAC is wrong.
        """
        ssc = self._next_ssc()
        if command.cla & SM_CLA != SM_CLA:
            raise SecureMessagingError("a command without secure messaging")
        try:
            objects = list(iter_tlv(command.data))
        except TlvError as error:
            raise SecureMessagingError(f"command data objects malformed: {error}") from None
        if not objects or objects[-1][0] != TAG_MAC:
            raise SecureMessagingError("the command has no DO'8E' (MAC) at its end")
        covered = b"".join(raw for tag, _, raw in objects[:-1])
        if not hmac.compare_digest(self._mac(ssc, pad(command.header) + covered), objects[-1][1]):
            raise SecureMessagingError("the command MAC does not match")
        data, le = b"", None
        for tag, value, _ in objects[:-1]:
            if tag == TAG_ENCRYPTED:
                data = self._decrypt_do(value)
            elif tag == TAG_LE:
                le = int.from_bytes(value, "big") or (256 if len(value) == 1 else 65536)
            else:
                raise SecureMessagingError(f"unexpected data object {tag:02X} in a command")
        return CommandApdu(command.cla & ~SM_CLA, command.ins, command.p1, command.p2, data, le)

    def protect_response(self, response: ResponseApdu) -> ResponseApdu:
        """The protected form of a plain response (DO'87', DO'99', DO'8E')."""
        ssc = self._next_ssc()
        objects = b""
        if response.data:
            objects += self._encrypt_do(response.data)
        objects += encode_tlv(TAG_STATUS, response.sw.to_bytes(2, "big"))
        return ResponseApdu(objects + encode_tlv(TAG_MAC, self._mac(ssc, objects)), response.sw)

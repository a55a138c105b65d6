"""Reading an eMRTD (passport, eID card) over any APDU transport: BAC, SM, EF.COM, DG1, DG2, SOD.

The I/O is one function, transmit(command bytes) -> response bytes (with SW1 SW2), so the
same logic runs over pyscard (pcsc.py) or straight against the virtual card in a unit test.
read_emrtd() does the whole read and returns a Document; EmrtdSession is the step by step
form (select the application, Basic Access Control, read files through secure messaging).

Files are read in chunks: the first 4 bytes give the TLV length, then READ BINARY of at
most `chunk` bytes at a time (223 by default, which keeps a protected response within a
short APDU). Every protected response's MAC is checked; a failure ends the read.
Status words become the errors of errors.py; nothing personal is logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from hardware.smartcard import apdu
from hardware.smartcard.apdu import ApduError, CommandApdu, ResponseApdu
from hardware.smartcard.bac import BacKeys, BacTerminal, SecureMessaging
from hardware.smartcard.errors import (
    AccessDenied,
    CardError,
    DocumentError,
    FileNotFound,
    status_error,
)
from hardware.smartcard.lds import (
    EF_COM,
    EF_SOD,
    EfCom,
    TlvError,
    data_group_fid,
    decode_header,
    face_image,
    file_name,
    parse_dg1,
    parse_ef_com,
)
from hardware.smartcard.mrz import Mrz, MrzError, MrzInformation, parse_mrz
from hardware.smartcard.sod import Outcome, PassiveAuthentication, verify_sod

logger = logging.getLogger(__name__)

Transmit = Callable[[bytes], bytes]

DEFAULT_CHUNK = 0xDF
# READ BINARY (B0) offsets end at 32767; a file must end before the last chunk would start.
_MAX_OFFSET = 0x7FFF
# The status words with which a card refuses EXTERNAL AUTHENTICATE for wrong keys.
_BAC_REFUSALS = frozenset({0x6300, 0x6982})
WRONG_MRZ = (
    "Basic Access Control refused: the document number, birth date or expiry date does not "
    "match this document (check what was entered, or scan the MRZ again)"
)


@dataclass(frozen=True)
class Checks:
    """Which checks passed: BAC, secure messaging (every MAC), passive authentication."""

    bac: Outcome
    secure_messaging: Outcome
    passive_authentication: PassiveAuthentication

    def as_dict(self) -> dict[str, object]:
        """For --json output."""
        return {
            "bac": str(self.bac),
            "secure_messaging": str(self.secure_messaging),
            "passive_authentication": self.passive_authentication.as_dict(),
        }

    @property
    def failed(self) -> bool:
        """Whether any check failed (a document read but not shown authentic)."""
        return Outcome.FAILED in (
            self.bac,
            self.secure_messaging,
            self.passive_authentication.outcome,
        )


@dataclass(frozen=True)
class Document:
    """What was read: the MRZ of DG1, EF.COM, the raw files, and which checks passed.

    The repr masks the document number and shows no name or date of birth.
    """

    mrz: Mrz
    com: EfCom
    checks: Checks
    dg1: bytes = field(repr=False)
    dg2: bytes | None = field(repr=False, default=None)
    sod: bytes | None = field(repr=False, default=None)

    def __repr__(self) -> str:
        return (
            f"Document(mrz={self.mrz!r}, data_groups={self.com.data_groups}, "
            f"passive_authentication={str(self.checks.passive_authentication.outcome)!r})"
        )

    @property
    def face(self) -> tuple[str, bytes] | None:
        """("jpeg" or "jpeg2000", image) from DG2 when it was read and holds one."""
        return face_image(self.dg2) if self.dg2 else None

    def identity(self) -> dict[str, str]:
        """Every MRZ field in clear: what gets sealed to the host's key, never logged."""
        return self.mrz.revealed()

    def as_dict(self, *, reveal: bool = False) -> dict[str, object]:
        """For output: the MRZ fields by name (masked unless reveal), files, checks."""
        face = self.face
        return {
            **(self.mrz.revealed() if reveal else self.mrz.masked()),
            "lds_version": self.com.lds_version,
            "data_groups": list(self.com.data_groups),
            "dg2_bytes": len(self.dg2) if self.dg2 is not None else None,
            "face_image": {"type": face[0], "bytes": len(face[1])} if face else None,
            "checks": self.checks.as_dict(),
        }


class EmrtdSession:
    """One conversation with an eMRTD: plain until BAC, then every command protected."""

    def __init__(
        self,
        transmit: Transmit,
        *,
        random: Callable[[int], bytes] = os.urandom,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        if not 1 <= chunk <= 231:
            raise ValueError("chunk is 1..231 bytes (a protected response fits a short APDU)")
        self._transmit = transmit
        self._random = random
        self.chunk = chunk
        self.sm: SecureMessaging | None = None

    def send(self, command: CommandApdu, what: str) -> ResponseApdu:
        """Send a command (protected once BAC is done) and return the plain response.

        `what` names the command in errors ("SELECT EF.DG1").
        """
        raw = command.to_bytes() if self.sm is None else self.sm.protect_command(command).to_bytes()
        try:
            response = ResponseApdu.parse(self._transmit(raw))
        except ApduError:
            raise CardError(f"{what}: the card's answer is not an APDU response") from None
        if self.sm is not None:
            response = self.sm.unprotect_response(response)
        return response

    def check(self, command: CommandApdu, what: str) -> bytes:
        """Send and return the data; raises the error of any status but 9000."""
        response = self.send(command, what)
        if not response.ok:
            raise status_error(response.sw, what)
        return response.data

    def select_application(self) -> None:
        """SELECT the eMRTD application (LDS1, A0000002471001)."""
        try:
            self.check(apdu.select_aid(), "SELECT eMRTD application")
        except FileNotFound as error:
            raise FileNotFound(
                error.sw, error.command, "this card has no ICAO eMRTD application"
            ) from None

    def basic_access_control(self, information: MrzInformation) -> None:
        """GET CHALLENGE, EXTERNAL AUTHENTICATE, then secure messaging from here on.

        Raises AccessDenied with a message for the operator when the card refuses the keys.
        """
        terminal = BacTerminal(BacKeys.from_mrz_information(information.key_input()), self._random)
        rnd_icc = self.check(apdu.get_challenge(), "GET CHALLENGE")
        if len(rnd_icc) != 8:
            raise CardError(f"GET CHALLENGE: {len(rnd_icc)} bytes where 8 were expected")
        cmd_data, rnd_ifd, k_ifd = terminal.authenticate_command(rnd_icc)
        response = self.send(apdu.external_authenticate(cmd_data), "EXTERNAL AUTHENTICATE")
        if response.sw in _BAC_REFUSALS:
            logger.info("BAC refused by the card (status %04X)", response.sw)
            raise AccessDenied(WRONG_MRZ)
        if not response.ok:
            raise status_error(response.sw, "EXTERNAL AUTHENTICATE")
        self.sm = terminal.open_session(response.data, rnd_icc, rnd_ifd, k_ifd)
        logger.debug("BAC done; secure messaging on")

    def read_file(self, fid: int, *, max_size: int = _MAX_OFFSET) -> bytes:
        """SELECT an EF and READ BINARY all of it (its length from its TLV header)."""
        name = file_name(fid)
        self.check(apdu.select_file(fid), f"SELECT {name}")
        data = self._read(0, 4, name)
        try:
            _, length, header = decode_header(data + bytes(4))
        except TlvError:
            raise DocumentError(f"{name} does not start with a TLV header") from None
        if header > len(data):
            data += self._read(len(data), header - len(data), name)
        total = header + length
        if total > max_size:
            raise DocumentError(
                f"{name} has {total} bytes, more than READ BINARY (B0) reaches ({max_size})"
            )
        while len(data) < total:
            data += self._read(len(data), min(self.chunk, total - len(data)), name)
        logger.debug("read %s (%d bytes)", name, total)
        return data[:total]

    def _read(self, offset: int, length: int, name: str) -> bytes:
        what = f"READ BINARY {name} at {offset}"
        response = self.send(apdu.read_binary(offset, length), what)
        if response.sw >> 8 == 0x6C and response.sw & 0xFF:  # "wrong Le, xx available"
            length = response.sw & 0xFF
            response = self.send(apdu.read_binary(offset, length), what)
        if response.sw == 0x6282 and response.data:  # end of file before Le: what there is
            return response.data[:length]
        if not response.ok:
            raise status_error(response.sw, what)
        if not response.data:
            raise DocumentError(f"{what}: no data")
        return response.data[:length]


def read_emrtd(
    transmit: Transmit,
    information: MrzInformation,
    *,
    read_dg2: bool = False,
    csca: Sequence[x509.Certificate] | None = None,
    passive_authentication: bool = True,
    random: Callable[[int], bytes] = os.urandom,
    chunk: int = DEFAULT_CHUNK,
) -> Document:
    """Select, BAC, read EF.COM and DG1 (and DG2, EF.SOD), check; returns the Document.

    csca: the CSCA certificates to trust (None: passive authentication "not configured",
    though EF.SOD's signature and hashes are still checked). passive_authentication=False
    skips EF.SOD altogether ("not performed").
    """
    session = EmrtdSession(transmit, random=random, chunk=chunk)
    session.select_application()
    session.basic_access_control(information)
    try:
        com = parse_ef_com(session.read_file(EF_COM))
    except TlvError as error:
        raise DocumentError(f"EF.COM is malformed: {error}") from None
    dg1 = session.read_file(data_group_fid(1))
    try:
        mrz = parse_mrz(parse_dg1(dg1))
    except TlvError as error:
        raise DocumentError(f"EF.DG1 is malformed: {error}") from None
    except MrzError as error:
        raise DocumentError(f"the MRZ in EF.DG1 is not valid: {error}") from None
    dg2 = None
    if read_dg2 and 2 in com.data_groups:
        dg2 = session.read_file(data_group_fid(2))
    sod = None
    if not passive_authentication:
        passive = PassiveAuthentication(Outcome.NOT_PERFORMED, "not asked for")
    else:
        try:
            sod = session.read_file(EF_SOD)
        except FileNotFound:
            passive = PassiveAuthentication(Outcome.FAILED, "the document has no EF.SOD")
        else:
            groups = {1: dg1} if dg2 is None else {1: dg1, 2: dg2}
            passive = verify_sod(sod, groups, csca)
    logger.info("eMRTD read; passive authentication %s", passive.outcome)
    checks = Checks(Outcome.PASSED, Outcome.PASSED, passive)
    return Document(mrz=mrz, com=com, checks=checks, dg1=dg1, dg2=dg2, sod=sod)

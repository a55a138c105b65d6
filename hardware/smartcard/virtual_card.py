"""The card side of an eMRTD, in software: answers APDUs as a passport chip would, with faults.

VirtualPassport holds the files (EF.COM, DG1 built from an MRZ, optionally DG2 and EF.SOD)
and answers SELECT (by AID and by file id), GET CHALLENGE, EXTERNAL AUTHENTICATE (checked
with the keys of its own MRZ: a wrong MRZ gets 6300) and, once BAC is done, SM-protected
SELECT and READ BINARY (by offset or short file id). It uses the same apdu, bac and lds code
as the reader, so both sides speak the same bytes. The transport is elsewhere
(vpcd_card.py puts it behind pcscd; unit tests call process() directly).

It also answers the PC/SC pseudo-APDU GET DATA UID (FF CA 00 00 00) with its UID. A real
contactless reader answers that itself and never passes it to the card, but vpcd passes
every APDU on, so the virtual card plays the reader's part here to let the UID path be
tested (answer_uid=False makes it answer 6D00, as a contact card behind a plain reader).

Faults, for tests: status_next(sw) answers the next command (of an INS) with a status word;
corrupt_mac_next() flips a bit of the next response MAC; hang_up(ins, after) makes the
transport drop the connection (the card pulled away) instead of answering.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hardware.smartcard.apdu import (
    EMRTD_AID,
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    INS_GET_DATA,
    INS_READ_BINARY,
    INS_SELECT,
    SW_OK,
    ApduError,
    CommandApdu,
    ResponseApdu,
)
from hardware.smartcard.bac import SM_CLA, BacKeys, SecureMessaging, card_authenticate
from hardware.smartcard.errors import AccessDenied, SecureMessagingError
from hardware.smartcard.lds import (
    EF_COM,
    EF_SOD,
    build_dg1,
    build_ef_com,
    data_group_fid,
)
from hardware.smartcard.mrz import parse_mrz

# An ATR as a PC/SC reader builds it for an ISO/IEC 14443-4 card (PC/SC Part 3, 3.1.3.2.3):
# 3B 8n 80 01, the historical bytes, TCK.
_HISTORICAL = bytes.fromhex("8073C8211066")


def contactless_atr(historical: bytes = _HISTORICAL) -> bytes:
    """3B 8n 80 01 || historical bytes || TCK (the XOR of T0 onwards makes 00)."""
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes((tck,))


DEFAULT_ATR = contactless_atr()
DEFAULT_UID = bytes.fromhex("08A1B2C3")
# Short EF identifiers (P1 = 80 | SFI in READ BINARY) of the LDS files.
_SHORT_IDS = {0x1E: EF_COM, 0x1D: EF_SOD, **{n: data_group_fid(n) for n in range(1, 17)}}


class HangUp(Exception):
    """Raised by process() to make the transport drop the connection: the card is pulled."""


@dataclass
class Faults:
    """Faults to inject; each fires once. `ins` None matches any command."""

    statuses: list[tuple[int | None, int]] = field(default_factory=list)
    corrupt_mac: list[tuple[int | None, int]] = field(default_factory=list)
    hang_ups: list[tuple[int | None, int]] = field(default_factory=list)


def _sw(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


class VirtualPassport:
    """An eMRTD chip: its files, its MRZ-derived keys, its state (selected file, session)."""

    def __init__(
        self,
        mrz: str,
        *,
        dg2: bytes | None = None,
        sod: bytes | None = None,
        extra_files: Mapping[int, bytes] | None = None,
        uid: bytes = DEFAULT_UID,
        atr: bytes = DEFAULT_ATR,
        answer_uid: bool = True,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        parsed = parse_mrz(mrz)
        self.keys = BacKeys.from_mrz_information(parsed.information.key_input())
        groups = (1, 2) if dg2 is not None else (1,)
        self.files: dict[int, bytes] = {
            EF_COM: build_ef_com(groups),
            data_group_fid(1): build_dg1(mrz),
        }
        if dg2 is not None:
            self.files[data_group_fid(2)] = dg2
        if sod is not None:
            self.files[EF_SOD] = sod
        self.files.update(extra_files or {})
        self.uid = uid
        self.atr = atr
        self.answer_uid = answer_uid
        self.random = random
        self.faults = Faults()
        self.commands = 0  # commands processed, for tests
        self._lock = threading.Lock()
        self._app_selected = False
        self._current: int | None = None
        self._rnd_icc: bytes | None = None
        self._sm: SecureMessaging | None = None

    # --- fault injection -------------------------------------------------------------------

    def status_next(self, sw: int, ins: int | None = None) -> None:
        """Answer the next command (with this INS) with `sw` (protected if SM is on)."""
        with self._lock:
            self.faults.statuses.append((ins, sw))

    def corrupt_mac_next(self, ins: int | None = None) -> None:
        """Flip a bit of the MAC of the next protected response (to a command with this INS)."""
        with self._lock:
            self.faults.corrupt_mac.append((ins, 0))

    def hang_up(self, ins: int | None = None, after: int = 0) -> None:
        """Drop the connection at a command with this INS, after `after` of them were answered."""
        with self._lock:
            self.faults.hang_ups.append((ins, after))

    # --- the chip --------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        """Whether BAC is done and secure messaging is on."""
        return self._sm is not None

    def reset(self) -> None:
        """Power off, power on or reset: back to nothing selected, no session."""
        with self._lock:
            self._app_selected = False
            self._current = None
            self._rnd_icc = None
            self._sm = None

    def process(self, raw: bytes) -> bytes:
        """Answer one command APDU with a response APDU; raises HangUp for that fault."""
        with self._lock:
            self.commands += 1
            try:
                command = CommandApdu.parse(raw)
            except ApduError:
                return _sw(0x6700).to_bytes()
            self._maybe_hang_up(command.ins)
            return self._process(command).to_bytes()

    def _maybe_hang_up(self, ins: int) -> None:
        for index, (wanted, after) in enumerate(self.faults.hang_ups):
            if wanted is None or wanted == ins:
                if after <= 0:
                    del self.faults.hang_ups[index]
                    raise HangUp
                self.faults.hang_ups[index] = (wanted, after - 1)
                return

    @staticmethod
    def _take(queue: list[tuple[int | None, int]], ins: int) -> tuple[int | None, int] | None:
        """Pop the first fault of a queue that matches a command's INS."""
        for index, item in enumerate(queue):
            if item[0] is None or item[0] == ins:
                return queue.pop(index)
        return None

    def _process(self, command: CommandApdu) -> ResponseApdu:
        if command.cla == 0xFF:
            return self._reader_command(command)
        if command.cla & SM_CLA == SM_CLA:
            return self._protected(command)
        if command.cla != 0x00:
            return _sw(0x6E00)
        # A plain command ends any secure-messaging session.
        self._sm = None
        forced = self._take(self.faults.statuses, command.ins)
        if forced is not None:
            return _sw(forced[1])
        return self._dispatch(command, secured=False)

    def _protected(self, command: CommandApdu) -> ResponseApdu:
        if self._sm is None:
            return _sw(0x6988)
        try:
            plain = self._sm.unprotect_command(command)
        except SecureMessagingError:
            self._sm = None  # "the ICC shall abort secure messaging" on an SM error
            return _sw(0x6988)
        forced = self._take(self.faults.statuses, plain.ins)
        response = _sw(forced[1]) if forced else self._dispatch(plain, secured=True)
        protected = self._sm.protect_response(response)
        if self._take(self.faults.corrupt_mac, plain.ins) is not None:
            data = bytearray(protected.data)
            data[-1] ^= 0x01
            protected = ResponseApdu(bytes(data), protected.sw)
        return protected

    def _reader_command(self, command: CommandApdu) -> ResponseApdu:
        if command.ins == INS_GET_DATA and (command.p1, command.p2) == (0, 0) and self.answer_uid:
            if command.le not in (None, 256) and command.le < len(self.uid):
                return _sw(0x6C00 | len(self.uid))
            return ResponseApdu(self.uid, SW_OK)
        return _sw(0x6D00)

    def _dispatch(self, command: CommandApdu, *, secured: bool) -> ResponseApdu:
        if command.ins == INS_SELECT:
            return self._select(command, secured=secured)
        if command.ins == INS_READ_BINARY:
            return self._read_binary(command, secured=secured)
        if command.ins == INS_GET_CHALLENGE:
            if command.le != 8:
                return _sw(0x6700)
            self._rnd_icc = self.random(8)
            return ResponseApdu(self._rnd_icc, SW_OK)
        if command.ins == INS_EXTERNAL_AUTHENTICATE:
            return self._external_authenticate(command)
        return _sw(0x6D00)

    def _select(self, command: CommandApdu, *, secured: bool) -> ResponseApdu:
        if command.p1 == 0x04:
            if command.data != EMRTD_AID:
                return _sw(0x6A82)
            self._app_selected, self._current = True, None
            return _sw(SW_OK)
        if command.p1 in (0x00, 0x02) and len(command.data) == 2:
            if not self._app_selected:
                return _sw(0x6A82)
            if not secured:
                return _sw(0x6982)
            fid = int.from_bytes(command.data, "big")
            if fid not in self.files:
                return _sw(0x6A82)
            self._current = fid
            return _sw(SW_OK)
        return _sw(0x6A86)

    def _read_binary(self, command: CommandApdu, *, secured: bool) -> ResponseApdu:
        if not secured:
            return _sw(0x6982)
        if command.p1 & 0x80:
            fid = _SHORT_IDS.get(command.p1 & 0x1F)
            if fid is None or fid not in self.files:
                return _sw(0x6A82)
            self._current, offset = fid, command.p2
        else:
            offset = (command.p1 << 8) | command.p2
        if self._current is None:
            return _sw(0x6986)
        content = self.files[self._current]
        if offset >= len(content):
            return _sw(0x6B00)
        wanted = command.le or 256
        data = content[offset : offset + wanted]
        return ResponseApdu(data, SW_OK if len(data) == wanted else 0x6282)

    def _external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        if self._rnd_icc is None:
            return _sw(0x6985)
        rnd_icc, self._rnd_icc = self._rnd_icc, None  # one try per challenge
        try:
            response, self._sm = card_authenticate(
                self.keys, command.data, rnd_icc, self.random(16)
            )
        except AccessDenied:
            return _sw(0x6300)
        return ResponseApdu(response, SW_OK)

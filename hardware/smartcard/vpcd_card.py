"""A virtual card behind a real pcscd: our card logic speaking the vsmartcard vpcd socket protocol.

The vpcd reader driver of pcscd (Debian package vsmartcard-vpcd) listens on a TCP port
(35963 for its first slot, 35964 for the second); a virtual card connects to it as a
client, and to pcscd, pyscard and every PC/SC application it is a card in the reader
"Virtual PCD 00 00". Each message either way is a 2-byte big-endian length then the
payload. From vpcd, a 1-byte payload is a control message (00 power off, 01 power on, 02
reset, 04 get ATR, answered with the ATR); anything longer is a command APDU, answered with
the response APDU. The card is present while the connection is open: connecting is putting
the card on the reader, closing is taking it away.

VpcdCard runs the connection in a thread around a VirtualPassport. It reconnects when vpcd
closes the connection (pcscd stopped: the card still lies on the reader and comes back with
it), but not after remove() or a HangUp fault (the card was taken away).

Run alone to put a specimen passport on the virtual reader:
    python -m hardware.smartcard.vpcd_card [--port 35963] [--csca-out csca.pem]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from hardware.smartcard.virtual_card import HangUp, VirtualPassport

logger = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
CTRL_OFF = 0x00
CTRL_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04
# How long one socket operation may block: stop requests are seen this often.
_SLICE = 0.1
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def encode_message(payload: bytes) -> bytes:
    """A vpcd message: 2-byte big-endian length, then the payload."""
    if len(payload) > 0xFFFF:
        raise ValueError("a vpcd message holds at most 65535 bytes")
    return len(payload).to_bytes(2, "big") + payload


class _Closed(Exception):
    """The connection ended (EOF or error) or a stop was asked for."""


class VpcdCard:
    """Puts a VirtualPassport into a vpcd reader slot, in a background thread.

    insert() connects (retrying until `timeout` while vpcd is not listening yet); remove()
    takes the card away. `connected` is set while the connection is open.
    """

    def __init__(
        self,
        card: VirtualPassport,
        port: int = VPCD_PORT,
        host: str = VPCD_HOST,
        *,
        reconnect: bool = True,
    ) -> None:
        self.card = card
        self.port = port
        self.host = host
        self.reconnect = reconnect
        self.connected = threading.Event()
        self.hung_up = threading.Event()
        self.apdus = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def insert(self, timeout: float = 10.0) -> Self:
        """Put the card on the reader: connect and serve; raises TimeoutError if vpcd is absent."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the card is already inserted")
        self._stop.clear()
        self.hung_up.clear()
        self._thread = threading.Thread(target=self._run, name=f"vpcd-card-{self.port}")
        self._thread.daemon = True
        self._thread.start()
        if not self.connected.wait(timeout):
            self.remove()
            raise TimeoutError(f"vpcd is not listening on {self.host}:{self.port}")
        return self

    def remove(self) -> None:
        """Take the card away: close the connection and stop the thread."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.connected.clear()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                sock = self._connect()
                if sock is None:
                    continue
                try:
                    self._serve(sock)
                except HangUp:
                    logger.debug("virtual card on port %d pulled away", self.port)
                    self.hung_up.set()
                    return
                except _Closed:
                    if not self.reconnect or self._stop.is_set():
                        return
                    logger.debug("vpcd on port %d closed the connection", self.port)
                finally:
                    self._close(sock)
        finally:
            self.connected.clear()

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=_SLICE)
        except OSError:
            self._stop.wait(_SLICE)
            return None
        sock.settimeout(_SLICE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self.card.reset()
        self.connected.set()
        return sock

    def _close(self, sock: socket.socket) -> None:
        self.connected.clear()
        self._sock = None
        with contextlib.suppress(OSError):
            sock.close()
        self.card.reset()

    def _recv(self, sock: socket.socket, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            if self._stop.is_set():
                raise _Closed
            try:
                # vpcd writes a message's length and payload in two sends, and Nagle holds
                # the second until the first is acknowledged: acknowledge at once (Linux),
                # or every exchange waits for a delayed ACK (about 40 ms).
                if _QUICKACK is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                chunk = sock.recv(size - len(data))
            except TimeoutError:
                continue
            except OSError:
                raise _Closed from None
            if not chunk:
                raise _Closed
            data += chunk
        return bytes(data)

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        try:
            sock.sendall(encode_message(payload))
        except OSError:
            raise _Closed from None

    def _serve(self, sock: socket.socket) -> None:
        while True:
            size = int.from_bytes(self._recv(sock, 2), "big")
            payload = self._recv(sock, size)
            if len(payload) == 1:
                control = payload[0]
                if control == CTRL_ATR:
                    self._send(sock, self.card.atr)
                elif control in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                    self.card.reset()
                else:
                    logger.warning("unknown vpcd control message %02X", control)
                continue
            self.apdus += 1
            self._send(sock, self.card.process(payload))


def main(argv: Sequence[str] | None = None) -> int:
    """Put a specimen passport (ICAO's ERIKSSON, ANNA MARIA) on a vpcd reader until Ctrl-C."""
    from hardware.smartcard.specimen import SPECIMEN_TD3, issue_passport, make_test_pki

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default=VPCD_HOST, help="vpcd address (default %(default)s)")
    parser.add_argument("--port", type=int, default=VPCD_PORT, help="default %(default)s")
    parser.add_argument("--mrz", default=SPECIMEN_TD3, help="the MRZ (lines joined by \\n)")
    parser.add_argument("--uid", default=None, help="the UID in hex (default 08A1B2C3)")
    parser.add_argument("--csca-out", type=Path, help="write the test CSCA certificate (PEM) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    pki = make_test_pki()
    mrz = args.mrz.replace("\\n", "\n")
    card = issue_passport(mrz, pki=pki, dg2=True)
    if args.uid:
        card.uid = bytes.fromhex(args.uid)
    if args.csca_out:
        args.csca_out.write_bytes(pki.csca_pem)
    with VpcdCard(card, args.port, args.host) as vcard:
        try:
            vcard.insert(timeout=30.0)
            print(f"virtual passport on {args.host}:{args.port}; Ctrl-C to take it away")
            while not vcard.hung_up.is_set():
                time.sleep(0.5)
        except TimeoutError as error:
            print(error)
            return 1
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

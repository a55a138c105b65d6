"""`sentinel card`: PC/SC readers, a card's UID, an eMRTD, or a resident ID card on a SAM module.

`card readers` lists the readers and what is on them. `card read` waits for a card; with
--mrz DOCNO,BIRTH,EXPIRY (dates YYMMDD or YYYY-MM-DD; or the whole MRZ text) it reads the
card as an ICAO 9303 eMRTD (BAC, secure messaging, EF.COM, DG1, EF.SOD, DG2 with --dg2) and
prints the holder's data masked (unless --reveal) and which checks passed; without --mrz it
prints the ATR and the contactless UID (staff and access cards). Passive authentication is
checked against the CSCA certificates given with --csca (a PEM/DER file or a folder). With
--sam PORT it reads a resident identity card on a GA 467 serial module instead, and checks the
ID number's check character and the card's validity dates.

Exit status: 0 read; 1 no card within the timeout, or the card could not be read; 2 a bad
option; 3 no reader, or pcscd not running; 4 Basic Access Control refused (the MRZ
information does not match the document); 5 read, but a check failed (passive
authentication, or a resident card's number or dates). Also runs as
`python -m hardware.smartcard.cli read ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date

from hardware.idcard.ga467 import DEFAULT_BAUDRATE
from hardware.smartcard.errors import (
    AccessDenied,
    CardError,
    ReaderError,
    SmartcardError,
)
from hardware.smartcard.mrz import MrzError, MrzInformation

EXIT_READ = 0
EXIT_NO_READ = 1
EXIT_USAGE = 2  # as argparse's own usage errors
EXIT_NO_READER = 3
EXIT_ACCESS_DENIED = 4
EXIT_CHECK_FAILED = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the card subcommands (readers, read) to the parser of `sentinel card`."""
    commands = parser.add_subparsers(dest="card_command", required=True, metavar="COMMAND")
    readers = commands.add_parser(
        "readers",
        help="list the PC/SC readers and the cards on them",
        description="List the PC/SC readers pcscd knows, with the ATR of any card on them.",
    )
    readers.add_argument("--json", action="store_true", help="print one JSON object")
    read = commands.add_parser(
        "read",
        help="read a card: UID, or an eMRTD with --mrz",
        description="Wait for a card and read it: its UID, or with --mrz an ICAO eMRTD.",
    )
    read.add_argument("--reader", help="part of the reader's name (default: the first reader)")
    read.add_argument(
        "--sam",
        metavar="PORT",
        help="read a resident identity card on a GA 467 SAM module at this serial port instead",
    )
    read.add_argument(
        "--baud", type=int, default=DEFAULT_BAUDRATE, help="the SAM module's speed (115200)"
    )
    read.add_argument(
        "--mrz",
        help="DOCNO,BIRTH,EXPIRY for Basic Access Control (dates YYMMDD or YYYY-MM-DD)",
    )
    read.add_argument("--json", action="store_true", help="print one JSON object")
    read.add_argument("--reveal", action="store_true", help="print the holder's data unmasked")
    read.add_argument("--dg2", action="store_true", help="read DG2 (the face image) too")
    read.add_argument("--csca", help="CSCA certificates for passive authentication")
    read.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for a card (default 10)"
    )


def run(args: argparse.Namespace) -> int:
    """Run `card readers` or `card read`; returns the exit status."""
    if args.card_command == "readers":
        return _readers(args)
    return _read(args)


def _readers(args: argparse.Namespace) -> int:
    from hardware.smartcard.pcsc import PcscReader, list_readers

    try:
        found = []
        for name in list_readers():
            with PcscReader(name) as reader:
                try:
                    atr = reader.wait_for_card(0).hex().upper()
                except CardError:
                    atr = None
            found.append({"reader": name, "atr": atr})
    except ReaderError as error:
        return _fail(args, EXIT_NO_READER, str(error))
    if args.json:
        print(json.dumps({"readers": found}), flush=True)
        return EXIT_READ
    for item in found:
        card = f"card, ATR {item['atr']}" if item["atr"] else "no card"
        print(f"{item['reader']}: {card}", flush=True)
    if not found:
        print("no reader", flush=True)
    return EXIT_READ


def _read_sam(args: argparse.Namespace) -> int:
    from hardware.idcard.samreader import CardReadError, SamReader

    if args.mrz or args.reader:
        return _fail(args, EXIT_USAGE, "--sam reads a resident identity card: no --mrz, --reader")
    with SamReader(args.sam, args.baud) as reader:
        try:
            card = reader.read_card(args.timeout)
        except CardReadError as error:
            return _fail(args, EXIT_NO_READ, str(error))
        status = reader.status
    if card is None:
        if status.state != "ok":
            return _fail(args, EXIT_NO_READER, f"SAM module {status.state}: {status.last_error}")
        return _fail(args, EXIT_NO_READ, f"no card within {args.timeout:g} s")
    problems = card.text.problems(date.today())
    result = {
        "reader": args.sam,
        **card.text.fields(reveal=args.reveal),
        "photo_bytes": len(card.photo),
        "problems": problems,
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False), flush=True)
    else:
        width = max(len(name) for name in result)
        for name, value in result.items():
            shown = "; ".join(value) or "none" if isinstance(value, list) else value
            print(f"{name:>{width}}: {shown}", flush=True)
    return EXIT_CHECK_FAILED if problems else EXIT_READ


def _read(args: argparse.Namespace) -> int:
    if args.sam:
        return _read_sam(args)
    from hardware.smartcard.pcsc import PcscReader
    from hardware.smartcard.sod import load_csca_list

    information = None
    csca = None
    try:
        if args.mrz:
            information = MrzInformation.parse(args.mrz)
        if args.csca:
            csca = load_csca_list(args.csca)
    except (MrzError, OSError, ValueError) as error:
        return _fail(args, EXIT_USAGE, str(error))
    try:
        with PcscReader(args.reader) as reader:
            atr = reader.wait_for_card(args.timeout)
            name = reader.resolve()
            if information is None:
                uid = reader.read_uid()
                return _print_card(args, name, atr, uid)
            document = reader.read_document(information, read_dg2=args.dg2, csca=csca)
    except ReaderError as error:
        return _fail(args, EXIT_NO_READER, str(error))
    except AccessDenied as error:
        return _fail(args, EXIT_ACCESS_DENIED, str(error))
    except SmartcardError as error:
        return _fail(args, EXIT_NO_READ, str(error))
    result = {"reader": name, "atr": atr.hex().upper(), **document.as_dict(reveal=args.reveal)}
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        _print_document(result)
    return EXIT_CHECK_FAILED if document.checks.failed else EXIT_READ


def _print_card(args: argparse.Namespace, name: str, atr: bytes, uid: bytes) -> int:
    if args.json:
        print(json.dumps({"reader": name, "atr": atr.hex().upper(), "uid": uid.hex().upper()}))
    else:
        print(f"reader: {name}\nATR: {atr.hex().upper()}\nUID: {uid.hex().upper()}", flush=True)
    return EXIT_READ


def _print_document(result: dict) -> None:
    checks = result["checks"]
    passive = checks["passive_authentication"]
    why = f" ({passive['reason']})" if passive["reason"] else ""
    lines = [
        f"reader: {result['reader']}",
        f"document: {result['document_code']} {result['issuing_state']} "
        f"{result['document_number']} ({result['format']})",
        f"name: {result['surname']}, {result['given_names']}",
        f"nationality: {result['nationality']}  sex: {result['sex']}  "
        f"birth: {result['birth_date']}  expiry: {result['expiry_date']}",
        f"data groups: {', '.join(f'DG{n}' for n in result['data_groups'])}",
        f"checks: BAC {checks['bac']}, secure messaging {checks['secure_messaging']}, "
        f"passive authentication {passive['outcome']}{why}",
    ]
    if result["face_image"]:
        face = result["face_image"]
        lines.append(f"face image: {face['type']}, {face['bytes']} bytes")
    print("\n".join(lines), flush=True)


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    print(f"sentinel card: {message}", file=sys.stderr, flush=True)
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "exit": code}), flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hardware.smartcard.cli`: the same commands as `sentinel card`."""
    parser = argparse.ArgumentParser(
        prog="python -m hardware.smartcard.cli", description="Smart-card reader commands."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

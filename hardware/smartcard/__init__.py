"""Smart cards over PC/SC: ICAO 9303 eMRTDs (BAC, secure messaging, LDS, passive auth), UIDs.

Modules: mrz (TD1/TD2/TD3, check digits, MRZ information), apdu, bac (keys, mutual
authentication, 3DES secure messaging), lds (TLV, EF.COM, DG1, DG2), sod (EF.SOD, passive
authentication, CSCA lists), emrtd (reading a document over any APDU transport), pcsc
(pyscard readers, events, ATR, UID), virtual_card and vpcd_card (our eMRTD chip behind a
real pcscd through vsmartcard-vpcd), specimen (test documents and PKI), cli (`sentinel
card`), errors. Importing this package does not import pyscard.
"""

from hardware.smartcard.emrtd import Checks, Document, read_emrtd
from hardware.smartcard.errors import (
    AccessDenied,
    CardError,
    CardRemoved,
    CardStatusError,
    DocumentError,
    NoCard,
    ReaderError,
    ReaderNotFound,
    ReaderUnavailable,
    SecureMessagingError,
    SmartcardError,
)
from hardware.smartcard.mrz import Mrz, MrzError, MrzInformation, parse_mrz
from hardware.smartcard.sod import Outcome, PassiveAuthentication, load_csca_list

__all__ = [
    "AccessDenied",
    "CardError",
    "CardRemoved",
    "CardStatusError",
    "Checks",
    "Document",
    "DocumentError",
    "Mrz",
    "MrzError",
    "MrzInformation",
    "NoCard",
    "Outcome",
    "PassiveAuthentication",
    "ReaderError",
    "ReaderNotFound",
    "ReaderUnavailable",
    "SecureMessagingError",
    "SmartcardError",
    "load_csca_list",
    "parse_mrz",
    "read_emrtd",
]

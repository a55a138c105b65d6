"""QR code decoding for camera frames: zxing-cpp first, zbar (through pyzbar) as the fallback."""

import logging
import re
from typing import Protocol

import cv2
import numpy as np
import zxingcpp

logger = logging.getLogger(__name__)

_ZXING_FORMATS = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode)
_TO_GREY = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}


class DecoderStage(Protocol):
    """One decoding library; QrDecoder tries its stages in order until one reads something."""

    name: str

    def decode(self, grey: np.ndarray) -> list[str]:
        """Texts of the QR codes found in a contiguous 2-D uint8 image."""
        ...


class ZxingStage:
    """zxing-cpp, for QR and Micro QR codes; its text honours ECI, else guesses the charset."""

    name = "zxing-cpp"

    def decode(self, grey: np.ndarray) -> list[str]:
        barcodes = zxingcpp.read_barcodes(
            grey,
            formats=_ZXING_FORMATS,
            # The payload as encoded: the default (HRI) rewrites GS1 data and control characters.
            text_mode=zxingcpp.TextMode.Plain,
        )
        return [barcode.text for barcode in barcodes if barcode.valid]


class ZbarStage:
    """zbar, for QR codes, with its guess at the character set undone where it is known to err.

    Raises ImportError (or OSError) when pyzbar or the libzbar shared library is missing.
    """

    name = "zbar"

    def __init__(self) -> None:
        from pyzbar.pyzbar import ZBarSymbol, decode

        self._decode = decode
        self._symbols = [ZBarSymbol.QRCODE]

    def decode(self, grey: np.ndarray) -> list[str]:
        return [_text_from_zbar(symbol.data) for symbol in self._decode(grey, self._symbols)]


class QrDecoder:
    """Reads the QR codes in a frame; zbar is asked only when zxing-cpp finds nothing."""

    def __init__(self, *, use_zbar: bool = True) -> None:
        self.stages: list[DecoderStage] = [ZxingStage()]
        self.has_zbar = False
        if use_zbar:
            try:
                self.stages.append(ZbarStage())
            except (ImportError, OSError) as exc:
                logger.warning(
                    "zbar is unavailable (%s); reading QR codes with zxing-cpp only", exc
                )
            else:
                self.has_zbar = True

    def decode(self, image: np.ndarray) -> list[str]:
        """Texts of the QR codes in a grey (HxW), BGR (HxWx3) or BGRA uint8 image, each once.

        Never raises: an image that is not such an array, or that a library fails on, reads as [].
        """
        grey = _to_grey(image)
        if grey is None:
            return []
        for stage in self.stages:
            try:
                texts = stage.decode(grey)
            except Exception:
                logger.warning("%s failed on a %s image", stage.name, grey.shape, exc_info=True)
                continue
            if texts:
                return list(dict.fromkeys(texts))
        return []


def _to_grey(image: object) -> np.ndarray | None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] in _TO_GREY:
        return cv2.cvtColor(image, _TO_GREY[image.shape[2]])
    return None


# Character sets. zbar returns UTF-8 text, but when a code does not declare its character set
# (no ECI: the usual case) it guesses one, often wrongly: Big5 whenever the bytes fit Big5's
# two-byte pattern (all GB2312 and much UTF-8 text does), else Shift-JIS, ISO-8859-1, UTF-8.
# _text_from_zbar encodes its text back into those guesses and reads the bytes the way this
# kiosk expects them: UTF-8, else GB18030 or Shift-JIS. It keeps zbar's Shift-JIS readings; its
# Big5 and ISO-8859-1 readings give way to GB2312 Chinese or to Japanese.
_ZBAR_GUESSES = ("big5", "shift_jis", "latin-1")
# Kana, or a half-width katakana followed by a half-width voicing mark: Japanese, not Chinese.
_JAPANESE = re.compile("[\u3041-\u30ff]|[\uff66-\uff9d][\uff9e\uff9f]")
# iconv reads Shift-JIS bytes 0x5C and 0x7E as JIS-Roman yen sign and overline; QR texts mean ASCII.
_JIS_ROMAN = str.maketrans({"\u00a5": "\\", "\u203e": "~"})


def _text_from_zbar(data: bytes) -> str:
    """The text of a symbol zbar decoded, with its guess at the character set undone if wrong."""
    text = _decode(data, "utf-8")
    if text is None:
        return _decode_legacy(data) or data.decode("latin-1")
    if text.isascii():
        return text
    raws = {charset: raw for charset in _ZBAR_GUESSES if (raw := _encode(text, charset))}
    for raw in raws.values():
        if (utf8 := _decode(raw, "utf-8")) is not None:
            return utf8  # UTF-8 that zbar read as a legacy charset
    if _JAPANESE.search(text):
        return text.translate(_JIS_ROMAN)  # Shift-JIS, which zbar reads right but for two bytes
    legacy = _decode_legacy(raws["big5"]) if "big5" in raws else None
    if legacy is None and "latin-1" in raws:
        legacy = _decode_legacy(raws["latin-1"])
    if legacy is None:
        return text
    if _zbar_keeps_utf8(data):
        # zbar may have read UTF-8 as such: prefer the other reading only if it is common Chinese.
        return legacy if _is_gb2312(legacy) and not _is_gb2312(text) else text
    return legacy if _is_gb2312(legacy) or _JAPANESE.search(legacy) else text


def _decode_legacy(raw: bytes) -> str | None:
    """GB18030 (a superset of GB2312) or Shift-JIS, whichever fits; Shift-JIS if Japanese."""
    gb = _decode(raw, "gb18030")
    sjis = _decode(raw, "shift_jis")
    if sjis is not None and (gb is None or _JAPANESE.search(sjis)):
        return sjis
    return gb


def _zbar_keeps_utf8(data: bytes) -> bool:
    """Whether zbar's guess for these bytes would have been UTF-8 itself."""
    return (
        not _fits_big5(data)
        and _decode(data, "shift_jis") is None
        # Without a byte in 0x80-0x9F zbar tries ISO-8859-1 before UTF-8, and it always fits.
        and any(0x80 <= byte < 0xA0 for byte in data)
    )


def _fits_big5(data: bytes) -> bool:
    """The test zbar makes: each byte from 0x80 leads a pair ending in 0x40-0x7E or 0xA1-0xFE."""
    position = 0
    while position < len(data):
        byte = data[position]
        if byte == 0xFF:
            return False
        if byte >= 0x80:
            position += 1
            if position == len(data):
                return False
            second = data[position]
            if not (0x40 <= second <= 0x7E or 0xA1 <= second <= 0xFE):
                return False
        position += 1
    return True


def _is_gb2312(text: str) -> bool:
    return _encode(text, "gb2312") is not None


def _decode(raw: bytes, charset: str) -> str | None:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        return None


def _encode(text: str, charset: str) -> bytes | None:
    try:
        return text.encode(charset)
    except UnicodeEncodeError:
        return None

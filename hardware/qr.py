"""Reads QR codes in camera frames: zxing-cpp on each, extra work only where a code may be."""

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import cv2
import numpy as np
import zxingcpp

logger = logging.getLogger(__name__)

_ZXING_FORMATS = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode)
_TO_GREY = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}
# The last character of a QR symbology identifier ("]Q2"): 2, 4 and 6 mean the code has an ECI.
_ECI_MODIFIERS = frozenset("246")

# Rescue work allowed per frame in a live stream: zxing-cpp spends about 5-10 ms on a
# 1280x720 frame, and a frame must reach its decision in under 30 ms.
LIVE_RESCUE_BUDGET_MS = 12.0
_TEXTURE_WIDTH = 320  # candidate_regions looks at the image shrunk to about this width
_CELL = 8  # ... in cells of this many pixels square
_MIN_TEXTURE = 6.0  # mean step (grey levels) below which a cell is flat, whatever the noise
# A cell is textured above this multiple of the image's noise: its 20th percentile cell, as
# a code may fill most of the image but not four fifths of it.
_NOISE_MULTIPLE = 2.5
_SMALL_PATCH = 400  # patches smaller than this (pixels, longer side) are enlarged to rescue


@dataclass(frozen=True)
class Region:
    """A box of an image in pixels: left and top inside it, right and bottom just outside."""

    left: int
    top: int
    right: int
    bottom: int

    @classmethod
    def around(cls, points: Sequence[tuple[float, float]], shape: tuple[int, ...]) -> Self:
        """The smallest box holding the points, clipped to an image of this shape."""
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        return cls(
            max(0, int(min(xs))),
            max(0, int(min(ys))),
            min(shape[1], int(max(xs)) + 1),
            min(shape[0], int(max(ys)) + 1),
        )

    def grown(self, margin: float, shape: tuple[int, ...]) -> Self:
        """The box widened on every side by margin times its longer side, clipped to the image."""
        pad = int(margin * max(self.right - self.left, self.bottom - self.top))
        return type(self)(
            max(0, self.left - pad),
            max(0, self.top - pad),
            min(shape[1], self.right + pad),
            min(shape[0], self.bottom + pad),
        )

    def overlaps(self, other: "Region") -> bool:
        return (
            self.left < other.right
            and other.left < self.right
            and self.top < other.bottom
            and other.top < self.bottom
        )

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The part of the image inside this box, contiguous in memory as the decoders want it."""
        return np.ascontiguousarray(image[self.top : self.bottom, self.left : self.right])

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)


@dataclass(frozen=True)
class QrRead:
    """A code read from an image: its text, the box it was found in, and the method that read it."""

    text: str
    region: Region
    method: str


class _Found(NamedTuple):
    text: str | None  # None: a symbol zxing-cpp located but could not decode
    region: Region


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


RescueMethod = Callable[[np.ndarray], list[str]]


class QrDecoder:
    """Reads the QR codes in an image at about the cost of zxing-cpp alone.

    zxing-cpp reads every image. Only when it reads nothing does the decoder look for places
    that may hold a code: symbols zxing-cpp found but could not decode, and patches of fine
    two-way texture (candidate_regions). On each such place, largest evidence first, it tries
    the rescue methods in order until one reads: other binarizers, a smoothed copy (moiré,
    printed halftone), a contrast-stretched copy (glare, dim screens), a rescaled copy, zbar.
    rescue_budget_ms bounds the time spent rescuing one image (None: no bound, for stills).
    """

    def __init__(
        self,
        *,
        use_zbar: bool = True,
        rescue: bool = True,
        rescue_budget_ms: float | None = None,
        max_candidates: int = 3,
    ) -> None:
        self.rescue_budget_ms = rescue_budget_ms
        self.max_candidates = max_candidates
        self.rescue_methods: list[tuple[str, RescueMethod]] = []
        if rescue:
            self.rescue_methods += [
                ("zxing-global-histogram", _zxing_global_histogram),
                ("zxing-smoothed", _zxing_smoothed),
                ("zxing-equalized", _zxing_equalized),
                ("zxing-rescaled", _zxing_rescaled),
            ]
        self.has_zbar = False
        if use_zbar and rescue:
            try:
                self.rescue_methods.append(("zbar", ZbarStage().decode))
            except (ImportError, OSError) as exc:
                logger.warning("zbar is unavailable (%s); rescuing QR codes without it", exc)
            else:
                self.has_zbar = True

    def decode(self, image: np.ndarray) -> list[str]:
        """Texts of the QR codes in a grey (HxW), BGR (HxWx3) or BGRA uint8 image, each once.

        Never raises: an image that is not such an array, or that a library fails on, reads as [].
        """
        return [read.text for read in self.read(image)]

    def read(self, image: np.ndarray, *, look_first: Region | None = None) -> list[QrRead]:
        """The codes in the image, each text once, with where they are and what read them.

        look_first names a box (where a code was a moment ago): if zxing-cpp reads a code
        there, the rest of the image is not searched.
        """
        grey = _to_grey(image)
        if grey is None:
            return []
        if look_first is not None:
            area = look_first.grown(0.25, grey.shape)
            reads = _decoded(_located(area.crop(grey), area))
            if reads:
                return reads
        whole = Region(0, 0, grey.shape[1], grey.shape[0])
        located = _located(grey, whole, return_errors=bool(self.rescue_methods))
        reads = _decoded(located)
        if reads or not self.rescue_methods:
            return reads
        places = [found.region for found in located] + candidate_regions(grey)
        return _each_text_once(self._rescue(grey, _distinct(places)[: self.max_candidates]))

    def _rescue(self, grey: np.ndarray, places: list[Region]) -> list[QrRead]:
        started = time.perf_counter()
        reads: list[QrRead] = []
        for place in places:
            patch = place.grown(0.1, grey.shape)
            crop = patch.crop(grey)
            for name, method in self.rescue_methods:
                if self._over_budget(started):
                    return reads
                try:
                    texts = method(crop)
                except Exception:
                    logger.warning("%s failed on a %s patch", name, crop.shape, exc_info=True)
                    continue
                if texts:
                    reads += [QrRead(text, patch, name) for text in texts]
                    break
        return reads

    def _over_budget(self, started: float) -> bool:
        if self.rescue_budget_ms is None:
            return False
        return (time.perf_counter() - started) * 1000 > self.rescue_budget_ms


def _located(grey: np.ndarray, area: Region, *, return_errors: bool = False) -> list[_Found]:
    """What zxing-cpp finds in grey, the crop of a frame at area, in the frame's coordinates."""
    try:
        barcodes = _zxing_barcodes(grey, return_errors=return_errors)
    except Exception:
        logger.warning("zxing-cpp failed on a %s image", grey.shape, exc_info=True)
        return []
    found = []
    for barcode in barcodes:
        position = barcode.position
        corners = [
            (point.x, point.y)
            for point in (
                position.top_left,
                position.top_right,
                position.bottom_right,
                position.bottom_left,
            )
        ]
        box = Region.around(corners, grey.shape)
        found.append(
            _Found(
                _text_from_zxing(barcode) if barcode.valid else None,
                Region(
                    box.left + area.left,
                    box.top + area.top,
                    box.right + area.left,
                    box.bottom + area.top,
                ),
            )
        )
    return found


def _decoded(located: list[_Found]) -> list[QrRead]:
    return _each_text_once(
        [
            QrRead(found.text, found.region, "zxing-cpp")
            for found in located
            if found.text is not None
        ]
    )


class LiveQrDecoder:
    """A QrDecoder for a camera's stream: it looks first where it read a code a moment ago.

    A person holds a code still for a second or more, so the next frame's code is most likely
    where the last one was; reading that box alone costs a fraction of the whole frame.
    """

    def __init__(
        self,
        decoder: QrDecoder | None = None,
        *,
        memory_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decoder = decoder or QrDecoder(rescue_budget_ms=LIVE_RESCUE_BUDGET_MS)
        self.memory_seconds = memory_seconds
        self._clock = clock
        self._last: Region | None = None
        self._last_at = 0.0

    def decode(self, image: np.ndarray) -> list[str]:
        """Texts of the QR codes in this frame, as QrDecoder.decode."""
        now = self._clock()
        recent = self._last if now - self._last_at <= self.memory_seconds else None
        reads = self.decoder.read(image, look_first=recent)
        if reads:
            self._last = _union(read.region for read in reads)
            self._last_at = now
        return [read.text for read in reads]


def candidate_regions(grey: np.ndarray, *, limit: int = 4) -> list[Region]:
    """Boxes of a grey image that may hold a QR code, most likely first.

    A QR code is a patch where brightness changes often both across and down. The image is
    shrunk to about 320 pixels wide, the mean absolute step across and down is taken over
    cells of 8x8, and cells where both stand well above the image's own noise (a multiple of
    its 20th-percentile cell) are grouped into connected boxes, the boxes with the most
    texture first. It costs about 0.3 ms on a 1280x720 frame, a twentieth of a zxing-cpp pass.
    """
    height, width = grey.shape
    shrink = max(1, width // _TEXTURE_WIDTH)
    small = (
        cv2.resize(grey, (width // shrink, height // shrink), interpolation=cv2.INTER_AREA)
        if shrink > 1
        else grey
    )
    rows, columns = (small.shape[0] - 1) // _CELL, (small.shape[1] - 1) // _CELL
    if rows < 2 or columns < 2:
        return []
    across = cv2.absdiff(
        small[: rows * _CELL, 1 : columns * _CELL + 1], small[: rows * _CELL, : columns * _CELL]
    )
    down = cv2.absdiff(
        small[1 : rows * _CELL + 1, : columns * _CELL], small[: rows * _CELL, : columns * _CELL]
    )
    cells_across = cv2.resize(across, (columns, rows), interpolation=cv2.INTER_AREA)
    cells_down = cv2.resize(down, (columns, rows), interpolation=cv2.INTER_AREA)
    texture = np.minimum(cells_across, cells_down).astype(np.float32)
    threshold = max(_MIN_TEXTURE, _NOISE_MULTIPLE * float(np.percentile(texture, 20)))
    mask = (texture > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    scored = []
    for label in range(1, count):
        left, top, box_width, box_height, _ = (int(value) for value in stats[label])
        if min(box_width, box_height) < 2 or max(box_width, box_height) > 3 * min(
            box_width, box_height
        ):
            continue
        score = float(texture[labels == label].sum())
        scale = _CELL * shrink
        scored.append(
            (
                score,
                Region(
                    left * scale,
                    top * scale,
                    min(width, (left + box_width) * scale + shrink),
                    min(height, (top + box_height) * scale + shrink),
                ),
            )
        )
    scored.sort(key=lambda item: -item[0])
    return [region for _, region in scored[:limit]]


def _zxing_barcodes(grey: np.ndarray, **options: Any) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(
        grey,
        formats=_ZXING_FORMATS,
        # The payload as encoded: the default (HRI) rewrites GS1 data and control characters.
        text_mode=zxingcpp.TextMode.Plain,
        **options,
    )


def _zxing_texts(grey: np.ndarray, **options: Any) -> list[str]:
    return [_text_from_zxing(code) for code in _zxing_barcodes(grey, **options) if code.valid]


def _zxing_global_histogram(grey: np.ndarray) -> list[str]:
    """One threshold for the whole patch: better than local averaging on textured modules."""
    return _zxing_texts(grey, binarizer=zxingcpp.Binarizer.GlobalHistogram)


def _zxing_smoothed(grey: np.ndarray) -> list[str]:
    """Blurred a little first: washes out moiré, screen pixels and printed halftone."""
    return _zxing_texts(
        cv2.GaussianBlur(grey, (0, 0), 1.0), binarizer=zxingcpp.Binarizer.GlobalHistogram
    )


def _zxing_equalized(grey: np.ndarray) -> list[str]:
    """Histogram equalised first: spreads the few grey levels of a dim, glared or faded code."""
    return _zxing_texts(cv2.equalizeHist(grey))


def _zxing_rescaled(grey: np.ndarray) -> list[str]:
    """Doubled when small (modules of a pixel or two), halved when large (blur and noise)."""
    factor = 2.0 if max(grey.shape) < _SMALL_PATCH else 0.5
    interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    return _zxing_texts(cv2.resize(grey, None, fx=factor, fy=factor, interpolation=interpolation))


def _to_grey(image: object) -> np.ndarray | None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] in _TO_GREY:
        return cv2.cvtColor(image, _TO_GREY[image.shape[2]])
    return None


def _each_text_once(reads: list[QrRead]) -> list[QrRead]:
    seen: set[str] = set()
    unique = []
    for read in reads:
        if read.text not in seen:
            seen.add(read.text)
            unique.append(read)
    return unique


def _distinct(regions: list[Region]) -> list[Region]:
    """The regions without those that overlap one before them."""
    kept: list[Region] = []
    for region in regions:
        if region.area and not any(region.overlaps(other) for other in kept):
            kept.append(region)
    return kept


def _union(regions: Iterable[Region]) -> Region:
    boxes = list(regions)
    return Region(
        min(box.left for box in boxes),
        min(box.top for box in boxes),
        max(box.right for box in boxes),
        max(box.bottom for box in boxes),
    )


def _text_from_zxing(barcode: zxingcpp.Barcode) -> str:
    """The text of a symbol zxing-cpp read, in GB2312 where it took Chinese bytes for Latin-1.

    Without an ECI, zxing-cpp guesses ISO-8859-1, Shift-JIS or UTF-8; GB2312, the usual
    character set of Chinese codes without an ECI, is not among its guesses.
    """
    text = barcode.text
    if text.isascii() or barcode.symbology_identifier[-1:] in _ECI_MODIFIERS:
        return text
    raw = barcode.bytes
    if _decode(raw, "utf-8") is not None or _JAPANESE.search(text):
        return text
    chinese = _decode(raw, "gb18030")
    return chinese if chinese is not None and _is_gb2312(chinese) else text


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

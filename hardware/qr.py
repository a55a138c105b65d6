"""Reads QR codes in camera frames: zxing-cpp on each, extra work only where a code may be."""

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

import cv2
import numpy as np
import zxingcpp

from hardware.qr_grid import flattened

logger = logging.getLogger(__name__)

# QR Code (models 1 and 2) only: zxing-cpp 3 counts Micro QR and rMQR codes as QR codes too,
# and no credential fits a Micro QR Code (35 digits at most) while the smallest, M1, has no
# error correction (a 3-bit check): a finder and a few modules of a damaged QR code read as one.
_ZXING_FORMATS = (
    (zxingcpp.BarcodeFormat.QRCodeModel1, zxingcpp.BarcodeFormat.QRCodeModel2)
    if hasattr(zxingcpp.BarcodeFormat, "QRCodeModel2")
    else (zxingcpp.BarcodeFormat.QRCode,)  # zxing-cpp 2, where QRCode is model 2 alone
)
_TO_GREY = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}
# The last character of a QR symbology identifier ("]Q2"): 2, 4 and 6 mean the code has an ECI.
_ECI_MODIFIERS = frozenset("246")

# LiveQrDecoder's rescue budget: a share of zxing-cpp's own time, and at most this much saved.
LIVE_RESCUE_SHARE = 0.10
LIVE_RESCUE_CAPACITY_MS = 20.0
_TEXTURE_WIDTH = 320  # candidate_regions looks at the image shrunk to about this width
_CELL = 8  # ... in cells of this many pixels square
_MIN_TEXTURE = 6.0  # mean step (grey levels) below which a cell is flat, whatever the noise
# A cell is textured above this multiple of the image's noise: its 20th percentile cell, as
# a code may fill most of the image but not four fifths of it.
_NOISE_MULTIPLE = 2.5
_SAME_LOOK_LEVELS = 10.0  # thumbnails closer than this (mean grey levels) show the same thing
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


@dataclass(frozen=True)
class Scan:
    """What reading one image found and cost: zxing-cpp's pass, and the rescue work after it."""

    reads: list[QrRead]
    zxing_ms: float
    rescue_ms: float
    # Each place the rescue worked on, with how many of the rescue methods it has now tried.
    tried: list[tuple[Region, int]] = field(default_factory=list)
    attempts: int = 0  # rescue methods run
    whole_frame: bool = True  # False: read in look_first's box, no pass over the whole image


@dataclass
class LiveStats:
    """What a LiveQrDecoder has done since it started, for benchmarks and health reports."""

    frames: int = 0
    zxing_ms: float = 0.0
    rescue_ms: float = 0.0
    attempts: int = 0
    reads: int = 0


class QrDecoder:
    """Reads the QR codes in an image at about the cost of zxing-cpp alone.

    zxing-cpp reads every image. Only when it reads nothing does the decoder look for places
    that may hold a code: symbols zxing-cpp found but could not decode, and patches of fine
    two-way texture (candidate_regions). On each such place, strongest evidence first, it
    tries the rescue methods in order until one reads: another binarizer, a smoothed copy
    (moiré, printed halftone), an equalised copy (glare, dim screens), a rescaled copy, the
    code's module grid fitted to folded, crumpled or curved paper and sampled flat
    (hardware.qr_grid), zbar.
    rescue_budget_ms bounds the rescue work on one image (None: no bound, as for stills).
    """

    def __init__(
        self,
        *,
        use_zbar: bool = True,
        rescue: bool = True,
        rescue_budget_ms: float | None = None,
        max_candidates: int = 4,
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
                ("zxing-unwarped", _zxing_unwarped),
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
        return [read.text for read in self.scan(image).reads]

    def read(self, image: np.ndarray, *, look_first: Region | None = None) -> list[QrRead]:
        """The codes in the image, each text once, with where they are and what read them."""
        return self.scan(image, look_first=look_first).reads

    def scan(
        self,
        image: np.ndarray,
        *,
        look_first: Region | None = None,
        method_first: str | None = None,
        rescue_budget_ms: float | None = None,
        already_tried: Callable[[Region, np.ndarray], int] | None = None,
        search_beside_reads: bool = False,
    ) -> Scan:
        """Read the image and say what it cost.

        look_first names a box (where a code was a moment ago), method_first the rescue method
        that read it: if zxing-cpp, or else that method, reads a code in the box, the rest of
        the image is not searched. rescue_budget_ms, if given, replaces the decoder's own.
        already_tried(place, patch) says how many rescue methods earlier frames have tried on
        the same patch (so this frame goes on from there); the Scan says how far each got.
        search_beside_reads looks for textured places beside the codes zxing-cpp read, for a
        second code it could not read (by default only an image with no code read is searched).
        """
        grey = _to_grey(image)
        if grey is None:
            return Scan([], 0.0, 0.0)
        budget = self.rescue_budget_ms if rescue_budget_ms is None else rescue_budget_ms
        may_rescue = bool(self.rescue_methods) and (budget is None or budget > 0)
        started = time.perf_counter()
        first_ms = 0.0  # rescue time spent on look_first's box
        if look_first is not None:
            area = look_first.grown(0.25, grey.shape)
            crop = area.crop(grey)
            reads = _decoded(_located(crop, area))
            zxing_ms = _ms_since(started)
            if reads:
                return Scan(reads, zxing_ms, 0.0, whole_frame=False)
            method = dict(self.rescue_methods).get(method_first or "")
            if method is not None and may_rescue:
                reads = self._try(method_first or "", method, crop, area)
                first_ms = _ms_since(started) - zxing_ms
                if reads:
                    return Scan(reads, zxing_ms, first_ms, attempts=1, whole_frame=False)
                started += first_ms / 1000  # the failed attempt is rescue time, counted below
        whole = Region(0, 0, grey.shape[1], grey.shape[0])
        located = _located(grey, whole, return_errors=bool(self.rescue_methods))
        reads = _decoded(located)
        zxing_ms = _ms_since(started)
        if not may_rescue:
            return Scan(reads, zxing_ms, 0.0)
        rescue_started = time.perf_counter() - first_ms / 1000
        # Symbols zxing-cpp located but could not decode cost nothing more to find; the texture
        # search is for codes it did not even locate.
        places = [found.region for found in located if found.text is None]
        if not reads or search_beside_reads:
            places += candidate_regions(grey)
        places = [place for place in _merged(places) if not _covered(place, reads)]
        tried: list[tuple[Region, int]] = []
        attempts = 0
        for place in places[: self.max_candidates]:
            patch = place.grown(0.1, grey.shape)
            crop = patch.crop(grey)
            done = already_tried(place, crop) if already_tried else 0
            if done >= len(self.rescue_methods):
                continue  # every method failed on this very patch a moment ago
            for name, method in self.rescue_methods[done:]:
                # Over budget, stop; but make one attempt a frame, or a small budget would
                # go on the search for places alone and never reach a method.
                if attempts and budget is not None and _ms_since(rescue_started) > budget:
                    break
                attempts += 1
                done += 1
                found = self._try(name, method, crop, patch)
                if found:
                    reads += found
                    break
            tried.append((place, done))
        return Scan(_each_text_once(reads), zxing_ms, _ms_since(rescue_started), tried, attempts)

    @staticmethod
    def _try(name: str, method: RescueMethod, crop: np.ndarray, patch: Region) -> list[QrRead]:
        if crop.size == 0:
            return []
        try:
            texts = method(crop)
        except Exception:
            logger.warning("%s failed on a %s patch", name, crop.shape, exc_info=True)
            return []
        return [QrRead(text, patch, name) for text in texts]


def _located(grey: np.ndarray, area: Region, *, return_errors: bool = False) -> list[_Found]:
    """What zxing-cpp finds in grey, the crop of a frame at area, in the frame's coordinates."""
    if grey.size == 0:
        return []
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
    """A QrDecoder for a camera's stream: cheap on empty frames, quick on a code held still.

    It looks first where it read a code a moment ago, with the method that read it: a person
    holds a code still for a second or more, and that box alone costs a fraction of the frame.
    Rescue work is paid from a token bucket: each frame earns rescue_share of what a zxing-cpp
    pass over the whole frame costs, plus what reading the remembered box alone saved over such
    a pass, up to capacity_ms saved; rescue may spend what is saved (a last method may overrun;
    the debt is paid from later frames). So over any run of frames the decoder costs at most
    (1 + rescue_share) times zxing-cpp alone (plus capacity_ms), however much texture fools
    the candidate search, while time saved on quiet frames is there when a hard code shows up.
    A place the rescue works on is remembered: the next frame goes on with the next method
    there, and a place where every method failed is left alone for retry_seconds. Every
    whole_frame_every frames the whole frame is read again, and searched beside the codes
    read, so that a second code (a paper code held beside a phone) is not missed.
    """

    def __init__(
        self,
        decoder: QrDecoder | None = None,
        *,
        memory_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        whole_frame_every: int = 5,
        rescue_share: float = LIVE_RESCUE_SHARE,
        capacity_ms: float = LIVE_RESCUE_CAPACITY_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decoder = decoder or QrDecoder()
        self.memory_seconds = memory_seconds
        self.retry_seconds = retry_seconds
        self.whole_frame_every = whole_frame_every
        self._frames_in_box = 0  # frames read in the remembered box alone, in a row
        self.rescue_share = rescue_share
        self.capacity_ms = capacity_ms
        self._clock = clock
        self._last: QrRead | None = None
        self._last_at = 0.0
        self.saved_ms = 0.0  # the bucket: rescue time this decoder may spend now
        self._pass_ms: float | None = None  # a zxing-cpp pass over a whole frame, on average
        # Patches the rescue worked on: where, methods tried, when, and what it looked like.
        self._places: list[tuple[Region, int, float, np.ndarray]] = []
        self._looks: dict[Region, np.ndarray] = {}
        self.stats = LiveStats()

    def decode(self, image: np.ndarray) -> list[str]:
        """Texts of the QR codes in this frame, as QrDecoder.decode."""
        now = self._clock()
        recent = self._last if now - self._last_at <= self.memory_seconds else None
        whole_frame = recent is None or self._frames_in_box + 1 >= self.whole_frame_every
        self._forget_old_places(now)
        scan = self.decoder.scan(
            image,
            look_first=None if whole_frame else recent.region,
            method_first=None if whole_frame else recent.method,
            rescue_budget_ms=max(0.0, self.saved_ms),
            already_tried=self._already_tried,
            search_beside_reads=recent is not None,
        )
        self._frames_in_box = 0 if scan.whole_frame else self._frames_in_box + 1
        if scan.whole_frame:
            self._pass_ms = (
                scan.zxing_ms
                if self._pass_ms is None
                else (0.9 * self._pass_ms + 0.1 * scan.zxing_ms)
            )
            earned = self.rescue_share * scan.zxing_ms
        else:
            typical = self._pass_ms or scan.zxing_ms
            earned = self.rescue_share * typical + max(0.0, typical - scan.zxing_ms)
        self.saved_ms = min(self.capacity_ms, self.saved_ms + earned - scan.rescue_ms)
        self._remember(scan.tried, now)
        self.stats.frames += 1
        self.stats.zxing_ms += scan.zxing_ms
        self.stats.rescue_ms += scan.rescue_ms
        self.stats.attempts += scan.attempts
        self.stats.reads += len(scan.reads)
        if scan.reads:
            self._last = QrRead(
                scan.reads[0].text, _union(read.region for read in scan.reads), scan.reads[0].method
            )
            self._last_at = now
        return [read.text for read in scan.reads]

    def _already_tried(self, place: Region, patch: np.ndarray) -> int:
        """Methods tried on this patch: one that looked the same, at about the same place."""
        look = _thumbnail(patch)
        self._looks[place] = look
        for known, tried, _, known_look in self._places:
            if _same_place(known, place) and _same_look(known_look, look):
                return tried
        return 0

    def _forget_old_places(self, now: float) -> None:
        # A patch every method failed on is kept (and skipped) for retry_seconds; one that is
        # still being worked through, while it stays in view (memory_seconds).
        exhausted = len(self.decoder.rescue_methods)
        self._places = [
            entry
            for entry in self._places
            if now - entry[2]
            <= (self.retry_seconds if entry[1] >= exhausted else self.memory_seconds)
        ]

    def _remember(self, worked_on: list[tuple[Region, int]], now: float) -> None:
        kept = [
            entry
            for entry in self._places
            if not any(_same_place(entry[0], place) for place, _ in worked_on)
        ]
        self._places = kept + [
            (place, tried, now, self._looks[place]) for place, tried in worked_on
        ]
        self._looks.clear()


def candidate_regions(grey: np.ndarray, *, limit: int = 4) -> list[Region]:
    """Boxes of a grey image that may hold a QR code, most likely first.

    A QR code is a patch where brightness changes often both across and down. The image is
    shrunk to about 320 pixels wide, the mean absolute step across and down is taken over
    cells of 8x8, and cells where both stand well above the image's own noise (a multiple of
    its 20th-percentile cell) are grouped into connected boxes, the boxes with the most
    texture first. It costs about 0.15 ms on a 1280x720 frame.
    """
    height, width = grey.shape
    shrink = max(1, width // _TEXTURE_WIDTH)
    small = (
        # Bilinear, not area averaging: a quarter of the cost, and noise is judged below anyway.
        cv2.resize(grey, (width // shrink, height // shrink), interpolation=cv2.INTER_LINEAR)
        if shrink > 1
        else grey
    )
    rows, columns = (small.shape[0] - 1) // _CELL, (small.shape[1] - 1) // _CELL
    if rows < 2 or columns < 2:
        return []
    inner = small[: rows * _CELL, : columns * _CELL]
    across = cv2.absdiff(small[: rows * _CELL, 1 : columns * _CELL + 1], inner)
    down = cv2.absdiff(small[1 : rows * _CELL + 1, : columns * _CELL], inner)
    cells_across = cv2.resize(across, (columns, rows), interpolation=cv2.INTER_AREA)
    cells_down = cv2.resize(down, (columns, rows), interpolation=cv2.INTER_AREA)
    texture = np.minimum(cells_across, cells_down)
    noise = float(np.partition(texture.ravel(), texture.size // 5)[texture.size // 5])
    mask = (texture > max(_MIN_TEXTURE, _NOISE_MULTIPLE * noise)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return []
    scores = np.bincount(labels.ravel(), weights=texture.ravel(), minlength=count)
    scale = _CELL * shrink
    regions = []
    for label in np.argsort(-scores[1:]) + 1:
        left, top, box_width, box_height, _ = (int(value) for value in stats[label])
        if min(box_width, box_height) < 2:
            continue  # smaller than two cells: too small to rescue
        regions.append(
            Region(
                left * scale,
                top * scale,
                min(width, (left + box_width) * scale + shrink),
                min(height, (top + box_height) * scale + shrink),
            )
        )
        if len(regions) == limit:
            break
    return regions


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


def _zxing_unwarped(grey: np.ndarray) -> list[str]:
    """The code's module grid fitted to bent paper and sampled flat (hardware.qr_grid).

    zxing-cpp reads each clean image, and its error correction checks every module sampled.
    """
    for image in flattened(grey):
        texts = _zxing_texts(image)
        if texts:
            return texts
    return []


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


def _merged(regions: list[Region]) -> list[Region]:
    """The regions, each merged with those it overlaps, in order of first appearance."""
    kept: list[Region] = []
    for region in regions:
        if not region.area:
            continue
        overlapping = [other for other in kept if region.overlaps(other)]
        if overlapping:
            position = kept.index(overlapping[0])
            kept = [other for other in kept if other not in overlapping]
            kept.insert(min(position, len(kept)), _union([region, *overlapping]))
        else:
            kept.append(region)
    return kept


def _same_place(first: Region, second: Region) -> bool:
    """Whether two boxes overlap by at least half of their union."""
    width = min(first.right, second.right) - max(first.left, second.left)
    height = min(first.bottom, second.bottom) - max(first.top, second.top)
    if width <= 0 or height <= 0:
        return False
    overlap = width * height
    return overlap >= 0.5 * (first.area + second.area - overlap)


def _thumbnail(patch: np.ndarray) -> np.ndarray:
    """16x16 samples of the patch, a cheap signature of what it shows (texture included)."""
    return cv2.resize(patch, (16, 16), interpolation=cv2.INTER_NEAREST).astype(np.int16)


def _same_look(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two thumbnails differ by less than a few grey levels on average (sensor noise)."""
    return float(np.mean(np.abs(first - second))) < _SAME_LOOK_LEVELS


def _covered(place: Region, reads: list[QrRead]) -> bool:
    return any(place.overlaps(read.region) for read in reads)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


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

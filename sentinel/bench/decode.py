"""`sentinel bench decode`: QR decoders alone and ours, on real photos and synthetic sets."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from hardware.qr import LiveQrDecoder, QrDecoder

if TYPE_CHECKING:
    from hardware.scenes import Scene

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEV_SET = SHARED_DATA / "qr" / "zxing-cpp"
DEV_FOLDERS = ("qrcode-1", "qrcode-2", "qrcode-3", "qrcode-5")
PHOTO_SUFFIXES = (".png", ".jpg", ".webp")
OURS = "ours"
REFERENCE = "zxing-cpp"  # ratios are to this decoder alone
# qrcode-2/16.webp holds two codes, an outer and an inner one; its 16.txt names only the inner.
DEV_SET_OTHER_CODES = {
    "qrcode-2/16.webp": ("[外側QRコード]\r\n \r\n*ﾀﾞﾌﾞﾙQR*\r\nhttp://d-qr.net/ex/",)
}


@dataclass(frozen=True)
class Sample:
    """One grey image and the texts of the codes in it (none for an empty frame)."""

    name: str
    grey: np.ndarray
    texts: tuple[str, ...]
    others: tuple[str, ...] = ()  # codes also in the image that the set does not count


@dataclass
class Tally:
    """One decoder's results on one set."""

    read: int = 0
    codes: int = 0
    misreads: list[str] = field(default_factory=list)
    code_ms: list[float] = field(default_factory=list)
    empty_ms: list[float] = field(default_factory=list)
    missed: set[str] = field(default_factory=set)  # "sample name|text" of codes not read
    crashes: int = 0  # calls that raised instead of returning (counted as reading nothing)
    # zxing-cpp alone, timed on the same frames in turn (the live row): what its ratios are to.
    reference_code_ms: list[float] = field(default_factory=list)
    reference_empty_ms: list[float] = field(default_factory=list)

    def count(self, sample: Sample, texts: list[str]) -> None:
        """Count what a decoder read in a sample against what the sample holds."""
        self.codes += len(sample.texts)
        self.read += sum(text in texts for text in sample.texts)
        self.missed |= {f"{sample.name}|{text}" for text in sample.texts if text not in texts}
        self.misreads += [
            f"{sample.name}: {text[:40]!r}"
            for text in texts
            if text not in sample.texts and text not in sample.others
        ]


Decode = Callable[[np.ndarray], list[str]]


def dev_set(root: Path = DEV_SET) -> list[Sample]:
    """The 98 photos of zxing-cpp's test samples, each with the text its N.txt expects."""
    samples = []
    for folder in DEV_FOLDERS:
        for path in sorted((root / folder).iterdir()):
            if path.suffix in PHOTO_SUFFIXES:
                expected = path.with_suffix(".txt").read_bytes().decode("utf-8")
                grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                name = f"{folder}/{path.name}"
                others = DEV_SET_OTHER_CODES.get(name, ())
                samples.append(Sample(name, grey, (expected,), others))
    return samples


def kiosk_set(seed: int, codes: int, empty: int) -> list[Sample]:
    """The synthetic kiosk frames of hardware.scenes, as grey images (as the camera gives them)."""
    from hardware import scenes

    return _grey(scenes.kiosk_set(seed, codes=codes, empty=empty))


def warped_set(seed: int, codes: int, empty: int) -> list[Sample]:
    """Paper codes as people carry them (hardware.scenes.warped_set), as grey images.

    Its frames without a code include codes damaged past reading: any text read there is a
    misread.
    """
    from hardware import scenes

    return _grey(scenes.warped_set(seed, codes=codes, empty=empty))


def _grey(frames: list[Scene]) -> list[Sample]:
    return [
        Sample(scene.name, cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY), scene.texts)
        for scene in frames
    ]


def decoders(names: Sequence[str] | None = None) -> dict[str, Decode]:
    """Each library alone, called as its documentation shows, and ours on stills."""
    import zxingcpp

    def zxing_alone(grey: np.ndarray) -> list[str]:
        formats = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode)
        return [code.text for code in zxingcpp.read_barcodes(grey, formats=formats)]

    def opencv(detector: Any) -> Decode:
        def opencv_alone(grey: np.ndarray) -> list[str]:
            # The bytes form: the str form raises on payloads not in UTF-8 (GB2312, Shift-JIS).
            found, payloads, _, _ = detector.detectAndDecodeBytesMulti(grey)
            return (
                [bytes(raw).decode("utf-8", "replace") for raw in payloads if raw] if found else []
            )

        return opencv_alone

    available: dict[str, Decode] = {"zxing-cpp": zxing_alone}
    try:
        from pyzbar.pyzbar import ZBarSymbol
        from pyzbar.pyzbar import decode as zbar_decode
    except (ImportError, OSError):
        pass  # reported as absent below
    else:

        def zbar_alone(grey: np.ndarray) -> list[str]:
            symbols = zbar_decode(grey, [ZBarSymbol.QRCODE])
            return [symbol.data.decode("utf-8", "replace") for symbol in symbols]

        available["zbar"] = zbar_alone
    available["opencv"] = opencv(cv2.QRCodeDetector())
    available["opencv-aruco"] = opencv(cv2.QRCodeDetectorAruco())
    available[OURS] = QrDecoder().decode
    if names is None:
        return available
    unknown = [name for name in names if not any(key.startswith(name) for key in available)]
    if unknown:
        raise ValueError(f"unknown decoders {unknown}; known: {sorted(available)}")
    return {key: value for key, value in available.items() if any(key.startswith(n) for n in names)}


def measure(samples: list[Sample], decode_with: dict[str, Decode], repeat: int) -> dict[str, Tally]:
    """Each decoder on each sample, interleaved so that machine load falls on all alike.

    The order of the decoders turns by one from sample to sample, so that none always runs
    with the caches another has just filled (or emptied).
    """
    tallies = {name: Tally() for name in decode_with}
    order = list(decode_with.items())
    for number, sample in enumerate(samples):
        turn = number % len(order)
        for name, decode in order[turn:] + order[:turn]:
            tally = tallies[name]
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                try:
                    texts = decode(sample.grey)
                except Exception:  # OpenCV raises on QR modes it lacks (Hanzi)
                    texts = []
                    tally.crashes += 1
                times.append((time.perf_counter() - started) * 1000)
            (tally.code_ms if sample.texts else tally.empty_ms).append(statistics.median(times))
            tally.count(sample, texts)
    return tallies


def measure_live(
    samples: list[Sample], burst: int, fps: float = 15.0, reference: Decode | None = None
) -> Tally:
    """Our live decoder on each sample held in view for burst frames, one sample after another.

    One LiveQrDecoder sees the whole sequence, as a kiosk's camera would, with its clock
    advancing 1/fps a frame; a code counts as read if any frame of its burst reads it. Times
    are per frame, so its rescue budget, earned and spent across frames, shows as it runs.
    The reference decoder (zxing-cpp alone), if given, is timed on each frame too, before or
    after ours in turn, so that the ratios hold however the machine's load changes.
    """
    now = [0.0]
    live = LiveQrDecoder(clock=lambda: now[0])
    tally = Tally()
    frame = 0
    for sample in samples:
        seen: list[str] = []
        for _ in range(burst):
            now[0] += 1 / fps
            frame += 1
            if reference is not None and frame % 2:
                _timed(reference, sample, tally.reference_code_ms, tally.reference_empty_ms)
            texts = _timed(live.decode, sample, tally.code_ms, tally.empty_ms)
            if reference is not None and not frame % 2:
                _timed(reference, sample, tally.reference_code_ms, tally.reference_empty_ms)
            seen += [text for text in texts if text not in seen]
        tally.count(sample, seen)
    return tally


def _timed(
    decode: Decode, sample: Sample, code_ms: list[float], empty_ms: list[float]
) -> list[str]:
    """What decode reads in the sample; its time goes to code_ms or empty_ms."""
    started = time.perf_counter()
    texts = decode(sample.grey)
    (code_ms if sample.texts else empty_ms).append((time.perf_counter() - started) * 1000)
    return texts


def table(tallies: dict[str, Tally]) -> list[str]:
    """A Markdown table of the tallies; ratios are to zxing-cpp alone in the same run.

    A tally that timed zxing-cpp alone on its own frames (the live row) has its ratios to that.
    """
    reference = tallies.get(REFERENCE)
    lines = [
        "| decoder | read | misreads | median ms | p95 ms | empty-frame ms (mean) "
        "| vs zxing-cpp: code median / empty mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, tally in tallies.items():
        code_median = _median(tally.code_ms)
        empty_mean = _mean(tally.empty_ms)
        ratios = "—"
        if tally.reference_code_ms or tally.reference_empty_ms:
            ratios = (
                f"{_ratio(code_median, _median(tally.reference_code_ms))} / "
                f"{_ratio(empty_mean, _mean(tally.reference_empty_ms))}"
            )
        elif reference is not None and name != REFERENCE:
            ratios = (
                f"{_ratio(code_median, _median(reference.code_ms))} / "
                f"{_ratio(empty_mean, _mean(reference.empty_ms))}"
            )
        lines.append(
            f"| {name} | {tally.read}/{tally.codes} | {len(tally.misreads)} | "
            f"{_ms(code_median)} | {_ms(_p95(tally.code_ms))} | {_ms(empty_mean)} | {ratios} |"
        )
    return lines


def read_by_method(samples: list[Sample]) -> dict[str, int]:
    """How many of the samples' codes our decoder read with each of its methods.

    In the order it tries them: zxing-cpp, then each rescue method, credited with the codes it
    read first.
    """
    decoder = QrDecoder()
    methods = Counter(
        read.method
        for sample in samples
        for read in decoder.read(sample.grey)
        if read.text in sample.texts
    )
    order = ["zxing-cpp", *(name for name, _ in decoder.rescue_methods)]
    return {method: methods[method] for method in order}


def missed_by_ours(tallies: dict[str, Tally]) -> dict[str, list[str]]:
    """For each of our rows, the codes some library alone read and it did not (target: none)."""
    singles = [tally for name, tally in tallies.items() if not name.startswith(OURS)]
    if not singles:
        return {}
    missed = {}
    for name, ours in tallies.items():
        if name.startswith(OURS):
            read_by_some = {
                code for code in ours.missed if any(code not in tally.missed for tally in singles)
            }
            missed[name] = sorted(read_by_some)
    return missed


def as_json(tallies: dict[str, Tally]) -> dict[str, object]:
    return {
        name: {
            "read": tally.read,
            "codes": tally.codes,
            "misreads": tally.misreads,
            "median_ms": _round(_median(tally.code_ms)),
            "p95_ms": _round(_p95(tally.code_ms)),
            "empty_mean_ms": _round(_mean(tally.empty_ms)),
            "crashes": tally.crashes,
        }
        for name, tally in tallies.items()
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ratio(value: float | None, reference: float | None) -> str:
    return "—" if value is None or not reference else f"{value / reference:.2f}x"

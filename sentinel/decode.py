"""`sentinel decode`: the QR codes in image and video files, read as the kiosk reads them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Exit statuses: every input held a code / some input held none / some input could not be read.
EXIT_ALL_READ = 0
EXIT_SOME_EMPTY = 1
EXIT_SOME_UNREADABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image or video files, or directories of them (each file reported on its own)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per file: {"path": ..., "texts": [...], "ms": ...}',
    )


@dataclass
class FileResult:
    """What one file held: the distinct texts in order of first sight, and the decoding time."""

    path: str
    texts: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "path": self.path,
            "texts": self.texts,
            "ms": round(self.seconds * 1000, 2),
        }
        if self.frames > 1:
            result["frames"] = self.frames
        if self.error is not None:
            result["error"] = self.error
        return result


def decode_paths(paths: list[str]) -> Iterator[FileResult]:
    """Each file under paths with what it holds; a video is read frame by frame as a camera.

    Files are reported under their own names, whatever they hold ('#', '?', spaces, commas):
    a path here is only ever a path, never a camera name or a list.
    """
    from hardware.frames import VIDEO_SUFFIXES, FrameSourceError, ReplaySource
    from hardware.qr import LiveQrDecoder, QrDecoder

    still = QrDecoder()  # every rescue for a picture; a video's frames get the kiosk's decoder
    for path in paths:
        try:
            files = ReplaySource(Path(path)).files
        except FrameSourceError as error:
            yield FileResult(path, error=str(error))
            continue
        for file in files:
            decoder = LiveQrDecoder() if file.suffix.lower() in VIDEO_SUFFIXES else still
            result = FileResult(str(file))
            for frame in ReplaySource(file).frames():
                started = time.perf_counter()
                texts = decoder.decode(frame.image)
                result.seconds += time.perf_counter() - started
                result.frames += 1
                result.texts += [text for text in texts if text not in result.texts]
            if result.frames == 0:
                result.error = "not a readable image or video"
            yield result


def run(args: argparse.Namespace) -> int:
    status = EXIT_ALL_READ
    for result in decode_paths(args.paths):
        if result.error is not None:
            status = EXIT_SOME_UNREADABLE
        elif not result.texts:
            status = max(status, EXIT_SOME_EMPTY)
        if args.json:
            print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)
        elif result.error is not None:
            print(f"{result.path}: error: {result.error}", file=sys.stderr)
        else:
            shown = "\n  ".join(result.texts) if result.texts else "(no code)"
            print(f"{result.path} ({result.seconds * 1000:.1f} ms):\n  {shown}", flush=True)
    return status

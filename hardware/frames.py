"""Camera frame sources: recorded images and videos replayed, or a live camera through OpenCV."""

import abc
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".pgm", ".ppm", ".pbm", ".pnm", ".tif", ".tiff"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm"})
_V4L2_DEVICE = re.compile(r"/dev/video\d+")


@dataclass(frozen=True)
class Frame:
    """One picture from a source.

    image: uint8, HxW (grey) or HxWx3 (BGR, OpenCV's order); index: 0, 1, 2... within the
    source; captured_at: time.monotonic() when it was produced; origin: the file it came from
    ("path#N" for frame N of a video) or the camera ("camera:0").
    """

    image: np.ndarray
    index: int
    captured_at: float
    origin: str


class FrameSourceError(Exception):
    """A source cannot deliver frames: a path that does not exist, or a camera that stays away."""


class FrameSource(abc.ABC):
    """Yields frames until exhausted or closed; closing is idempotent and works from any thread."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source is exhausted (a replay) or closed."""

    def close(self) -> None:
        """Make frames() stop."""
        self._closed.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ReplaySource(FrameSource):
    """Recorded images and videos, played back in order as if a camera produced them.

    Each path is an image, a video (by its suffix) or a directory, whose image and video files
    are taken sorted by name (not recursively). fps, if given, paces the frames to at most that
    many a second; loop starts again after the last. A path that does not exist raises
    FrameSourceError; a file that cannot be read is skipped with a warning.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        fps: float | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(paths, str | Path):
            paths = [paths]  # one path, not a string's letters
        if not paths:
            raise ValueError("no paths to replay")
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.files = _expand(paths)
        self.fps = fps
        self.loop = loop
        self._warned: set[Path] = set()

    def frames(self) -> Iterator[Frame]:
        interval = 1 / self.fps if self.fps else 0.0
        index = 0
        due = time.monotonic()
        while True:
            start_index = index
            for image, origin in self._pictures():
                if self._closed.wait(max(0.0, due - time.monotonic())):
                    return
                captured_at = time.monotonic()
                yield Frame(image, index, captured_at, origin)
                index += 1
                due = captured_at + interval
            # Looping over files none of which can be read would spin forever.
            if not self.loop or index == start_index:
                return

    def _pictures(self) -> Iterator[tuple[np.ndarray, str]]:
        for path in self.files:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                yield from self._video(path)
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self._warn_unreadable(path, "image")
            else:
                yield image, str(path)

    def _video(self, path: Path) -> Iterator[tuple[np.ndarray, str]]:
        capture = cv2.VideoCapture(str(path))
        try:
            number = 0
            while capture.isOpened():
                ok, image = capture.read()
                if not ok or image is None:
                    break
                yield image, f"{path}#{number}"
                number += 1
            if number == 0:
                self._warn_unreadable(path, "video")
        finally:
            capture.release()

    def _warn_unreadable(self, path: Path, kind: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            logger.warning("skipping %s: not a readable %s", path, kind)


class OpenCVCapture(FrameSource):
    """A camera through cv2.VideoCapture (V4L2 for an index or /dev/videoN).

    The camera is opened when frames() starts. When a read fails (unplugged, stalled) the
    camera is released and reopened every reopen_after seconds, with one warning per outage;
    after max_failures failed attempts in a row (None: never) frames() raises FrameSourceError.
    fps, if given, is the frame rate asked of the camera.
    """

    def __init__(
        self,
        device: int | str = 0,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float | None = None,
        reopen_after: float = 2.0,
        max_failures: int | None = None,
    ) -> None:
        super().__init__()
        if reopen_after < 0:
            raise ValueError(f"reopen_after must not be negative, not {reopen_after}")
        if max_failures is not None and max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, not {max_failures}")
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.reopen_after = reopen_after
        self.max_failures = max_failures
        self.origin = f"camera:{device}"
        self._capture: cv2.VideoCapture | None = None
        # Held while the capture is used, so that close() from another thread waits for a read.
        self._lock = threading.Lock()

    def frames(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        try:
            while True:
                with self._lock:
                    if self._closed.is_set():
                        return
                    image = self._read()
                    captured_at = time.monotonic()
                if image is not None:
                    if failures:
                        logger.info("%s: frames again after %d failures", self.origin, failures)
                    failures = 0
                    yield Frame(image, index, captured_at, self.origin)
                    index += 1
                    continue
                failures += 1
                if failures == 1:
                    logger.warning(
                        "%s: no frame; reopening every %g s", self.origin, self.reopen_after
                    )
                if self.max_failures is not None and failures >= self.max_failures:
                    raise FrameSourceError(
                        f"{self.origin}: no frame after {failures} attempts to read or open it"
                    )
                self._closed.wait(self.reopen_after)
        finally:
            self._release()

    def close(self) -> None:
        super().close()
        self._release()

    def _read(self) -> np.ndarray | None:
        """One frame, or None after releasing the capture; call with the lock held."""
        if self._capture is None:
            self._capture = self._open()
        ok, image = self._capture.read() if self._capture.isOpened() else (False, None)
        if ok and image is not None:
            return image
        self._capture.release()
        self._capture = None
        return None

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.device, int) or _V4L2_DEVICE.fullmatch(self.device):
            capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        else:
            capture = cv2.VideoCapture(self.device)
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        return capture

    def _release(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None


def open_source(spec: str, *, fps: float | None = None, loop: bool = False) -> FrameSource:
    """The source a configuration string names.

    "camera:N" or "/dev/videoN" is a camera; anything else is a path (image, video or
    directory), or several separated by commas, to replay.
    """
    if spec.startswith("camera:"):
        number = spec.removeprefix("camera:")
        if not number.isdigit():
            raise ValueError(f"a camera is named camera:N with N a number, not {spec!r}")
        return OpenCVCapture(int(number), fps=fps)
    if _V4L2_DEVICE.fullmatch(spec):
        return OpenCVCapture(spec, fps=fps)
    return ReplaySource(
        [part.strip() for part in spec.split(",") if part.strip()], fps=fps, loop=loop
    )


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                (
                    child
                    for child in path.iterdir()
                    if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                ),
                key=lambda child: child.name,
            )
            if not found:
                logger.warning("%s holds no image or video files", path)
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise FrameSourceError(f"no such file or directory: {path}")
    return files

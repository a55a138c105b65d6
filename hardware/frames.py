"""Camera frame sources: recorded images and videos replayed, or a live camera kept alive."""

import abc
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from hardware.closing import Closing

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".pgm", ".ppm", ".pbm", ".pnm", ".tif", ".tiff"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm"})
_V4L2_DEVICE = re.compile(r"/dev/video\d+")
# OpenCV's V4L2 backend bounds each wait for a frame by this many whole seconds (default 10).
# It reads the variable once per process, when a V4L2 camera is first read.
V4L2_TIMEOUT_VARIABLE = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"
# V4L2's exposure_auto menu, which OpenCV passes through unchanged: 1 is manual, 3 is aperture
# priority, the automatic mode UVC (USB) cameras offer.
_V4L2_EXPOSURE_MANUAL = 1
_V4L2_EXPOSURE_AUTO = 3
# V4L2's exposure_time_absolute counts units of 100 µs.
_V4L2_EXPOSURE_UNIT_US = 100


@dataclass(frozen=True)
class Frame:
    """One picture from a source.

    image: uint8, HxW (grey) or HxWx3 (BGR, OpenCV's order), the picture to decode; index: 0, 1,
    2... within the source; captured_at: time.monotonic() when it was produced; origin: the file
    it came from ("path#N" for frame N of a video) or the camera ("camera:0", "picamera:0");
    display: the same moment at display quality (HxWx3 BGR) when the source decodes a smaller
    grey picture (the Pi camera), else None: show image itself.
    """

    image: np.ndarray
    index: int
    captured_at: float
    origin: str
    display: np.ndarray | None = None


class FrameSourceError(Exception):
    """A source cannot deliver frames: a path that does not exist, or a camera that stays away."""


class FrameSource(Closing):
    """Yields frames until exhausted or closed; closing is idempotent and works from any thread."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source is exhausted (a replay) or closed."""

    def close(self) -> None:
        """Make frames() stop."""
        self._closed.set()


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


@dataclass(frozen=True)
class CameraSettings:
    """What to ask of a live camera; each backend logs, once per opening, what it did not take.

    size: (width, height) of the picture a USB camera delivers, or of the Pi camera's main
    stream, the one to display. decode_size: the Pi camera's low-resolution stream, whose grey
    (Y) plane is what gets decoded. fps: frames a second, None for the camera's default.
    exposure_us: None for automatic exposure, else a fixed exposure time in microseconds.
    gain: the Pi camera's analogue gain (1.0 = none) with a fixed exposure, None to leave it.
    focus: None for continuous autofocus where the camera has it, else a fixed lens position:
    dioptres on the Pi camera (0 = infinity, 2 = half a metre), the driver's focus_absolute
    units on a USB camera. fourcc: the pixel format asked of a USB camera, e.g. "MJPG", which
    lets USB 2 cameras send 1280x720 at 30 fps.
    """

    size: tuple[int, int] = (1280, 720)
    decode_size: tuple[int, int] = (640, 360)
    fps: float | None = None
    exposure_us: int | None = None
    gain: float | None = None
    focus: float | None = None
    fourcc: str | None = None

    def __post_init__(self) -> None:
        for name, (width, height) in (("size", self.size), ("decode_size", self.decode_size)):
            if width <= 0 or height <= 0:
                raise ValueError(f"{name} must be positive, not {width}x{height}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, not {self.fps}")
        if self.exposure_us is not None and self.exposure_us <= 0:
            raise ValueError(f"exposure_us must be positive, not {self.exposure_us}")
        if self.gain is not None:
            if self.exposure_us is None:
                raise ValueError("gain goes with a fixed exposure: set exposure_us too")
            if self.gain < 1:
                raise ValueError(f"gain must be at least 1.0, not {self.gain}")
        if self.focus is not None and self.focus < 0:
            raise ValueError(f"focus must not be negative, not {self.focus}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be four characters, not {self.fourcc!r}")


@dataclass(frozen=True)
class CameraStatus:
    """A live camera's health, for the agent to report.

    state: "ok" (delivering frames, or not tried yet) or "failing" (the latest attempt to open
    or read it failed); since: time.monotonic() when it entered that state; last_error: the
    latest failure, kept after the camera recovers (None if it never failed).
    """

    state: Literal["ok", "failing"]
    since: float
    last_error: str | None


class CameraFailure(Exception):
    """One failed attempt to open or read a camera; LiveCamera reports it and tries again."""


class LiveCamera(FrameSource):
    """A camera, opened when frames() starts and reopened after failures; backends do the I/O.

    When opening or reading fails (absent, unplugged, no frame within stall_timeout seconds),
    the camera is closed and reopened every reopen_after seconds, with one warning per outage;
    after max_failures failed attempts in a row (None: never) frames() raises FrameSourceError.
    status tells the camera's health to any thread. close() from another thread waits for a
    capture under way, which stall_timeout bounds.
    """

    def __init__(
        self,
        origin: str,
        settings: CameraSettings,
        *,
        reopen_after: float,
        max_failures: int | None,
        stall_timeout: float,
    ) -> None:
        super().__init__()
        if reopen_after < 0:
            raise ValueError(f"reopen_after must not be negative, not {reopen_after}")
        if max_failures is not None and max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, not {max_failures}")
        if stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be positive, not {stall_timeout}")
        self.origin = origin
        self.settings = settings
        self.reopen_after = reopen_after
        self.max_failures = max_failures
        self.stall_timeout = stall_timeout
        self._status = CameraStatus("ok", time.monotonic(), None)
        # Held while the camera is used, so that close() from another thread waits for a read.
        self._lock = threading.Lock()

    @property
    def status(self) -> CameraStatus:
        """The camera's health now."""
        return self._status

    def frames(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        try:
            while True:
                with self._lock:
                    if self._closed.is_set():
                        return
                    try:
                        image, display = self._capture()
                        error = None
                    except CameraFailure as failure:
                        self._close_camera()
                        error = str(failure)
                    captured_at = time.monotonic()
                if error is None:
                    if failures:
                        logger.info("%s: frames again after %d failures", self.origin, failures)
                    if self._status.state != "ok":
                        self._status = CameraStatus("ok", captured_at, self._status.last_error)
                    failures = 0
                    yield Frame(image, index, captured_at, self.origin, display)
                    index += 1
                    continue
                failures += 1
                since = self._status.since if self._status.state == "failing" else captured_at
                self._status = CameraStatus("failing", since, error)
                if failures == 1:
                    logger.warning(
                        "%s: %s; reopening every %g s", self.origin, error, self.reopen_after
                    )
                if self.max_failures is not None and failures >= self.max_failures:
                    raise FrameSourceError(
                        f"{self.origin}: no frame after {failures} attempts to read or open it"
                        f" (last: {error})"
                    )
                self._closed.wait(self.reopen_after)
        finally:
            self._release()

    def close(self) -> None:
        super().close()
        self._release()

    @abc.abstractmethod
    def _capture(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The next picture to decode and its display image, opening the camera if it is closed.

        Raises CameraFailure when the camera cannot be opened or gives no frame; called with
        the lock held.
        """

    @abc.abstractmethod
    def _close_camera(self) -> None:
        """Close the camera if it is open; called with the lock held, must not raise."""

    def _release(self) -> None:
        with self._lock:
            self._close_camera()


class OpenCVCapture(LiveCamera):
    """A camera through cv2.VideoCapture: V4L2 for an index or /dev/videoN, else a URL or file.

    The settings are asked of the camera at each opening, in the order V4L2 needs (pixel format,
    size, frame rate, exposure mode before exposure time, autofocus before focus); what the
    camera did not take is logged once per opening. A read that gets no frame within
    stall_timeout seconds is a failure: V4L2 gets it through OpenCV's V4L2 timeout variable
    (whole seconds; a value already in the environment wins, and OpenCV reads it only once a
    process), other backends (FFmpeg, GStreamer) as open and read timeouts.
    """

    def __init__(
        self,
        device: int | str = 0,
        settings: CameraSettings | None = None,
        *,
        reopen_after: float = 2.0,
        max_failures: int | None = None,
        stall_timeout: float = 5.0,
    ) -> None:
        settings = settings or CameraSettings()
        if settings.gain is not None:
            raise ValueError("gain is a Pi camera setting: USB cameras have their own units")
        super().__init__(
            f"camera:{device}",
            settings,
            reopen_after=reopen_after,
            max_failures=max_failures,
            stall_timeout=stall_timeout,
        )
        self.device = device
        self._video: cv2.VideoCapture | None = None

    def _capture(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._video is None:
            self._open()
        ok, image = self._video.read()
        if not ok or image is None:
            raise CameraFailure("read no frame (unplugged or stalled)")
        return image, None

    def _close_camera(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def _open(self) -> None:
        """Open the camera and ask it for the settings; on failure LiveCamera releases it."""
        if isinstance(self.device, int) or _V4L2_DEVICE.fullmatch(self.device):
            os.environ.setdefault(V4L2_TIMEOUT_VARIABLE, str(math.ceil(self.stall_timeout)))
            self._video = video = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        else:
            timeout_ms = math.ceil(self.stall_timeout * 1000)
            timeouts = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                timeout_ms,
            ]
            self._video = video = cv2.VideoCapture(self.device, cv2.CAP_ANY, timeouts)
        if not video.isOpened():
            raise CameraFailure("cannot open it")
        self._ask_settings(video)

    def _ask_settings(self, video: cv2.VideoCapture) -> None:
        asked = self._properties()
        for _, prop, value in asked:
            video.set(prop, value)
        refused = []
        for name, prop, value in asked:
            got = video.get(prop)
            # V4L2 controls are integers: a value asked with a fraction comes back rounded.
            if not math.isclose(got, value, abs_tol=0.5):
                refused.append(f"{name} {_shown(prop, value)} (has {_shown(prop, got)})")
        if refused:
            logger.info("%s did not take: %s", self.origin, ", ".join(refused))

    def _properties(self) -> list[tuple[str, int, float]]:
        """(name, property, value) to set, in the order V4L2 needs them."""
        settings = self.settings
        width, height = settings.size
        properties: list[tuple[str, int, float]] = []
        if settings.fourcc is not None:
            fourcc = cv2.VideoWriter.fourcc(*settings.fourcc)
            properties.append(("pixel format", cv2.CAP_PROP_FOURCC, fourcc))
        properties += [
            ("width", cv2.CAP_PROP_FRAME_WIDTH, width),
            ("height", cv2.CAP_PROP_FRAME_HEIGHT, height),
        ]
        if settings.fps is not None:
            properties.append(("fps", cv2.CAP_PROP_FPS, settings.fps))
        if settings.exposure_us is None:
            properties.append(("exposure mode", cv2.CAP_PROP_AUTO_EXPOSURE, _V4L2_EXPOSURE_AUTO))
        else:
            properties += [
                ("exposure mode", cv2.CAP_PROP_AUTO_EXPOSURE, _V4L2_EXPOSURE_MANUAL),
                ("exposure", cv2.CAP_PROP_EXPOSURE, settings.exposure_us / _V4L2_EXPOSURE_UNIT_US),
            ]
        if settings.focus is None:
            properties.append(("autofocus", cv2.CAP_PROP_AUTOFOCUS, 1))
        else:
            properties += [
                ("autofocus", cv2.CAP_PROP_AUTOFOCUS, 0),
                ("focus", cv2.CAP_PROP_FOCUS, settings.focus),
            ]
        return properties


def _shown(prop: int, value: float) -> str:
    if prop == cv2.CAP_PROP_FOURCC and value > 0:
        return int(value).to_bytes(4, "little").decode("ascii", "replace")
    return f"{value:g}"


def open_source(spec: str, *, fps: float | None = None, loop: bool = False) -> FrameSource:
    """The source a configuration string names.

    "camera:N" or "/dev/videoN" is a USB camera (V4L2); "picamera" or "picamera:N" is the Pi
    camera. A camera may take options after "?", joined by "&": size=WxH, decode_size=WxH (Pi),
    fps=F, exposure=auto|MICROSECONDS, gain=G (Pi, with a fixed exposure), focus=auto|POSITION,
    fourcc=XXXX (USB), e.g. "camera:0?size=1280x720&fourcc=MJPG&fps=30". Anything else is a path
    (image, video or directory), or several separated by commas, to replay. fps is the camera's
    frame rate (unless the spec names one) or the replay's pace. Raises ValueError for a spec
    that is not well formed, FrameSourceError when a path does not exist or picamera2 is absent.
    """
    name, _, options = spec.partition("?")
    if name == "picamera" or name.startswith("picamera:"):
        from hardware.picamera import PiCameraSource

        number = "0" if name == "picamera" else name.removeprefix("picamera:")
        if not number.isdigit():
            raise ValueError(f"the Pi camera is named picamera or picamera:N, not {name!r}")
        return PiCameraSource(int(number), _camera_settings(options, fps))
    if name.startswith("camera:"):
        number = name.removeprefix("camera:")
        if not number.isdigit():
            raise ValueError(f"a camera is named camera:N with N a number, not {name!r}")
        return OpenCVCapture(int(number), _camera_settings(options, fps))
    if _V4L2_DEVICE.fullmatch(name):
        return OpenCVCapture(name, _camera_settings(options, fps))
    return ReplaySource(
        [part.strip() for part in spec.split(",") if part.strip()], fps=fps, loop=loop
    )


def _camera_settings(options: str, fps: float | None) -> CameraSettings:
    """CameraSettings from "key=value&key=value"; raises ValueError naming what is wrong."""
    values: dict[str, object] = {}
    for option in filter(None, options.split("&")):
        key, equals, text = option.partition("=")
        if not equals or not text:
            raise ValueError(f"a camera option is key=value, not {option!r}")
        if key not in _OPTION_PARSERS:
            raise ValueError(f"no camera option {key!r}; there are {', '.join(_OPTION_PARSERS)}")
        field, parse = _OPTION_PARSERS[key]
        if field in values:
            raise ValueError(f"camera option {key!r} given twice")
        try:
            values[field] = parse(text)
        except ValueError as error:
            raise ValueError(f"camera option {key}={text}: {error}") from error
    if fps is not None:
        if "fps" in values:
            raise ValueError("fps given both in the camera spec and separately")
        values["fps"] = fps
    return CameraSettings(**values)


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None:
        raise ValueError("a size is WIDTHxHEIGHT, e.g. 1280x720")
    return int(match[1]), int(match[2])


def _automatic_or(parse: Callable[[str], float]) -> Callable[[str], float | None]:
    def parse_or_auto(text: str) -> float | None:
        return None if text == "auto" else parse(text)

    return parse_or_auto


# Each option's CameraSettings field, and how its text becomes the field's value.
_OPTION_PARSERS: dict[str, tuple[str, Callable[[str], object]]] = {
    "size": ("size", _size),
    "decode_size": ("decode_size", _size),
    "fps": ("fps", float),
    "exposure": ("exposure_us", _automatic_or(int)),
    "gain": ("gain", float),
    "focus": ("focus", _automatic_or(float)),
    "fourcc": ("fourcc", str),
}


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

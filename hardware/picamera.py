"""The Raspberry Pi camera through picamera2: a grey low-resolution stream to decode, one to show.

picamera2 is imported when a PiCameraSource is made, so this module imports anywhere; it needs
picamera2 0.3.17 or later (a timeout on waiting for a frame). On Raspberry Pi OS it comes from
apt (python3-picamera2, with libcamera's Python bindings), so the virtualenv must be made with
--system-site-packages.
"""

import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from hardware.frames import CameraFailure, CameraSettings, FrameSourceError, LiveCamera

logger = logging.getLogger(__name__)

# libcamera's AfModeEnum: Manual holds LensPosition, Continuous keeps refocusing.
AF_MODE_MANUAL = 0
AF_MODE_CONTINUOUS = 2


class PiCameraSource(LiveCamera):
    """A Pi camera: frames carry the Y plane of the YUV420 lores stream, and the main stream.

    The main stream (settings.size, RGB888, which picamera2 lays out as B, G, R: OpenCV's order)
    is Frame.display, copied only when display is true; the lores stream
    (settings.decode_size, YUV420) gives Frame.image, its grey Y plane as a view, not a copy.
    Autofocus and exposure follow the settings where the camera has the controls; a missing
    control, or a stream size the camera changed, is logged once per opening. Failures are
    handled as LiveCamera says: a capture waits at most stall_timeout seconds.

    Raises FrameSourceError at once when picamera2 cannot be imported: that is an installation
    to fix, not an outage to wait out.
    """

    def __init__(
        self,
        number: int = 0,
        settings: CameraSettings | None = None,
        *,
        display: bool = True,
        reopen_after: float = 2.0,
        max_failures: int | None = None,
        stall_timeout: float = 5.0,
    ) -> None:
        settings = settings or CameraSettings()
        if settings.fourcc is not None:
            raise ValueError("fourcc is a USB camera setting; the Pi camera's streams are fixed")
        if any(low > high for low, high in zip(settings.decode_size, settings.size, strict=True)):
            raise ValueError(
                f"decode_size {settings.decode_size} must fit in size {settings.size}:"
                " the Pi camera's lores stream is no larger than its main stream"
            )
        super().__init__(
            f"picamera:{number}",
            settings,
            reopen_after=reopen_after,
            max_failures=max_failures,
            stall_timeout=stall_timeout,
        )
        self.number = number
        self.display = display
        self._picamera2 = _import_picamera2()
        self._camera: Any = None
        self._decode_size = settings.decode_size

    def _capture(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._camera is None:
            self._open()
        camera = self._camera
        try:
            request = camera.wait(camera.capture_request(wait=False), timeout=self.stall_timeout)
        except TimeoutError as error:
            raise CameraFailure(f"no frame within {self.stall_timeout:g} s") from error
        except Exception as error:
            raise CameraFailure(f"capture failed: {error!r}") from error
        try:
            yuv = request.make_array("lores")
            display = request.make_array("main") if self.display else None
        except Exception as error:
            raise CameraFailure(f"capture failed: {error!r}") from error
        finally:
            request.release()
        width, height = self._decode_size
        # YUV420 comes as (height * 3/2) rows of stride bytes: the Y plane is the top rows.
        return yuv[:height, :width], display

    def _close_camera(self) -> None:
        if self._camera is None:
            return
        camera, self._camera = self._camera, None
        try:
            camera.close()
        except Exception as error:
            logger.info("%s: closing the camera failed: %r", self.origin, error)

    def _open(self) -> None:
        """Open, configure and start the camera; on failure LiveCamera closes what was opened."""
        try:
            self._camera = camera = self._picamera2.Picamera2(self.number)
        except Exception as error:
            raise CameraFailure(f"cannot open it: {error!r}") from error
        try:
            controls = self._controls(camera.camera_controls)
            camera.configure(
                camera.create_video_configuration(
                    main={"size": self.settings.size, "format": "RGB888"},
                    lores={"size": self.settings.decode_size, "format": "YUV420"},
                    controls=controls,
                )
            )
            configured = camera.camera_config
            self._decode_size = tuple(configured["lores"]["size"])
            self._log_changed_sizes(tuple(configured["main"]["size"]), self._decode_size)
            camera.start()
        except Exception as error:
            raise CameraFailure(f"cannot start it: {error!r}") from error

    def _controls(self, available: Mapping[str, object]) -> dict[str, object]:
        """The controls the settings ask for, of those the camera has; logs the others."""
        settings = self.settings
        wanted: dict[str, object] = {}
        if settings.fps is not None:
            frame_us = round(1_000_000 / settings.fps)
            wanted["FrameDurationLimits"] = (frame_us, frame_us)
        if settings.exposure_us is not None:
            wanted |= {"AeEnable": False, "ExposureTime": settings.exposure_us}
            if settings.gain is not None:
                wanted["AnalogueGain"] = settings.gain
        if settings.focus is not None:
            wanted |= {"AfMode": AF_MODE_MANUAL, "LensPosition": settings.focus}
        elif "AfMode" in available:  # a fixed-focus camera needs no word about it
            wanted["AfMode"] = AF_MODE_CONTINUOUS
        missing = [name for name in wanted if name not in available]
        if missing:
            logger.info("%s has no %s control: left as it is", self.origin, ", ".join(missing))
        return {name: value for name, value in wanted.items() if name in available}

    def _log_changed_sizes(self, main: tuple[int, ...], lores: tuple[int, ...]) -> None:
        for name, asked, got in (
            ("size", self.settings.size, main),
            ("decode_size", self.settings.decode_size, lores),
        ):
            if tuple(asked) != got:
                logger.info("%s did not take %s %dx%d (has %dx%d)", self.origin, name, *asked, *got)


def _import_picamera2() -> ModuleType:
    try:
        import picamera2
    except ImportError as error:
        raise FrameSourceError(
            "the Pi camera needs picamera2: on Raspberry Pi OS, apt install python3-picamera2 and"
            f" make the virtualenv with --system-site-packages ({error})"
        ) from error
    return picamera2

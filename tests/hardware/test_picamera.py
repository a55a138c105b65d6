"""Tests of hardware.picamera against a fake picamera2, since the real one needs a Pi camera."""

import importlib
import itertools
import logging
import sys
import threading
import types

import numpy as np
import pytest

from hardware.frames import CameraSettings, FrameSourceError, open_source
from hardware.picamera import AF_MODE_CONTINUOUS, AF_MODE_MANUAL, PiCameraSource

MAIN = (128, 96)
LORES = (64, 48)
SETTINGS = CameraSettings(size=MAIN, decode_size=LORES)
# Controls as picamera2 lists them (min, max, default), for a camera with autofocus (Camera
# Module 3) and one without (Camera Module 2).
AUTOFOCUS_CAMERA = {
    "AeEnable": (False, True, True),
    "ExposureTime": (75, 11766829, 20000),
    "AnalogueGain": (1.0, 16.0, 1.0),
    "FrameDurationLimits": (33333, 120000000, 33333),
    "AfMode": (0, 2, 0),
    "LensPosition": (0.0, 15.0, 1.0),
}
FIXED_FOCUS_CAMERA = {
    name: limits
    for name, limits in AUTOFOCUS_CAMERA.items()
    if name not in ("AfMode", "LensPosition")
}


def y_plane(width: int, height: int, number: int) -> np.ndarray:
    """A grey picture unlike any other frame's, with values below the padding's 200."""
    return ((np.arange(width * height).reshape(height, width) + number) % 150).astype(np.uint8)


def yuv420(width: int, height: int, number: int) -> np.ndarray:
    """What picamera2 makes of a YUV420 stream: height * 3/2 rows, padded to a wider stride."""
    stride = width + 32
    array = np.full((height * 3 // 2, stride), 200, np.uint8)  # U, V and padding
    array[:height, :width] = y_plane(width, height, number)
    return array


class FakeCameras:
    """Stands in for the picamera2 module; every camera made takes steps from one script.

    Steps: "frame" (a capture delivers), "error" (a capture raises), "stall" (waiting for a
    capture times out), "absent" (Picamera2() raises, as with no camera attached; only at an
    opening). When the script runs out, captures deliver frames. events records the openings
    and closings in order; lores holds every lores array handed out.
    """

    def __init__(
        self,
        script: list[str],
        controls: dict[str, tuple],
        lores_size: tuple[int, int] | None = None,
    ) -> None:
        self.script = list(script)
        self.controls = controls
        self.lores_size = lores_size  # None: the camera takes the size asked
        self.made: list[FakeCamera] = []
        self.events: list[str] = []
        self.lores: list[np.ndarray] = []
        self.requests: list[FakeRequest] = []

    def module(self) -> types.ModuleType:
        module = types.ModuleType("picamera2")
        module.Picamera2 = self.open  # type: ignore[attr-defined]
        return module

    def open(self, number: int = 0) -> "FakeCamera":
        if self.script and self.script[0] == "absent":
            self.script.pop(0)
            self.events.append("absent")
            raise RuntimeError("Camera __init__ sequence did not complete.")
        camera = FakeCamera(self, number, len(self.made) + 1)
        self.made.append(camera)
        self.events.append(f"open {camera.serial}")
        return camera

    def step(self) -> str:
        return self.script.pop(0) if self.script else "frame"


class FakeCamera:
    def __init__(self, cameras: FakeCameras, number: int, serial: int) -> None:
        self.cameras = cameras
        self.number = number
        self.serial = serial
        self.camera_controls = cameras.controls
        self.configuration_asked: dict | None = None
        self.camera_config: dict | None = None
        self.started = False
        self.closed = False
        self.timeouts: list[float | None] = []

    def create_video_configuration(self, **kwargs) -> dict:
        self.configuration_asked = kwargs
        return {"use_case": "video", **kwargs}

    def configure(self, config: dict) -> None:
        lores = dict(config["lores"])
        if self.cameras.lores_size is not None:
            lores["size"] = self.cameras.lores_size
        self.camera_config = {"main": dict(config["main"]), "lores": lores}

    def start(self) -> None:
        self.started = True

    def capture_request(self, wait: bool | float | None = None) -> str:
        assert wait is False, "the source must not block without a timeout"
        return "job"

    def wait(self, job: str, timeout: float | None = None) -> "FakeRequest":
        assert job == "job"
        self.timeouts.append(timeout)
        step = self.cameras.step()
        if step == "stall":
            raise TimeoutError  # what concurrent.futures raises when a job's wait runs out
        if step == "error":
            raise RuntimeError("camera went away")
        request = FakeRequest(self, len(self.cameras.requests))
        self.cameras.requests.append(request)
        return request

    def close(self) -> None:
        self.closed = True
        self.cameras.events.append(f"close {self.serial}")


class FakeRequest:
    def __init__(self, camera: FakeCamera, number: int) -> None:
        self.camera = camera
        self.number = number
        self.arrays_made: list[str] = []
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        assert not self.released
        self.arrays_made.append(name)
        width, height = self.camera.camera_config[name]["size"]
        if name == "lores":
            array = yuv420(width, height, self.number)
            self.camera.cameras.lores.append(array)
            return array
        return np.full((height, width, 3), self.number, np.uint8)

    def release(self) -> None:
        self.released = True


@pytest.fixture
def picamera2(mocker):
    def install(
        script: list[str] = (),
        controls: dict[str, tuple] = AUTOFOCUS_CAMERA,
        lores_size: tuple[int, int] | None = None,
    ) -> FakeCameras:
        cameras = FakeCameras(list(script), controls, lores_size)
        mocker.patch.dict(sys.modules, {"picamera2": cameras.module()})
        return cameras

    return install


def test_the_module_imports_without_picamera2_and_the_source_says_what_is_missing(mocker):
    mocker.patch.dict(sys.modules, {"picamera2": None})  # None: importing it raises ImportError
    del sys.modules["hardware.picamera"]
    module = importlib.import_module("hardware.picamera")
    with pytest.raises(FrameSourceError, match=r"needs picamera2.*python3-picamera2"):
        module.PiCameraSource()
    with pytest.raises(FrameSourceError, match="needs picamera2"):
        open_source("picamera")


def test_frames_are_the_y_plane_of_the_lores_stream_and_the_main_stream_to_show(picamera2):
    cameras = picamera2()
    source = PiCameraSource(0, SETTINGS)
    frames = list(itertools.islice(source.frames(), 3))
    source.close()
    width, height = LORES
    for number, frame in enumerate(frames):
        assert frame.index == number
        assert frame.origin == "picamera:0"
        assert frame.image.shape == (height, width)
        assert frame.image.dtype == np.uint8
        assert np.array_equal(frame.image, y_plane(width, height, number))
        assert np.shares_memory(frame.image, cameras.lores[number])  # a view, not a copy
        assert frame.display is not None
        assert frame.display.shape == (MAIN[1], MAIN[0], 3)
        assert int(frame.display[0, 0, 0]) == number  # the same request as the image
    assert all(request.released for request in cameras.requests)


def test_the_camera_is_asked_for_a_main_stream_and_a_yuv420_lores_stream(picamera2):
    cameras = picamera2()
    source = PiCameraSource(0, SETTINGS, stall_timeout=0.5)
    next(source.frames())
    source.close()
    (camera,) = cameras.made
    assert camera.number == 0
    assert camera.configuration_asked == {
        "main": {"size": MAIN, "format": "RGB888"},
        "lores": {"size": LORES, "format": "YUV420"},
        "controls": {"AfMode": AF_MODE_CONTINUOUS},
    }
    assert camera.started
    assert camera.timeouts == [0.5]  # every capture waits with the stall timeout
    assert cameras.events == ["open 1", "close 1"]


@pytest.mark.parametrize(
    ("controls", "focus", "expected", "complaint"),
    [
        (AUTOFOCUS_CAMERA, None, {"AfMode": AF_MODE_CONTINUOUS}, None),
        (AUTOFOCUS_CAMERA, 2.0, {"AfMode": AF_MODE_MANUAL, "LensPosition": 2.0}, None),
        (FIXED_FOCUS_CAMERA, None, {}, None),
        (FIXED_FOCUS_CAMERA, 2.0, {}, "picamera:0 has no AfMode, LensPosition control"),
    ],
    ids=["autofocus", "manual-focus", "fixed-focus", "fixed-focus-asked-to-focus"],
)
def test_focus_is_set_where_the_camera_has_the_controls(
    picamera2, caplog, controls, focus, expected, complaint
):
    cameras = picamera2(controls=controls)
    source = PiCameraSource(0, CameraSettings(size=MAIN, decode_size=LORES, focus=focus))
    with caplog.at_level(logging.INFO, logger="hardware.picamera"):
        next(source.frames())
    source.close()
    assert cameras.made[0].configuration_asked["controls"] == expected
    said = [record.getMessage() for record in caplog.records]
    assert said == ([f"{complaint}: left as it is"] if complaint else [])


def test_a_fixed_exposure_gain_and_frame_rate_are_asked(picamera2):
    cameras = picamera2(controls=FIXED_FOCUS_CAMERA)
    settings = CameraSettings(size=MAIN, decode_size=LORES, fps=25, exposure_us=10000, gain=2.0)
    source = PiCameraSource(0, settings)
    next(source.frames())
    source.close()
    assert cameras.made[0].configuration_asked["controls"] == {
        "FrameDurationLimits": (40000, 40000),  # µs per frame, fixed: 25 fps
        "AeEnable": False,
        "ExposureTime": 10000,
        "AnalogueGain": 2.0,
    }


def test_a_lores_size_the_camera_changed_is_logged_and_followed(picamera2, caplog):
    picamera2(lores_size=(32, 24))
    source = PiCameraSource(0, SETTINGS)
    with caplog.at_level(logging.INFO, logger="hardware.picamera"):
        frame = next(source.frames())
    source.close()
    assert np.array_equal(frame.image, y_plane(32, 24, 0))
    assert [record.getMessage() for record in caplog.records] == [
        "picamera:0 did not take decode_size 64x48 (has 32x24)"
    ]


@pytest.mark.timeout(10)
def test_failures_are_reported_once_and_the_camera_is_closed_and_reopened(picamera2, caplog):
    cameras = picamera2(["frame", "error", "absent", "stall", "frame"])
    source = PiCameraSource(0, SETTINGS, reopen_after=0.01, stall_timeout=0.5)
    with caplog.at_level(logging.INFO, logger="hardware.frames"):
        frames = list(itertools.islice(source.frames(), 2))
        assert source.status.state == "ok"
    source.close()
    assert [frame.index for frame in frames] == [0, 1]
    # A capture that raised, a camera that was absent, a capture that stalled: each time the
    # camera was closed before the next one was opened.
    assert cameras.events == [
        "open 1",
        "close 1",
        "absent",
        "open 2",
        "close 2",
        "open 3",
        "close 3",
    ]
    warnings = [
        record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING
    ]
    assert warnings == [
        "picamera:0: capture failed: RuntimeError('camera went away'); reopening every 0.01 s"
    ]
    assert "picamera:0: frames again after 3 failures" in [r.getMessage() for r in caplog.records]
    assert source.status.last_error == "no frame within 0.5 s"


@pytest.mark.timeout(10)
def test_a_stalled_capture_is_a_failure(picamera2):
    cameras = picamera2(["stall"])
    source = PiCameraSource(0, SETTINGS, max_failures=1, stall_timeout=0.5)
    with pytest.raises(FrameSourceError, match=r"no frame within 0\.5 s"):
        next(source.frames())
    assert cameras.made[0].timeouts == [0.5]
    assert cameras.made[0].closed
    assert source.status.state == "failing"


@pytest.mark.timeout(10)
def test_a_camera_that_keeps_failing_gives_up_after_max_failures(picamera2, caplog):
    cameras = picamera2(["frame", "error", "absent", "error", "frame"])
    source = PiCameraSource(0, SETTINGS, reopen_after=0.01, max_failures=3)
    frames = source.frames()
    assert next(frames).index == 0
    with (
        caplog.at_level(logging.WARNING, logger="hardware.frames"),
        pytest.raises(FrameSourceError, match="picamera:0: no frame after 3 attempts"),
    ):
        next(frames)
    assert len(caplog.records) == 1
    assert all(camera.closed for camera in cameras.made)
    assert source.status.state == "failing"
    assert source.status.last_error == "capture failed: RuntimeError('camera went away')"


@pytest.mark.timeout(10)
def test_closing_from_another_thread_stops_frames(picamera2):
    cameras = picamera2()
    source = PiCameraSource(0, SETTINGS)
    taken: list[int] = []
    three_taken = threading.Event()

    def scan() -> None:
        for frame in source.frames():
            taken.append(frame.index)
            if len(taken) == 3:
                three_taken.set()

    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    assert three_taken.wait(5)
    source.close()
    scanner.join(5)
    assert not scanner.is_alive()
    assert cameras.events == ["open 1", "close 1"]
    assert list(source.frames()) == []


def test_without_display_the_main_stream_is_not_copied(picamera2):
    cameras = picamera2()
    source = PiCameraSource(0, SETTINGS, display=False)
    frame = next(source.frames())
    source.close()
    assert frame.display is None
    assert cameras.requests[0].arrays_made == ["lores"]


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (CameraSettings(fourcc="MJPG"), "fourcc is a USB camera setting"),
        (CameraSettings(size=(640, 480), decode_size=(800, 300)), "must fit in size"),
    ],
)
def test_settings_the_pi_camera_cannot_have_are_refused(settings, complaint):
    with pytest.raises(ValueError, match=complaint):
        PiCameraSource(0, settings)


def test_open_source_names_the_pi_camera(picamera2):
    picamera2()
    default = open_source("picamera")
    assert isinstance(default, PiCameraSource)
    assert (default.number, default.origin, default.settings) == (0, "picamera:0", CameraSettings())
    second = open_source(
        "picamera:1?size=1280x720&decode_size=320x180&exposure=10000&gain=4&focus=0.5", fps=30
    )
    assert isinstance(second, PiCameraSource)
    assert second.number == 1
    assert second.settings == CameraSettings(
        size=(1280, 720), decode_size=(320, 180), fps=30, exposure_us=10000, gain=4.0, focus=0.5
    )


@pytest.mark.parametrize(
    ("spec", "error", "complaint"),
    [
        ("picamera:one", ValueError, "picamera or picamera:N"),
        ("picamera:", ValueError, "picamera or picamera:N"),
        ("picamera?fourcc=MJPG", ValueError, "fourcc is a USB camera setting"),
        ("picamera:0?lores=320x180", ValueError, "no camera option 'lores'"),
        ("picameras", FrameSourceError, "no such file"),  # not the camera's name: a path
    ],
)
def test_open_source_rejects_malformed_pi_camera_specs(picamera2, spec, error, complaint):
    picamera2()
    with pytest.raises(error, match=complaint):
        open_source(spec)

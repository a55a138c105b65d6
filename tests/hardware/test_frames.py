"""Tests of hardware.frames: replay of real files, and the camera's retry logic."""

import itertools
import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.frames import (
    V4L2_TIMEOUT_VARIABLE,
    CameraSettings,
    CameraStatus,
    Frame,
    FrameSourceError,
    OpenCVCapture,
    ReplaySource,
    open_source,
)


def write_image(path: Path, level: int, shape=(48, 64, 3)) -> Path:
    assert cv2.imwrite(str(path), np.full(shape, level, np.uint8))
    return path


def write_video(path: Path, levels: list[int], fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
    assert writer.isOpened(), f"no {fourcc} video writer in this OpenCV"
    for level in levels:
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    return path


def levels(frames: list[Frame]) -> list[int]:
    return [round(float(frame.image.mean())) for frame in frames]


def messages_with(caplog, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


@pytest.fixture(autouse=True)
def v4l2_timeout_unset(monkeypatch):
    """Opening a V4L2 camera sets OpenCV's timeout variable; each test starts without it."""
    monkeypatch.delenv(V4L2_TIMEOUT_VARIABLE, raising=False)


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "shots"
    folder.mkdir()
    write_image(folder / "b.png", 20)
    write_image(folder / "a.png", 10)
    write_image(folder / "c.bmp", 30)
    write_image(folder / "d.pgm", 40, shape=(48, 64))
    (folder / "notes.txt").write_text("not a picture")
    (folder / "nested").mkdir()
    write_image(folder / "nested" / "e.png", 50)
    return folder


def test_a_directory_replays_its_images_sorted_by_name(images):
    frames = list(ReplaySource([images]).frames())
    assert [Path(frame.origin).name for frame in frames] == ["a.png", "b.png", "c.bmp", "d.pgm"]
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    assert levels(frames) == [10, 20, 30, 40]
    assert all(frame.image.dtype == np.uint8 for frame in frames)
    assert all(frame.image.shape == (48, 64, 3) for frame in frames)
    times = [frame.captured_at for frame in frames]
    assert times == sorted(times)
    assert frames[0].origin == str(images / "a.png")


@pytest.mark.parametrize(("name", "fourcc"), [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_a_video_replays_frame_by_frame(tmp_path, name, fourcc):
    video = write_video(tmp_path / name, [0, 60, 120, 180], fourcc)
    frames = list(ReplaySource([video]).frames())
    assert [frame.origin for frame in frames] == [f"{video}#{n}" for n in range(4)]
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    assert all(
        abs(got - want) <= 8 for got, want in zip(levels(frames), [0, 60, 120, 180], strict=True)
    )


def test_paths_of_every_kind_replay_in_the_order_given(tmp_path, images):
    video = write_video(tmp_path / "clip.avi", [100, 200])
    single = write_image(tmp_path / "single.jpg", 250)
    frames = list(ReplaySource([single, str(video), images]).frames())
    assert [Path(frame.origin).name for frame in frames] == [
        "single.jpg",
        "clip.avi#0",
        "clip.avi#1",
        "a.png",
        "b.png",
        "c.bmp",
        "d.pgm",
    ]
    assert [frame.index for frame in frames] == list(range(7))


def test_the_reference_photos_replay_without_their_text_files(qr_photos_root):
    frames = list(ReplaySource([qr_photos_root / "qrcode-1"]).frames())
    assert len(frames) == 8
    assert all(frame.origin.endswith(".webp") for frame in frames)
    assert all(frame.image.ndim == 3 and frame.image.shape[2] == 3 for frame in frames)


def test_loop_starts_again_and_keeps_counting(tmp_path):
    first = write_image(tmp_path / "1.png", 10)
    second = write_image(tmp_path / "2.png", 20)
    frames = list(itertools.islice(ReplaySource([first, second], loop=True).frames(), 5))
    assert [frame.origin for frame in frames] == [str(p) for p in (first, second) * 2 + (first,)]
    assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]


@pytest.mark.timeout(10)
def test_loop_over_nothing_readable_ends(tmp_path, caplog):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    with caplog.at_level(logging.WARNING, logger="hardware.frames"):
        assert list(ReplaySource([broken], loop=True).frames()) == []
    assert len(caplog.records) == 1


def test_fps_paces_the_frames(tmp_path):
    paths = [write_image(tmp_path / f"{n}.png", n) for n in range(5)]
    fps = 25.0
    started = time.monotonic()
    frames = list(ReplaySource(paths, fps=fps).frames())
    elapsed = time.monotonic() - started
    assert len(frames) == 5
    assert elapsed >= 0.9 * (len(frames) - 1) / fps
    gaps = [
        later.captured_at - earlier.captured_at for earlier, later in itertools.pairwise(frames)
    ]
    assert min(gaps) >= 0.9 / fps


def test_a_single_path_needs_no_list(images):
    assert len(list(ReplaySource(str(images)).frames())) == 4


def test_a_missing_path_is_an_error(tmp_path, images):
    missing = tmp_path / "nowhere.png"
    with pytest.raises(FrameSourceError, match=r"nowhere\.png"):
        ReplaySource([images, missing])


@pytest.mark.parametrize("fps", [0, -1.0])
def test_fps_must_be_positive(images, fps):
    with pytest.raises(ValueError, match="fps"):
        ReplaySource([images], fps=fps)


def test_no_paths_is_an_error():
    with pytest.raises(ValueError, match="no paths"):
        ReplaySource([])


def test_unreadable_files_are_skipped_with_a_warning(images, caplog):
    (images / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (images / "empty.mp4").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="hardware.frames"):
        frames = list(ReplaySource([images]).frames())
    assert [Path(frame.origin).name for frame in frames] == ["a.png", "b.png", "c.bmp", "d.pgm"]
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "broken.jpg" in warned
    assert "empty.mp4" in warned


def test_closing_stops_a_replay(tmp_path, images):
    source = ReplaySource([images], loop=True)
    taken = []
    for frame in source.frames():
        taken.append(frame)
        if len(taken) == 3:
            source.close()
    assert len(taken) == 3


def test_closing_interrupts_the_pacing(images):
    source = ReplaySource([images], fps=0.2)  # one frame every 5 s
    threading.Timer(0.2, source.close).start()
    started = time.monotonic()
    assert len(list(source.frames())) == 1
    assert time.monotonic() - started < 4


def test_a_closed_source_yields_nothing(images):
    with ReplaySource([images]) as source:
        assert next(source.frames()).index == 0
    assert list(source.frames()) == []


@pytest.mark.timeout(10)
def test_a_missing_camera_gives_up_after_max_failures(caplog):
    source = OpenCVCapture("/dev/video99", max_failures=2, reopen_after=0.01)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="hardware.frames"),
        pytest.raises(FrameSourceError, match="camera:/dev/video99"),
    ):
        next(source.frames())
    assert time.monotonic() - started < 5
    assert len(caplog.records) == 1


@pytest.mark.timeout(10)
def test_closing_interrupts_waiting_for_a_missing_camera():
    source = OpenCVCapture(99, reopen_after=30)
    threading.Timer(0.2, source.close).start()
    started = time.monotonic()
    assert list(source.frames()) == []
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"reopen_after": -1}, "reopen_after"),
        ({"max_failures": 0}, "max_failures"),
        ({"stall_timeout": 0}, "stall_timeout"),
        ({"settings": CameraSettings(exposure_us=1000, gain=2.0)}, "gain"),
    ],
)
def test_camera_settings_are_checked(kwargs, complaint):
    with pytest.raises(ValueError, match=complaint):
        OpenCVCapture(0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"size": (0, 720)}, "size"),
        ({"decode_size": (640, -1)}, "decode_size"),
        ({"fps": 0}, "fps"),
        ({"exposure_us": 0}, "exposure_us"),
        ({"gain": 2.0}, "exposure_us too"),
        ({"exposure_us": 1000, "gain": 0.5}, "gain"),
        ({"focus": -1.0}, "focus"),
        ({"fourcc": "MJPEG"}, "fourcc"),
    ],
)
def test_impossible_camera_settings_are_refused(kwargs, complaint):
    with pytest.raises(ValueError, match=complaint):
        CameraSettings(**kwargs)


class ScriptedCameras:
    """Stands in for cv2.VideoCapture: each read takes the next step of one shared script.

    A step is True (a frame), False (a failed read) or None (the camera does not open).
    The cameras take every setting, except those `refused` maps to what they have instead.
    """

    def __init__(self, script: list[bool | None], refused: dict[int, float] | None = None) -> None:
        self.script = list(script)
        self.refused = refused or {}
        self.opened: list[tuple] = []
        self.released = 0
        self.settings: dict[int, float] = {}
        self.set_calls: list[tuple[int, float]] = []
        self.on_open = lambda: None

    def __call__(self, *args):
        self.on_open()
        self.opened.append(args)
        return ScriptedCamera(self)


class ScriptedCamera:
    def __init__(self, cameras: ScriptedCameras) -> None:
        self.cameras = cameras
        self.available = cameras.script[0] is not None if cameras.script else False
        if not self.available and cameras.script:
            cameras.script.pop(0)

    def isOpened(self) -> bool:
        return self.available

    def set(self, prop: int, value: float) -> bool:
        self.cameras.set_calls.append((prop, value))
        self.cameras.settings[prop] = value
        return prop not in self.cameras.refused

    def get(self, prop: int) -> float:
        return self.cameras.refused.get(prop, self.cameras.settings.get(prop, -1))

    def read(self):
        if self.cameras.script and self.cameras.script.pop(0):
            return True, np.full((720, 1280, 3), len(self.cameras.script), np.uint8)
        return False, None

    def release(self) -> None:
        self.cameras.released += 1


@pytest.fixture
def cameras(mocker):
    def install(
        script: list[bool | None], refused: dict[int, float] | None = None
    ) -> ScriptedCameras:
        fake = ScriptedCameras(script, refused)
        mocker.patch("hardware.frames.cv2.VideoCapture", side_effect=fake)
        return fake

    return install


@pytest.mark.timeout(10)
def test_a_camera_that_fails_is_reopened(cameras, caplog):
    fake = cameras([True, True, True, False, None, True, True])
    source = OpenCVCapture(0, CameraSettings(size=(640, 480), fps=15), reopen_after=0.01)
    with caplog.at_level(logging.WARNING, logger="hardware.frames"):
        frames = list(itertools.islice(source.frames(), 5))
    source.close()
    assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]
    assert {frame.origin for frame in frames} == {"camera:0"}
    assert len(fake.opened) == 3  # first open, a reopen that failed, a reopen that worked
    assert fake.opened[0] == (0, cv2.CAP_V4L2)
    assert fake.settings == {
        cv2.CAP_PROP_FRAME_WIDTH: 640,
        cv2.CAP_PROP_FRAME_HEIGHT: 480,
        cv2.CAP_PROP_FPS: 15,
        cv2.CAP_PROP_AUTO_EXPOSURE: 3,  # V4L2's automatic (aperture priority) mode
        cv2.CAP_PROP_AUTOFOCUS: 1,
    }
    assert len(caplog.records) == 1  # one warning for the whole outage
    assert fake.released == len(fake.opened)


@pytest.mark.timeout(10)
def test_a_camera_that_keeps_failing_gives_up(cameras, caplog):
    fake = cameras([True, False, False, False, True])
    source = OpenCVCapture(0, reopen_after=0.01, max_failures=3)
    frames = source.frames()
    assert next(frames).index == 0
    with (
        caplog.at_level(logging.WARNING, logger="hardware.frames"),
        pytest.raises(FrameSourceError, match="3 attempts"),
    ):
        next(frames)
    assert len(caplog.records) == 1
    assert fake.released == len(fake.opened) == 3
    assert source.status.state == "failing"


def test_closing_a_camera_stops_frames_and_releases_it(cameras):
    fake = cameras([True] * 10)
    source = OpenCVCapture("rtsp://camera.local/stream")
    frames = source.frames()
    assert next(frames).index == 0
    source.close()
    assert fake.released == 1
    assert list(frames) == []
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    assert fake.opened == [("rtsp://camera.local/stream", cv2.CAP_ANY, timeouts)]


def test_open_source_names_cameras_and_files(tmp_path, images):
    image = write_image(tmp_path / "one.png", 10)
    camera = open_source("camera:2")
    assert isinstance(camera, OpenCVCapture)
    assert camera.device == 2
    assert camera.origin == "camera:2"
    device = open_source("/dev/video1", fps=10)
    assert isinstance(device, OpenCVCapture)
    assert (device.device, device.settings.fps) == ("/dev/video1", 10)
    replay = open_source(str(images), fps=5, loop=True)
    assert isinstance(replay, ReplaySource)
    assert (len(replay.files), replay.fps, replay.loop) == (4, 5, True)
    several = open_source(f"{image}, {images}")
    assert isinstance(several, ReplaySource)
    assert [path.name for path in several.files] == ["one.png", "a.png", "b.png", "c.bmp", "d.pgm"]


def test_open_source_rejects_bad_names(tmp_path):
    with pytest.raises(ValueError, match="camera:N"):
        open_source("camera:front")
    with pytest.raises(FrameSourceError, match=r"missing\.mp4"):
        open_source(str(tmp_path / "missing.mp4"))


def test_camera_settings_are_asked_in_the_order_v4l2_needs(cameras, caplog):
    fake = cameras([True])
    settings = CameraSettings(size=(1280, 720), fps=30, exposure_us=5000, focus=12, fourcc="MJPG")
    source = OpenCVCapture("/dev/video3", settings)
    with caplog.at_level(logging.INFO, logger="hardware.frames"):
        next(source.frames())
    source.close()
    assert fake.opened == [("/dev/video3", cv2.CAP_V4L2)]
    assert fake.set_calls == [
        (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG")),  # a format change resets size
        (cv2.CAP_PROP_FRAME_WIDTH, 1280),
        (cv2.CAP_PROP_FRAME_HEIGHT, 720),
        (cv2.CAP_PROP_FPS, 30),
        (cv2.CAP_PROP_AUTO_EXPOSURE, 1),  # V4L2's manual mode, before the exposure time
        (cv2.CAP_PROP_EXPOSURE, 50),  # in V4L2's units of 100 µs
        (cv2.CAP_PROP_AUTOFOCUS, 0),  # before the focus, which autofocus would overrule
        (cv2.CAP_PROP_FOCUS, 12),
    ]
    assert caplog.records == []  # the camera took everything: nothing to say


@pytest.mark.timeout(10)
def test_settings_a_camera_did_not_take_are_logged_once_per_opening(cameras, caplog):
    cameras(
        [True, False, True],
        refused={
            cv2.CAP_PROP_FRAME_WIDTH: 640,
            cv2.CAP_PROP_FRAME_HEIGHT: 480,
            cv2.CAP_PROP_FOURCC: cv2.VideoWriter_fourcc(*"YUYV"),
            cv2.CAP_PROP_AUTOFOCUS: -1,  # what OpenCV answers for a control the camera lacks
        },
    )
    source = OpenCVCapture(0, CameraSettings(fourcc="MJPG"), reopen_after=0.01)
    with caplog.at_level(logging.INFO, logger="hardware.frames"):
        frames = list(itertools.islice(source.frames(), 2))
    source.close()
    assert len(frames) == 2
    refusals = messages_with(caplog, "did not take")
    assert len(refusals) == 2  # the first opening and the reopening
    assert refusals[0] == (
        "camera:0 did not take: pixel format MJPG (has YUYV), width 1280 (has 640),"
        " height 720 (has 480), autofocus 1 (has -1)"
    )


@pytest.mark.timeout(20)
def test_a_video_file_plays_through_opencvcapture_and_is_reopened_at_its_end(tmp_path, caplog):
    video = write_video(tmp_path / "clip.avi", [0, 60, 120])
    source = OpenCVCapture(str(video), reopen_after=0.01)
    with caplog.at_level(logging.INFO, logger="hardware.frames"):
        frames = list(itertools.islice(source.frames(), 5))
    source.close()
    assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]
    assert all(
        abs(got - want) <= 8 for got, want in zip(levels(frames), [0, 60, 120, 0, 60], strict=True)
    )
    assert all(frame.display is None for frame in frames)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "read no frame" in warnings[0].getMessage()
    refusals = messages_with(caplog, "did not take")
    assert len(refusals) == 2
    assert "width 1280 (has 64), height 720 (has 48)" in refusals[0]
    assert source.status.state == "ok"
    assert source.status.last_error == "read no frame (unplugged or stalled)"


def test_a_v4l2_camera_bounds_a_stalled_read_through_opencvs_timeout_variable(cameras):
    cameras([True, True])
    source = OpenCVCapture(0, stall_timeout=2.5)
    next(source.frames())
    source.close()
    assert os.environ[V4L2_TIMEOUT_VARIABLE] == "3"  # OpenCV counts whole seconds


def test_a_timeout_already_in_the_environment_wins(cameras, monkeypatch):
    cameras([True])
    monkeypatch.setenv(V4L2_TIMEOUT_VARIABLE, "7")
    source = OpenCVCapture(0, stall_timeout=2.5)
    next(source.frames())
    source.close()
    assert os.environ[V4L2_TIMEOUT_VARIABLE] == "7"


@pytest.mark.timeout(10)
def test_status_follows_the_camera_through_an_outage(cameras):
    fake = cameras([True, False, None, True])
    source = OpenCVCapture(0, reopen_after=0.01)
    seen: list[CameraStatus] = []
    fake.on_open = lambda: seen.append(source.status)
    frames = list(itertools.islice(source.frames(), 2))
    source.close()
    assert len(frames) == 2
    first, during, still = seen  # as each opening began
    assert (first.state, first.last_error) == ("ok", None)
    assert (during.state, during.last_error) == ("failing", "read no frame (unplugged or stalled)")
    assert (still.state, still.last_error) == ("failing", "cannot open it")
    assert still.since == during.since  # one outage, from its first failure
    assert first.since <= during.since <= frames[1].captured_at
    assert source.status == CameraStatus("ok", frames[1].captured_at, "cannot open it")


def test_open_source_takes_camera_options(tmp_path):
    camera = open_source("camera:1?size=640x480&fps=15&exposure=8000&focus=auto&fourcc=MJPG")
    assert isinstance(camera, OpenCVCapture)
    assert camera.device == 1
    assert camera.settings == CameraSettings(
        size=(640, 480), fps=15, exposure_us=8000, focus=None, fourcc="MJPG"
    )
    device = open_source("/dev/video2?focus=30&exposure=auto", fps=24)
    assert isinstance(device, OpenCVCapture)
    assert device.device == "/dev/video2"
    assert device.settings == CameraSettings(focus=30.0, fps=24)
    # Only a camera's name has options: a file's name may hold a question mark.
    odd = write_image(tmp_path / "why?.png", 10)
    replay = open_source(str(odd))
    assert isinstance(replay, ReplaySource)
    assert replay.files == [odd]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("camera:0?size=big", "WIDTHxHEIGHT"),
        ("camera:0?colour=red", "no camera option 'colour'"),
        ("camera:0?fps", "key=value"),
        ("camera:0?fps=", "key=value"),
        ("camera:0?fps=fast", "fps=fast"),
        ("camera:0?fps=0", "fps must be positive"),
        ("camera:0?size=640x480&size=320x240", "given twice"),
        ("/dev/video0?exposure=-5", "exposure_us must be positive"),
        ("camera:0?fourcc=MJPEG", "four characters"),
        ("camera:0?exposure=1000&gain=2", "gain is a Pi camera setting"),
        ("camera:x?fps=5", "camera:N"),
    ],
)
def test_open_source_rejects_malformed_camera_specs(spec, complaint):
    with pytest.raises(ValueError, match=complaint):
        open_source(spec)


def test_fps_cannot_be_given_twice():
    with pytest.raises(ValueError, match="fps given both"):
        open_source("camera:0?fps=30", fps=15)

"""`sentinel decode` on real image and video files: one JSON line per file, clear exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from sentinel.cli import main


def frame_with(text: str | None, *, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    width, height = size
    frame = np.full((height, width, 3), 150, np.uint8)
    if text is not None:
        code = segno.make(text, micro=False)
        dark = np.array([list(row) for row in code.matrix_iter(scale=5, border=4)], dtype=bool)
        patch = np.where(dark, 15, 245).astype(np.uint8)
        frame[60 : 60 + patch.shape[0], 80 : 80 + patch.shape[1]] = patch[..., None]
    return frame


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def decode_json(capsys: pytest.CaptureFixture[str], *paths: Path | str) -> tuple[int, list[dict]]:
    status = main(["decode", "--json", *map(str, paths)])
    lines = capsys.readouterr().out.splitlines()
    return status, [json.loads(line) for line in lines]


def test_an_image_and_a_video(tmp_path, capsys):
    image = tmp_path / "code.png"
    cv2.imwrite(str(image), frame_with("DS1:IMAGE"))
    video = write_video(
        tmp_path / "clip.avi",
        [frame_with(None)] * 3 + [frame_with("DS1:FIRST")] * 4 + [frame_with("DS1:SECOND")] * 4,
    )
    status, results = decode_json(capsys, image, video)
    assert status == 0
    assert [result["path"] for result in results] == [str(image), str(video)]
    assert results[0]["texts"] == ["DS1:IMAGE"]
    assert results[1]["texts"] == ["DS1:FIRST", "DS1:SECOND"]  # each once, in order of sight
    assert results[1]["frames"] == 11
    assert all(isinstance(result["ms"], float) and result["ms"] > 0 for result in results)


def test_chinese_text_comes_out_right(tmp_path, capsys):
    frame = np.full((400, 400), 200, np.uint8)
    code = segno.make("场所码 上海市徐汇区", encoding="gb2312", micro=False)
    dark = np.array([list(row) for row in code.matrix_iter(scale=6, border=4)], dtype=bool)
    frame[20 : 20 + dark.shape[0], 20 : 20 + dark.shape[1]] = np.where(dark, 0, 255)
    cv2.imwrite(str(tmp_path / "gb.png"), frame)
    status, results = decode_json(capsys, tmp_path / "gb.png")
    assert status == 0
    assert results[0]["texts"] == ["场所码 上海市徐汇区"]


def test_a_directory_reports_each_file(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), frame_with("DS1:A"))
    cv2.imwrite(str(tmp_path / "b.jpg"), frame_with(None))
    (tmp_path / "notes.txt").write_text("not an image")
    status, results = decode_json(capsys, tmp_path)
    assert [(Path(r["path"]).name, r["texts"]) for r in results] == [
        ("a.png", ["DS1:A"]),
        ("b.jpg", []),
    ]
    assert status == 1  # some file held no code


def test_missing_and_unreadable_files_are_errors(tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), frame_with("DS1:GOOD"))
    status, results = decode_json(capsys, tmp_path / "missing.png", broken, good)
    assert status == 2
    assert "no such file" in results[0]["error"]
    assert results[1]["error"] == "not a readable image or video"
    assert results[2]["texts"] == ["DS1:GOOD"]


def test_plain_output_names_the_file_and_texts(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "code.png"), frame_with("DS1:PLAIN"))
    assert main(["decode", str(tmp_path / "code.png")]) == 0
    out = capsys.readouterr().out
    assert "code.png" in out
    assert "DS1:PLAIN" in out

"""`sentinel bench`: small runs of both benchmarks, checking what they report, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sentinel.bench import decode
from tests.conftest import PCSCD_GROUP


def bench_json(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_decode_bench_on_the_dev_set_and_a_small_kiosk_set():
    if not decode.DEV_SET.is_dir():
        pytest.skip(f"reference QR photos not found at {decode.DEV_SET}")
    report = bench_json(
        "decode", "--sets", "dev", "kiosk", "--codes", "10", "--empty", "4", "--repeat", "1",
        "--burst", "3", "--decoders", "zxing-cpp", "zbar", "ours",
    )  # fmt: skip
    dev, kiosk = report["sets"]["dev"], report["sets"]["kiosk"]
    assert set(dev) == {"zxing-cpp", "zbar", "ours", "ours, live (3 frames each)"}
    assert dev["ours"]["codes"] == 98
    assert dev["ours"]["read"] >= 97
    assert dev["ours"]["misreads"] == []
    assert dev["ours"]["read"] > dev["zxing-cpp"]["read"]
    assert kiosk["ours"]["codes"] >= 10
    assert kiosk["ours"]["read"] >= max(kiosk["zxing-cpp"]["read"], kiosk["zbar"]["read"])
    assert kiosk["ours"]["empty_mean_ms"] > 0
    assert report["missed_by_ours"]["dev"]["ours"] == []
    assert report["missed_by_ours"]["kiosk"]["ours"] == []


def test_decode_bench_on_a_small_warped_paper_set():
    report = bench_json(
        "decode", "--sets", "warped", "--warped", "6", "--warped-empty", "2", "--repeat", "1",
        "--burst", "2", "--decoders", "zxing-cpp", "ours",
    )  # fmt: skip
    warped = report["sets"]["warped"]
    assert set(report["sets"]) == {"warped"}
    assert warped["ours"]["codes"] == warped["zxing-cpp"]["codes"] == 6
    assert warped["ours"]["read"] >= 4 > warped["zxing-cpp"]["read"] + 2
    assert warped["ours"]["misreads"] == warped["ours, live (2 frames each)"]["misreads"] == []
    assert warped["ours"]["empty_mean_ms"] > 0  # a damaged code and a codeless sheet
    methods = report["read_by_method"]["warped"]
    assert next(iter(methods)) == "zxing-cpp"
    assert methods["zxing-unwarped"] >= 3
    assert sum(methods.values()) == warped["ours"]["read"]
    assert report["missed_by_ours"]["warped"]["ours"] == []


def test_live_ratios_are_to_zxing_timed_on_the_same_frames():
    zxing = decode.Tally(code_ms=[1.0], empty_ms=[1.0])
    live = decode.Tally(
        code_ms=[3.0], empty_ms=[3.3], reference_code_ms=[2.0], reference_empty_ms=[3.0]
    )
    rows = decode.table({"zxing-cpp": zxing, "ours": decode.Tally(code_ms=[2.0]), "live": live})
    assert rows[3].endswith("| 2.00x / — |")  # ours: to the zxing-cpp row
    assert rows[4].endswith("| 1.50x / 1.10x |")  # live: to zxing-cpp on its own frames
    frames = decode.warped_set(3, 0, 2)
    calls = []
    tally = decode.measure_live(frames, 3, reference=lambda grey: calls.append(grey) or [])
    assert len(calls) == len(tally.empty_ms) == len(tally.reference_empty_ms) == 6


def test_missed_by_ours_names_codes_only_another_decoder_read():
    zxing, ours = decode.Tally(), decode.Tally()
    zxing.missed = {"a|1"}
    ours.missed = {"a|1", "b|2"}
    live = decode.Tally()
    live.missed = {"a|1"}
    assert decode.missed_by_ours({"zxing-cpp": zxing, "ours": ours, "ours, live": live}) == {
        "ours": ["b|2"],
        "ours, live": [],
    }


@pytest.mark.integration
def test_pipeline_bench_replays_a_clip_through_the_agent():
    report = bench_json("pipeline", "--people", "2")
    # 2 people of 3 s and 3 gaps of 1 s, at 15 frames a second
    assert report["frames"] == 2 * 45 + 3 * 15
    decisions = {outcome: n for outcome, n in report["outcomes"].items() if outcome != "ignored"}
    assert sum(decisions.values()) == 2  # one check-in per person, repeats ignored
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["max_ms"]
    assert 30 < report["agent_rss_mb"] < 1000
    assert report["agent_exit"] == 3  # offline: exited with check-ins not synced


@pytest.mark.xdist_group(PCSCD_GROUP)  # it reads through pcscd and vpcd when they run
def test_card_bench_times_each_read_and_says_what_it_could_not_measure():
    report = bench_json("card", "--reads", "3")
    rows = {row["what"]: row for row in report["reads"]}
    for what in (
        "eMRTD BAC + EF.COM + DG1, in process",
        "eMRTD + EF.SOD + passive authentication",
        "GA 467 find + select + read base info, pty",
    ):
        assert rows[what]["reads"] == 3
        assert 0 < rows[what]["median_ms"] <= rows[what]["p95_ms"]
    through_pcscd = "eMRTD BAC + EF.COM + DG1, pcscd + vpcd" in rows
    assert through_pcscd != any("through pcscd" in reason for reason in report["not_measured"])


def test_a_ga467_read_puts_its_frames_on_the_wire():
    from sentinel.bench.card import ga467_wire_bytes

    # three 10-byte requests; answers of 3 status bytes (+ 4 or 8 data bytes for find and
    # select) and the 4 + 256 + 1024 bytes of base info, each in an 8-byte frame
    assert 30 + 8 * 3 + 3 * 3 + 4 + 256 + 1024 <= ga467_wire_bytes() <= 30 + 8 * 3 + 9 + 1300

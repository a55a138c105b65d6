"""Tests of hardware.qr_grid: warped paper codes read by fitting their grid, never misread."""

import cv2
import numpy as np
import pytest
import segno

from hardware import qr_grid, scenes
from hardware.qr import LiveQrDecoder, QrDecoder

UNWARPED = "zxing-unwarped"
TEXTS = ["DS1:" + "WARPED0123" * 10, "https://sentinel.example.org/v/310115-000123?k=ab12cd34"]


def warped_frame(text: str, *, amplitude: float = 0.5, wavelength: float = 12.0) -> np.ndarray:
    """A 1280x720 grey frame with text's code on it, 5 pixels a module, its modules moved by a
    sine wave across and down (amplitude and wavelength in modules), a little out of focus."""
    scale = 5
    code = segno.make(text, error="m", micro=False)
    dark = np.array([list(row) for row in code.matrix_iter(scale=scale, border=4)], dtype=bool)
    height, width = dark.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    shift, turn = amplitude * scale, 2 * np.pi / (wavelength * scale)
    patch = cv2.remap(
        np.where(dark, 20, 235).astype(np.uint8),
        xs + shift * np.sin(ys * turn),
        ys + shift * np.sin(xs * turn),
        cv2.INTER_LINEAR,
        borderValue=235,
    )
    frame = np.full((720, 1280), 150, np.uint8)
    frame[100 : 100 + height, 300 : 300 + width] = cv2.GaussianBlur(patch, (0, 0), 1.0)
    return frame


def without_unwarping() -> QrDecoder:
    decoder = QrDecoder()
    decoder.rescue_methods = [m for m in decoder.rescue_methods if m[0] != UNWARPED]
    return decoder


@pytest.mark.parametrize("text", TEXTS, ids=["hcert-like", "venue-url"])
def test_a_warped_code_zxing_misses_is_read_by_unwarping(text):
    frame = warped_frame(text)
    assert QrDecoder(rescue=False).decode(frame) == []
    assert without_unwarping().decode(frame) == []  # no other rescue method reads it either
    reads = QrDecoder().read(frame)
    assert [(read.text, read.method) for read in reads] == [(text, UNWARPED)]


def test_generated_paper_codes_zxing_misses_are_read():
    # One block of the set: a crumpled, folded, wrinkled, bent, curved and cloth code.
    frames = scenes.warped_set(2022, codes=6, empty=0)
    assert sorted(scene.kind for scene in frames) == sorted(scenes.WARPS)
    zxing_alone, ours, wrong = 0, 0, []
    for scene in frames:
        grey = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
        zxing_alone += scene.texts[0] in QrDecoder(rescue=False).decode(grey)
        texts = QrDecoder().decode(grey)
        ours += scene.texts[0] in texts
        wrong += [(scene.name, text) for text in texts if text not in scene.texts]
    assert wrong == []
    assert zxing_alone <= 1
    assert ours >= 4


def test_damaged_and_codeless_paper_is_never_misread():
    # Damaged codes (a fifth to a third of their data flipped, finders and format intact) and
    # warped sheets of text, plaid and finder-like logos: nothing may be read in any.
    frames = scenes.warped_set(11, codes=0, empty=4)
    assert {scene.kind for scene in frames} == {"damaged", "empty"}
    decoder = QrDecoder()
    for scene in frames:
        assert decoder.decode(cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)) == [], scene.name


def test_a_code_with_its_data_destroyed_flattens_but_never_reads():
    code = segno.make(TEXTS[0], error="m", micro=False)
    modules = np.array(code.matrix, dtype=bool)
    rng = np.random.default_rng(5)
    modules[9:, 9:] ^= rng.random(modules[9:, 9:].shape) < 0.3
    frame = np.full((720, 1280), 150, np.uint8)
    patch = np.where(np.pad(modules, 4), 20, 235).astype(np.uint8)
    patch = cv2.resize(patch, None, fx=5, fy=5, interpolation=cv2.INTER_NEAREST)
    frame[100 : 100 + patch.shape[0], 300 : 300 + patch.shape[1]] = patch
    crop = frame[80 : 120 + patch.shape[0], 280 : 320 + patch.shape[1]]
    images = list(qr_grid.flattened(crop))
    assert images  # the grid was found and sampled...
    assert all(QrDecoder(rescue=False).decode(image) == [] for image in images)  # ...and refused
    assert QrDecoder().decode(frame) == []


class CountingUnwarp:
    """The unwarping rescue method, counting its calls and the grids it fits."""

    def __init__(self, decoder: QrDecoder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.grids = 0
        methods = dict(decoder.rescue_methods)
        unwarp = methods[UNWARPED]

        def counted(grey: np.ndarray) -> list[str]:
            self.calls += 1
            return unwarp(grey)

        decoder.rescue_methods = [
            (name, counted if name == UNWARPED else method) for name, method in methods.items()
        ]
        grid = qr_grid._Grid

        def counted_grid(*args: object) -> qr_grid._Grid:
            self.grids += 1
            return grid(*args)

        monkeypatch.setattr(qr_grid, "_Grid", counted_grid)


def test_frames_without_a_code_get_no_unwarping(monkeypatch):
    decoder = QrDecoder()
    counter = CountingUnwarp(decoder, monkeypatch)
    flat = np.full((720, 1280), 160, np.uint8)
    noise = np.clip(160 + np.random.default_rng(2).normal(0, 12, flat.shape), 0, 255)
    for frame in (flat, noise.astype(np.uint8)):
        assert decoder.decode(frame) == []
    now = [0.0]
    live = LiveQrDecoder(decoder, clock=lambda: now[0])
    for _ in range(30):
        now[0] += 1 / 15
        assert live.decode(flat) == []
    assert counter.calls == 0  # no candidate region: no rescue at all
    # Checks fill a region with texture, so rescue looks there: but with no finder patterns,
    # no grid is fitted.
    checks = flat.copy()
    cells = np.random.default_rng(3).integers(0, 2, (24, 24), dtype=np.uint8)
    checks[200:392, 400:592] = np.kron(cells, np.ones((8, 8), np.uint8)) * 180 + 30
    assert decoder.decode(checks) == []
    assert counter.calls >= 1
    assert counter.grids == 0
    assert decoder.decode(warped_frame(TEXTS[1])) == [TEXTS[1]]
    assert counter.grids >= 1


def test_finder_and_alignment_patterns_are_found_with_their_pitch():
    scale = 5
    code = segno.make("DS1:" + "PATTERN" * 20, error="m", version=7, micro=False)
    dark = np.array([list(row) for row in code.matrix_iter(scale=scale, border=4)], dtype=bool)
    grey = np.where(dark, 20, 235).astype(np.uint8)
    binary = cv2.adaptiveThreshold(
        grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 8
    )
    finders, alignments = qr_grid.patterns(binary)

    def pixels(row: float, column: float) -> tuple[float, float]:
        """Where the centre of module (row, column) is: pixel i spans i - 0.5 to i + 0.5."""
        return (4 + column + 0.5) * scale - 0.5, (4 + row + 0.5) * scale - 0.5

    size = 45
    corners = [pixels(3, 3), pixels(3, size - 4), pixels(size - 4, 3)]
    found = np.array(sorted((f.x, f.y) for f in finders))
    assert found == pytest.approx(np.array(sorted(corners)), abs=0.5)
    across, down = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for finder in finders:
        assert finder.pitches(across, down) == pytest.approx((scale, scale), abs=0.3)
    # Each alignment pattern is found (data modules may make a look-alike or two besides).
    found = np.array([(a.x, a.y) for a in alignments])
    for centre in (pixels(*place) for place in qr_grid._alignment_centres(size)):
        assert np.hypot(*(found - centre).T).min() < 0.5, centre


@pytest.mark.parametrize("version", [2, 7, 14, 22, 32, 40])
def test_alignment_centres_are_where_the_standard_puts_them(version):
    modules = np.array(segno.make("1", version=version, micro=False).matrix, dtype=bool)
    pattern = np.ones((5, 5), bool)
    pattern[1:4, 1:4] = False
    pattern[2, 2] = True
    centres = qr_grid._alignment_centres(modules.shape[0])
    assert len(centres) == (version // 7 + 2) ** 2 - 3
    for row, column in centres:
        assert (modules[row - 2 : row + 3, column - 2 : column + 3] == pattern).all()


def test_version_information_is_the_standards_bch_code():
    # ISO/IEC 18004 Annex D: version 7 is 00 0111 1100 1001 0100, version 40 10 1000 1100 0110 1001.
    assert qr_grid._version_word(7) == 0x07C94
    assert qr_grid._version_word(40) == 0x28C69
    words = list(qr_grid._VERSION_WORDS.values())
    # Any two differ in at least 8 bits, so 3 wrong bits are corrected.
    assert min(bin(a ^ b).count("1") for i, a in enumerate(words) for b in words[i + 1 :]) >= 8

"""Synthetic kiosk camera frames made from a seed: QR benchmark sets and presentation clips."""

# The camera's emulator for benchmarks. Each frame is composed the way a kiosk camera sees it:
# a room, a person, a phone or a printed code held up at a tilt, then the optics (defocus,
# motion blur) and the sensor (exposure, noise, JPEG). A code is drawn on a canvas of its own
# (a phone or a sheet of paper, in BGRA premultiplied by alpha), degraded there where the
# degradation belongs to the object (glare, moire, crumple, fold, shadow), and warped into the
# frame with a homography from a 3-D pose. Every random choice comes from a numpy Generator
# seeded with (seed, stream, index), so a scene depends on nothing but those three numbers.

import base64
import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import segno

__all__ = [
    "BASE45_ALPHABET",
    "CODE_KINDS",
    "HEIGHT",
    "KINDS",
    "TRAITS",
    "WARPS",
    "WIDTH",
    "Scene",
    "code_scene",
    "kiosk_set",
    "presentation_clip",
    "warped_set",
    "write_clip",
]

WIDTH = 1280
HEIGHT = 720
BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
CODE_KINDS = ("phone", "phone-dark", "paper", "two-codes")
# How warped_set's paper codes are out of shape.
WARPS = ("crumpled", "folded", "wrinkled", "bent", "curved", "cloth")
KINDS = (*CODE_KINDS, "empty")

# What Scene.traits may hold. A trait is listed when the degradation is strong enough to
# matter; every frame also gets some optics blur, sensor noise and (kiosk_set) JPEG.
TRAITS = {
    "small": "under 2.6 pixels per module",
    "tilt": "the code's plane turned 15 degrees or more from the camera",
    "rotation": "turned in-plane by more than 20 degrees",
    "inverted": "light modules on a dark background (a dark-mode phone)",
    "colour-code": "modules drawn in the code's health colour, not black",
    "glare": "a reflection washing out part of the screen",
    "moire": "a fine grating beating with the pixel grid, as when filming an LCD",
    "low-contrast": "faded print on greyish paper",
    "ink-spread": "printed modules spread or thinned by a pixel",
    "crumple": "paper crumpled (a smooth displacement of the print)",
    "fold": "paper folded: a crease, a bend and a shading step",
    "shadow": "a shadow over part of the paper",
    "uneven-light": "light falling off across the paper",
    "blur": "defocus of a quarter module or more",
    "motion-blur": "hand movement of half a module or more during the exposure",
    "exposure": "over- or under-exposed, or a strong tone curve",
    "noise": "strong sensor noise",
    "salt-pepper": "dead and hot pixels",
    "jpeg": "JPEG quality 60 or less",
    "close": "5.5 pixels a module or more",
    # In warped_set: how the sheet is out of shape (see WARPS), and codes that must not read.
    "crumpled": "crumpled and smoothed out: a random displacement of the print, with creases",
    "folded": "folded in two or four and opened: a side foreshortened, a ridge at the crease",
    "wrinkled": "wrinkled: ripples across the print",
    "bent": "bent round the hand that holds it",
    "curved": "round a curved card or a bottle",
    "cloth": "printed on fabric: bled ink, a weave, drape and ripples",
    "damaged": "a fifth to a third of the data modules flipped: unreadable by design",
    # In frames without a code: what is there to mislead a detector.
    "face": "a person in view",
    "stripes": "striped clothing",
    "checkered": "checkered clothing",
    "plaid": "plaid clothing",
    "phone-screen": "a phone showing an app screen without a code",
    "printed-text": "a printed page of text",
    "finder-like": "a printed logo of three nested squares, like a QR code's finder patterns",
    "dark": "a dark, noisy scene",
    # In presentation clips.
    "moving": "the phone is coming into view or leaving",
    "partial": "the phone is only partly in view",
}


@dataclass(frozen=True, eq=False)
class Scene:
    """One synthetic camera frame and what it shows.

    name: unique within a set and stable ("phone-dark-017", "empty-003", "clip-00042").
    image: 720x1280x3 BGR uint8 (HEIGHT x WIDTH), read-only.
    texts: the payloads of the codes fully in view; () when there is none. In a two-code
    frame the phone's code comes first.
    kind: one of KINDS ("phone", "phone-dark", "paper", "two-codes", "empty"); in warped_set,
    one of WARPS, or "damaged" or "empty".
    traits: the degradations strong enough to matter, from TRAITS, in the order applied (both
    codes' in a two-code frame); for frames without a code, what might mislead a detector.
    difficulty: 0 (clean) to 1, the knob the degradation strengths were drawn from (in
    warped_set, the warp's strength).
    Scenes compare by identity; compare images with numpy.array_equal.
    """

    name: str
    image: np.ndarray
    texts: tuple[str, ...]
    kind: str
    traits: tuple[str, ...] = ()
    difficulty: float = 0.0


# ---------------------------------------------------------------------------------------------
# Public API


def kiosk_set(seed: int = 2022, *, codes: int = 120, empty: int = 40) -> list[Scene]:
    """A benchmark set: `codes` frames showing codes, then `empty` frames showing none.

    Deterministic: the same seed gives byte-identical images with the same versions of numpy,
    OpenCV and segno. Code scene i depends only on (seed, i) and empty scene j only on (seed, j),
    so kiosk_set(s, codes=10) is the first 10 code scenes of kiosk_set(s, codes=20), and the
    number of empty frames does not change the code frames, nor the other way round.

    Kinds come in blocks of 20 code scenes, shuffled within the block: 9 "phone", 4
    "phone-dark", 5 "paper", 2 "two-codes". Each scene draws its difficulty from Beta(1.5, 1.6)
    (mean 0.48): many frames are easy or moderately hard, a tail is at the edge of readability
    or past it (zxing-cpp 3.1 reads 80-90% of the code frames; zbar and OpenCV fewer, and no
    inverted ones).
    """
    _check_seed(seed)
    if codes < 0 or empty < 0:
        raise ValueError(f"codes and empty must not be negative, not {codes} and {empty}")
    scenes = []
    for index in range(codes):
        block = np.random.default_rng([seed, _BLOCK_STREAM, index // len(_KIND_BLOCK)])
        kind = _KIND_BLOCK[block.permutation(len(_KIND_BLOCK))[index % len(_KIND_BLOCK)]]
        rng = np.random.default_rng([seed, _CODE_STREAM, index])
        difficulty = float(rng.beta(1.5, 1.6))
        if kind == "two-codes":
            phone = "phone-dark" if rng.random() < 0.25 else "phone"
            codes_shown = [(phone, _payload(rng, "phone")), ("paper", _payload(rng, "paper"))]
        else:
            codes_shown = [(kind, _payload(rng, "paper" if kind == "paper" else "phone"))]
        name = f"{kind}-{index:03d}"
        scenes.append(_code_scene(rng, name, kind, codes_shown, difficulty))
    for index in range(empty):
        rng = np.random.default_rng([seed, _EMPTY_STREAM, index])
        image, traits, difficulty = _empty_frame(rng)
        scenes.append(Scene(f"empty-{index:03d}", _freeze(image), (), "empty", traits, difficulty))
    return scenes


def warped_set(seed: int = 2022, *, codes: int = 60, empty: int = 20) -> list[Scene]:
    """Paper codes as people carry them: `codes` frames of warped codes, then `empty` without one.

    Each code frame shows one printed code whose modules no longer lie on a flat grid, its kind
    one of WARPS: "crumpled" (a smooth random displacement with creases), "folded" (in two or
    four, opened again: a far side foreshortened, a ridge at each crease), "wrinkled" (sine
    ripples), "bent" (round the hand holding it), "curved" (round a card or a bottle, with
    gloss), "cloth" (printed on fabric: ink bled into the weave, draped and rippled). Kinds come
    in blocks of 6, shuffled within the block; the size is "close" (5.5-8 pixels a module, a
    quarter), middling (3.5-5.5, half) or small (2.4-3.5, a quarter), all held at up to 28
    degrees of tilt; Scene.difficulty is the warp's strength (0.35 to 1). Of the frames without a
    code, even ones show a warped code with a fifth to a third of its data modules flipped (kind
    "damaged": no decoder may read anything in it), odd ones warped paper or cloth with print, a
    finder-like logo or plaid and no code (kind "empty"). Deterministic and stable as it grows,
    as kiosk_set; zxing-cpp 3.1 alone reads about a fifth of the code frames.
    """
    _check_seed(seed)
    if codes < 0 or empty < 0:
        raise ValueError(f"codes and empty must not be negative, not {codes} and {empty}")
    scenes = []
    for index in range(codes):
        block = np.random.default_rng([seed, _WARP_BLOCK_STREAM, index // len(WARPS)])
        kind = WARPS[block.permutation(len(WARPS))[index % len(WARPS)]]
        rng = np.random.default_rng([seed, _WARP_STREAM, index])
        payload = _payload(rng, "paper")
        scenes.append(_warped_scene(rng, f"{kind}-{index:03d}", kind, payload, damaged=False))
    for index in range(empty):
        rng = np.random.default_rng([seed, _WARP_EMPTY_STREAM, index])
        if index % 2 == 0:
            kind = WARPS[rng.integers(len(WARPS))]
            payload = _payload(rng, "paper")
            scenes.append(_warped_scene(rng, f"damaged-{index:03d}", kind, payload, damaged=True))
        else:
            scenes.append(_warped_empty(rng, f"empty-{index:03d}"))
    return scenes


def code_scene(
    text: str,
    *,
    kind: str = "phone",
    seed: int = 0,
    difficulty: float = 0.0,
    encoding: str | None = None,
    error: str = "M",
) -> Scene:
    """One frame showing one code with the given text, rendered like the kiosk_set scenes.

    kind: "phone", "phone-dark" or "paper". difficulty 0 gives a clean, large, nearly frontal
    code (what any decoder should read); 1 the hardest kiosk_set draws. encoding: None lets segno
    choose (alphanumeric, ISO-8859-1 or UTF-8); "utf-8", "gb2312"... encode the text in byte
    mode without an ECI header, as Chinese issuers did. error: "L", "M", "Q" or "H".
    """
    _check_seed(seed)
    if kind not in ("phone", "phone-dark", "paper"):
        raise ValueError(f"kind must be phone, phone-dark or paper, not {kind!r}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be within 0..1, not {difficulty}")
    rng = np.random.default_rng([seed, _SINGLE_STREAM])
    payload = _Payload(text, encoding, error.upper())
    return _code_scene(rng, f"{kind}-{seed:03d}", kind, [(kind, payload)], difficulty)


def presentation_clip(
    texts: Sequence[str],
    seed: int = 7,
    *,
    fps: int = 15,
    seconds_per_person: float = 3.0,
    gap_seconds: float = 1.0,
) -> Iterator[Scene]:
    """The frames of a kiosk clip in which one person after another shows a phone code.

    The clip opens with a gap of empty frames (an empty room); then, for each text, a person
    steps up, their phone comes in from an edge, is held still (small jitter, slight blur) for
    most of its time and leaves, and a gap follows. Frames: len(texts) * round(
    seconds_per_person * fps) + (len(texts) + 1) * round(gap_seconds * fps). Scene.texts holds
    the text on the frames where the whole code (with two modules of quiet zone) is in the
    picture, even if motion blurs it; kind is "phone" or "phone-dark" while any of the phone is
    in view, else "empty". Frames are made lazily; no JPEG is applied (a writer compresses).
    """
    _check_seed(seed)
    if fps <= 0 or seconds_per_person <= 0 or gap_seconds < 0:
        raise ValueError("fps and seconds_per_person must be positive, gap_seconds not negative")
    per_person = max(1, round(seconds_per_person * fps))
    gap = round(gap_seconds * fps)
    return _clip_frames(list(texts), seed, fps, per_person, gap)


def write_clip(scenes: Iterable[Scene], path: Path, fps: int) -> Path:
    """Write frames as a Motion-JPEG .avi at path; returns the path written.

    opencv-python-headless writes and reads MJPG AVI files with its own codec, so this is the
    usual outcome. If OpenCV cannot open a writer for path (an OpenCV built without it, or a
    suffix it has no container for), the frames go instead to a directory named like path
    without its suffix, as frame-000000.png, frame-000001.png...; that directory is returned.
    Either replays through hardware.frames.ReplaySource. Raises ValueError for no frames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(scenes)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    height, width = first.image.shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height)
    )
    if writer.isOpened():
        try:
            writer.write(first.image)
            for scene in frames:
                writer.write(scene.image)
        finally:
            writer.release()
        return path
    directory = path.with_suffix("")
    directory.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(directory / "frame-000000.png"), first.image)
    for number, scene in enumerate(frames, start=1):
        cv2.imwrite(str(directory / f"frame-{number:06d}.png"), scene.image)
    return directory


# ---------------------------------------------------------------------------------------------
# Seeds and streams

# SeedSequence entropy is (seed, stream, index): each kind of draw has its own stream, so no
# generator's output depends on how many draws another made.
_CODE_STREAM, _EMPTY_STREAM, _BLOCK_STREAM, _SINGLE_STREAM = 0, 1, 2, 3
_CLIP_STREAM, _PERSON_STREAM, _FRAME_STREAM = 4, 5, 6
_WARP_STREAM, _WARP_EMPTY_STREAM, _WARP_BLOCK_STREAM = 7, 8, 9
_WARP_SIZES = ("small", "middling", "close")
_WARP_PPM = {"small": (2.4, 3.5), "middling": (3.5, 5.5), "close": (5.5, 8.0)}
# 45% phone, 20% phone-dark, 25% paper, 10% two codes, per block of 20 code scenes.
_KIND_BLOCK = ("phone",) * 9 + ("phone-dark",) * 4 + ("paper",) * 5 + ("two-codes",) * 2


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")


def _freeze(image: np.ndarray) -> np.ndarray:
    image.flags.writeable = False
    return image


# ---------------------------------------------------------------------------------------------
# Payloads: what real kiosk codes carry


@dataclass(frozen=True)
class _Payload:
    text: str
    encoding: str | None  # None: segno's choice; else byte mode in this charset, no ECI
    error: str


_FAMILIES = ("ds1", "hc1", "venue", "zh-utf8", "zh-gb2312")
_FAMILY_WEIGHTS = {
    "phone": (0.55, 0.20, 0.15, 0.05, 0.05),
    "paper": (0.30, 0.10, 0.45, 0.07, 0.08),
}
_ERRORS = ("L", "M", "Q", "H")
_ERROR_WEIGHTS = {
    "ds1": (0.10, 0.70, 0.15, 0.05),
    "hc1": (0.05, 0.40, 0.55, 0.00),  # the EU DCC guidelines recommend Q
    "venue": (0.10, 0.60, 0.15, 0.15),  # posters often use H
    "zh": (0.10, 0.70, 0.15, 0.05),
}
_DISTRICTS = ("310101", "310104", "310105", "310106", "310112", "310115", "110105", "110108")
_ZH_PREFIXES = ("场所码", "数字哨兵", "核酸采样点", "健康码查验", "扫码登记")
_ZH_PLACES = {
    "上海市": ("徐汇区", "浦东新区", "黄浦区", "静安区", "长宁区", "闵行区"),
    "北京市": ("海淀区", "朝阳区", "东城区", "西城区"),
    "广州市": ("天河区", "越秀区", "海珠区"),
    "深圳市": ("南山区", "福田区", "罗湖区"),
    "杭州市": ("西湖区", "上城区", "滨江区"),
}
_ZH_BUILDINGS = (
    "某某大厦", "人民广场", "中心医院", "第一中学", "星光超市", "东方商场",
    "和平小区", "地铁站", "市图书馆", "体育中心", "菜市场", "社区服务中心",
)  # fmt: skip
_ZH_SPOTS = ("东门", "南门", "西门", "北门", "入口", "一号楼", "二号楼")


def _pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    p = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(len(p), p=p / p.sum()))


def _base45(data: bytes) -> str:
    digits = []
    for i in range(0, len(data) - 1, 2):
        rest, c = divmod(data[i] * 256 + data[i + 1], 45)
        e, d = divmod(rest, 45)
        digits += (c, d, e)
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        digits += (c, d)
    return "".join(BASE45_ALPHABET[digit] for digit in digits)


def _payload(rng: np.random.Generator, carrier: str) -> _Payload:
    family = _FAMILIES[_pick(rng, _FAMILY_WEIGHTS[carrier])]
    error = _ERRORS[_pick(rng, _ERROR_WEIGHTS[family[:2] if family.startswith("zh") else family])]
    if family == "ds1":  # our health code: 150-350 Base45 characters
        return _Payload("DS1:" + _base45(rng.bytes(int(rng.integers(100, 234)))), None, error)
    if family == "hc1":  # an EU DCC: 400-600 Base45 characters
        return _Payload("HC1:" + _base45(rng.bytes(int(rng.integers(267, 401)))), None, error)
    if family == "venue":
        params = []
        binding = rng.random()
        if binding < 0.3:
            params.append(f"b=room:{rng.integers(1, 30)}{rng.integers(1, 40):02d}")
        elif binding < 0.45:
            plate = "沪" + "ABCDEFG"[rng.integers(7)] + f"{rng.integers(0, 100000):05d}"
            params.append("b=plate:" + quote(plate))
        params.append("k=" + rng.bytes(4).hex())
        params.append("s=" + base64.urlsafe_b64encode(rng.bytes(32)).rstrip(b"=").decode())
        district = _DISTRICTS[rng.integers(len(_DISTRICTS))]
        venue = f"{district}-{rng.integers(1, 1000000):06d}"
        return _Payload(f"https://sentinel.example.org/v/{venue}?" + "&".join(params), None, error)
    city = list(_ZH_PLACES)[rng.integers(len(_ZH_PLACES))]
    districts = _ZH_PLACES[city]
    place = f"{city}{districts[rng.integers(len(districts))]}"
    building = _ZH_BUILDINGS[rng.integers(len(_ZH_BUILDINGS))]
    spot = f"{rng.integers(1, 30)}楼" if rng.random() < 0.5 else _ZH_SPOTS[rng.integers(7)]
    text = f"{_ZH_PREFIXES[rng.integers(len(_ZH_PREFIXES))]} {place} {building} {spot}"
    if rng.random() < 0.3:
        text += f" 编号{rng.integers(0, 100000):05d}"
    return _Payload(text, "gb2312" if family == "zh-gb2312" else "utf-8", error)


def _modules(payload: _Payload, rng: np.random.Generator) -> np.ndarray:
    """The QR symbol as a bool matrix, True for dark modules, without quiet zone."""
    qr = segno.make(
        payload.text,
        error=payload.error,
        encoding=payload.encoding,
        mode="byte" if payload.encoding else None,
        micro=False,
        boost_error=False,  # the level the issuer chose, not the best that fits
        # segno scores the 8 masks in pure Python (~20 ms a code); any mask is a valid code.
        mask=int(rng.integers(8)),
    )
    return np.array(qr.matrix, dtype=np.uint8).astype(bool)


# ---------------------------------------------------------------------------------------------
# Drawing helpers

Colour = tuple[float, ...]
_SKINS = ((150, 180, 225), (120, 155, 205), (95, 130, 180), (70, 95, 140), (55, 70, 105))
_HAIR = ((20, 20, 25), (30, 35, 45), (40, 60, 90), (110, 120, 130))
_PHONE_BODIES = ((25, 25, 28), (40, 40, 45), (180, 182, 185), (60, 70, 80), (110, 70, 30))
_HEADERS = ((200, 120, 30), (80, 160, 40), (170, 140, 20), (60, 60, 200), (210, 150, 60))
# BGR module colours of health-code apps: green, red, and a yellow/amber that is hard to read.
_CODE_COLOURS = ((70, 160, 20), (50, 45, 200), (20, 150, 225))


def _rounded_rect(
    img: np.ndarray, rect: tuple[int, int, int, int], radius: int, colour: Colour
) -> None:
    x0, y0, x1, y1 = rect
    radius = max(0, min(radius, (x1 - x0) // 2, (y1 - y0) // 2))
    cv2.rectangle(img, (x0 + radius, y0), (x1 - radius, y1), colour, -1)
    cv2.rectangle(img, (x0, y0 + radius), (x1, y1 - radius), colour, -1)
    for cx, cy in ((x0 + radius, y0 + radius), (x1 - radius, y0 + radius)):
        cv2.circle(img, (cx, cy), radius, colour, -1)
        cv2.circle(img, (cx, y1 - radius), radius, colour, -1)


def _text_lines(
    rng: np.random.Generator,
    img: np.ndarray,
    box: tuple[int, int, int, int],
    height: int,
    colour: Colour,
) -> None:
    """Grey bars in words and lines, as text looks from a distance."""
    x0, y0, x1, y1 = box
    height = max(2, height)
    if img.shape[2] == 4:
        colour = (*colour[:3], 255)
    y = y0
    while y + height <= y1:
        end = x0 + int((x1 - x0) * rng.uniform(0.35, 1.0))
        x = x0
        while x < end:
            width = int(height * rng.uniform(1.0, 5.0))
            cv2.rectangle(img, (x, y), (min(x + width, end), y + height - 1), colour, -1)
            x += width + max(2, height // 2)
        y += int(height * rng.uniform(1.8, 2.6))


def _falloff(
    shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float], angle: float
) -> np.ndarray:
    """exp(-r^2) over a region, r the distance from centre in units of a rotated ellipse's axes."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(centre[1])
    xs = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(centre[0])
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = (xs * c + ys * s) / np.float32(axes[0])
    v = (ys * c - xs * s) / np.float32(axes[1])
    return np.exp(-(u * u) - v * v)


def _code_image(
    modules: np.ndarray, k: int, quiet: int, module: Colour, background: Colour
) -> np.ndarray:
    """The code in BGRA, k pixels a module, with `quiet` modules of quiet zone.

    module: the colour of the modules that are dark in a normal code (light in an inverted one).
    """
    colours = np.array([(*background, 255), (*module, 255)], dtype=np.float64)
    small = np.rint(colours).astype(np.uint8)[np.pad(modules, quiet).astype(np.intp)]
    return np.repeat(np.repeat(small, k, axis=0), k, axis=1)


def _fingers(
    rng: np.random.Generator,
    canvas: np.ndarray,
    body: tuple[int, int, int, int],
    avoid: tuple[int, int, int, int],
) -> None:
    """Fingers over the edges of a phone or sheet, never over the `avoid` rectangle."""
    x0, y0, x1, y1 = body
    skin = (*_SKINS[rng.integers(len(_SKINS))], 255)
    w, h = x1 - x0, y1 - y0
    for _ in range(int(rng.integers(1, 5))):
        side = x0 if rng.random() < 0.5 else x1
        cx = side + int(rng.uniform(-0.02, 0.02) * w)
        cy = y0 + int(h * rng.uniform(0.5, 0.95))
        ax, ay = int(w * rng.uniform(0.06, 0.1)), int(h * rng.uniform(0.025, 0.04))
        r = max(ax, ay)  # the ellipse turns, so keep a circle's clearance
        if cx + r > avoid[0] and cx - r < avoid[2] and cy + r > avoid[1] and cy - r < avoid[3]:
            continue
        angle = float(rng.uniform(-20, 20))
        cv2.ellipse(canvas, (cx, cy), (ax, ay), angle, 0, 360, skin, -1)


# ---------------------------------------------------------------------------------------------
# Objects that carry codes: a canvas each, warped into the frame later


@dataclass
class _Layer:
    canvas: np.ndarray  # HxWx4 BGRA uint8, colour premultiplied by alpha
    quad: np.ndarray | None  # the symbol's corners (TL, TR, BR, BL) in canvas pixels
    module: float  # canvas pixels per module (for empty frames: a nominal one)


def _phone(
    rng: np.random.Generator,
    modules: np.ndarray | None,
    k: int,
    *,
    dark: bool,
    difficulty: float,
    traits: list[str],
) -> _Layer:
    """A phone showing a code (or, with modules None, an app screen without one)."""
    quiet = int(rng.integers(2, 5))
    n = 0 if modules is None else modules.shape[0]
    box = (n + 2 * quiet) * k if modules is not None else int(rng.uniform(40, 60) * k)
    canvas, body, screen = _phone_body(rng, box)
    if dark:
        bg, ink = rng.uniform(12, 38), rng.uniform(150, 215)
        header = tuple(rng.uniform(35, 70, 3))
        module = (rng.uniform(195, 240),) * 3  # light modules on the dark screen: inverted
    else:
        bg, ink = rng.uniform(238, 255), rng.uniform(40, 120)
        header = _HEADERS[rng.integers(len(_HEADERS))]
        module = (rng.uniform(0, 35),) * 3
    code_box = _phone_ui(rng, canvas, screen, box, bg=bg, ink=ink, header=header)
    cx0, cy0 = code_box[:2]
    quad = None
    if modules is None:
        _app_screen(rng, canvas, code_box, dark, ink)
    else:
        frame_colour = _CODE_COLOURS[rng.integers(2 if rng.random() > difficulty else 3)]
        if not dark and rng.random() < 0.2:
            module = frame_colour
            traits.append("colour-code")
        if rng.random() < 0.5:  # a coloured frame around the code, as health-code apps draw
            thick = max(2, int(k * rng.uniform(0.6, 1.6)))
            around = (cx0 - thick, cy0 - thick, code_box[2] + thick, code_box[3] + thick)
            _rounded_rect(canvas, around, thick * 2, (*frame_colour, 255))
        canvas[cy0 : cy0 + box, cx0 : cx0 + box] = _code_image(modules, k, quiet, module, (bg,) * 3)
        quad = _symbol_quad(cx0, cy0, quiet * k, n * k)
    _fingers(rng, canvas, body, code_box)
    _screen_glare(rng, canvas, code_box, difficulty=difficulty, traits=traits)
    _moire(rng, canvas, screen, k, difficulty=difficulty, traits=traits)
    return _Layer(canvas, quad, float(k))


def _phone_body(
    rng: np.random.Generator, box: int
) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A blank phone whose screen is about `box` / 0.7 wide: canvas, body and screen rects."""
    screen_w = int(box / rng.uniform(0.6, 0.82))
    screen_h = int(screen_w * rng.uniform(1.95, 2.2))
    bezel = max(3, int(screen_w * rng.uniform(0.025, 0.05)))
    body_w, body_h = screen_w + 2 * bezel, screen_h + int(2.6 * bezel)
    margin = int(body_w * 0.12)  # room for fingers
    canvas = np.zeros((body_h + 2 * margin, body_w + 2 * margin, 4), np.uint8)
    body = (margin, margin, margin + body_w - 1, margin + body_h - 1)
    _rounded_rect(canvas, body, int(body_w * 0.09), (*_PHONE_BODIES[rng.integers(5)], 255))
    sx0, sy0 = margin + bezel, margin + int(1.3 * bezel)
    return canvas, body, (sx0, sy0, sx0 + screen_w - 1, sy0 + screen_h - 1)


def _phone_ui(
    rng: np.random.Generator,
    canvas: np.ndarray,
    screen: tuple[int, int, int, int],
    box: int,
    *,
    bg: float,
    ink: float,
    header: Colour,
) -> tuple[int, int, int, int]:
    """An app's screen around a square of `box` pixels: status bar, header, lines of text.

    Returns the square's rectangle, left for the code.
    """
    sx0, sy0, sx1, sy1 = screen
    screen_w, screen_h = sx1 - sx0 + 1, sy1 - sy0 + 1
    _rounded_rect(canvas, screen, int(screen_w * 0.07), (bg, bg, bg, 255))
    header_h = int(screen_h * rng.uniform(0.07, 0.1))
    top = sy0 + int(screen_w * 0.05)
    cv2.rectangle(canvas, (sx0, top), (sx1, sy0 + header_h), (*header, 255), -1)
    line_h = max(2, int(screen_h * rng.uniform(0.011, 0.016)))
    status = (sx0 + line_h * 3, sy0 + int(screen_w * 0.012), sx0 + screen_w // 4, top)
    _text_lines(rng, canvas, status, line_h, (ink,) * 3)
    cx0 = sx0 + (screen_w - box) // 2
    cy0 = sy0 + int(screen_h * rng.uniform(0.4, 0.52)) - box // 2
    cy0 = max(cy0, sy0 + header_h + 4 * line_h)
    pad = line_h * 2
    above = (sx0 + pad, sy0 + header_h + pad, sx1 - pad, cy0 - pad)
    _text_lines(rng, canvas, above, line_h, (ink,) * 3)
    below = (sx0 + pad, cy0 + box + 2 * pad, sx1 - pad, sy1 - 3 * pad)
    _text_lines(rng, canvas, below, line_h, (ink,) * 3)
    return cx0, cy0, cx0 + box - 1, cy0 + box - 1


def _symbol_quad(x0: int, y0: int, quiet: int, side: int) -> np.ndarray:
    """The corners (TL, TR, BR, BL) of a symbol drawn `quiet` pixels inside (x0, y0)."""
    a, b = quiet - 0.5, quiet + side - 0.5  # pixel edges: pixel i spans i - 0.5 .. i + 0.5
    return np.array([[x0 + a, y0 + a], [x0 + b, y0 + a], [x0 + b, y0 + b], [x0 + a, y0 + b]])


def _app_screen(
    rng: np.random.Generator,
    canvas: np.ndarray,
    box: tuple[int, int, int, int],
    dark: bool,
    ink: float,
) -> None:
    """What a phone shows instead of a code: a photo grid, a card with text, or a chat."""
    x0, y0, x1, y1 = box
    style = rng.integers(3)
    if style == 0:
        cells = int(rng.integers(2, 5))
        size = (x1 - x0) // cells
        for row in range(cells):
            for col in range(cells):
                colour = (*rng.uniform(30, 230, 3), 255)
                cv2.rectangle(
                    canvas,
                    (x0 + col * size + 2, y0 + row * size + 2),
                    (x0 + (col + 1) * size - 2, y0 + (row + 1) * size - 2),
                    colour,
                    -1,
                )
    elif style == 1:
        card = rng.uniform(40, 70) if dark else rng.uniform(215, 235)
        _rounded_rect(canvas, box, (x1 - x0) // 12, (card, card, card, 255))
        _text_lines(rng, canvas, (x0 + 12, y0 + 12, x1 - 12, y1 - 12), (x1 - x0) // 24, (ink,) * 3)
    else:
        y = y0
        while y < y1 - 20:
            h = int(rng.uniform(0.08, 0.2) * (y1 - y0))
            left = rng.random() < 0.5
            bubble = (120, 220, 150) if not left else ((90,) * 3 if dark else (240,) * 3)
            bx0 = x0 if left else x0 + (x1 - x0) // 3
            rect = (bx0, y, bx0 + 2 * (x1 - x0) // 3, min(y + h, y1))
            _rounded_rect(canvas, rect, h // 4, (*bubble, 255))
            y += h + 10


def _screen_glare(
    rng: np.random.Generator,
    canvas: np.ndarray,
    box: tuple[int, int, int, int],
    *,
    difficulty: float,
    traits: list[str],
) -> None:
    """A reflection on the glass: a bright elliptical blob washing part of the code out."""
    if rng.random() > 0.25 + 0.45 * difficulty:
        return
    peak = min(1.0, difficulty * rng.uniform(0.3, 1.4))
    size = box[2] - box[0]
    cx = box[0] + size * rng.uniform(-0.1, 1.1)
    cy = box[1] + size * rng.uniform(-0.1, 1.1)
    ax = size * rng.uniform(0.12, 0.45)
    ay = ax * rng.uniform(0.3, 0.9)
    if peak < 0.1:
        return
    r = int(2.2 * ax)
    x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
    x1, y1 = min(canvas.shape[1], int(cx) + r), min(canvas.shape[0], int(cy) + r)
    if x1 <= x0 or y1 <= y0:
        return
    glare = np.float32(peak) * _falloff(
        (y1 - y0, x1 - x0), (cx - x0, cy - y0), (ax, ay), float(rng.uniform(0, math.pi))
    )
    region = canvas[y0:y1, x0:x1]
    glare = np.minimum(glare * np.float32(1.3), np.float32(1.0))  # a plateau: saturated centre
    alpha = np.ascontiguousarray(region[..., 3])
    glare *= alpha.astype(np.float32) / np.float32(255)  # only on the phone
    white = cv2.merge([alpha] * 4)  # white, premultiplied
    region[:] = cv2.blendLinear(region, white, np.float32(1) - glare, glare)
    if peak >= 0.25:
        traits.append("glare")


def _moire(
    rng: np.random.Generator,
    canvas: np.ndarray,
    screen: tuple[int, int, int, int],
    k: int,
    *,
    difficulty: float,
    traits: list[str],
) -> None:
    """A fine sinusoidal grating over the screen; warping it into the frame aliases it."""
    if rng.random() > 0.2 + 0.4 * difficulty:
        return
    amplitude = difficulty * rng.uniform(0.1, 0.6)
    if amplitude < 0.05:
        return
    x0, y0, x1, y1 = screen
    # Canvas pixels are about 0.6-0.75 frame pixels: a period near 2-3 canvas pixels beats
    # with the frame's sampling into coarse bands; sometimes the coarse bands are direct.
    period = rng.uniform(1.6, 3.2) if rng.random() < 0.6 else k * rng.uniform(1.5, 5.0)
    angle = rng.uniform(0, math.pi)
    fx, fy = 2 * math.pi * math.cos(angle) / period, 2 * math.pi * math.sin(angle) / period
    phase = rng.uniform(0, 2 * math.pi)
    xs = (np.arange(x1 - x0 + 1) * fx).astype(np.float32)
    ys = (np.arange(y1 - y0 + 1) * fy + phase).astype(np.float32)
    # cos(a + b) = cos a cos b - sin a sin b: two outer products, no 2-D transcendental.
    wave = np.outer(np.cos(ys), np.cos(xs)) - np.outer(np.sin(ys), np.sin(xs))
    gain = np.float32(1 - amplitude / 2) - np.float32(amplitude / 2) * wave
    region = canvas[y0 : y1 + 1, x0 : x1 + 1]
    region[:] = cv2.multiply(
        region, cv2.merge([gain, gain, gain, np.ones_like(gain)]), dtype=cv2.CV_8U
    )
    if amplitude >= 0.1:
        traits.append("moire")


def _paper(
    rng: np.random.Generator,
    modules: np.ndarray | None,
    k: int,
    *,
    difficulty: float,
    traits: list[str],
    content: str = "code",
) -> _Layer:
    """A printed sheet held up: a code (content "code"), text, or a logo of finder-like squares."""
    quiet = 4 if rng.random() < 0.75 else int(rng.integers(2, 4))
    n = 0 if modules is None else modules.shape[0]
    box = (n + 2 * quiet) * k if modules is not None else int(rng.uniform(40, 60) * k)
    paper_w = int(box / rng.uniform(0.62, 0.85))
    paper_h = int(paper_w * rng.uniform(1.1, 1.45))
    margin = int(paper_w * 0.1)
    canvas = np.zeros((paper_h + 2 * margin, paper_w + 2 * margin, 4), np.uint8)
    white = rng.uniform(222, 248)
    paper = (white - rng.uniform(4, 16), white - rng.uniform(0, 8), white)
    ink = (rng.uniform(15, 60),) * 3
    if rng.random() < 0.35 * difficulty:
        paper = tuple(c * rng.uniform(0.78, 0.9) for c in paper)
        ink = (rng.uniform(85, 130),) * 3
        traits.append("low-contrast")
    sheet = (margin, margin, margin + paper_w - 1, margin + paper_h - 1)
    cv2.rectangle(canvas, sheet[:2], sheet[2:], (*paper, 255), -1)
    cx0 = margin + (paper_w - box) // 2
    line_h = max(3, paper_w // 28)
    cy0 = margin + int(paper_h * rng.uniform(0.42, 0.55)) - box // 2
    cy0 = max(cy0, margin + 5 * line_h)  # below the title
    title = tuple(255 - 0.7 * (255 - c) for c in ink) if rng.random() < 0.5 else (40, 40, 190)
    title_bar = (cx0, margin + line_h * 2), (cx0 + box * 3 // 4, margin + line_h * 4)
    cv2.rectangle(canvas, *title_bar, (*title, 255), -1)
    _text_lines(rng, canvas, (cx0, cy0 + box + line_h, cx0 + box, sheet[3] - line_h), line_h, ink)
    code_box = (cx0, cy0, cx0 + box - 1, cy0 + box - 1)
    quad = None
    if content == "code" and modules is not None:
        printed = _code_image(modules, k, quiet, ink, paper)
        if k >= 4 and rng.random() < 0.3 + 0.3 * difficulty:
            # erode spreads the dark ink by a pixel, dilate thins it
            spread = cv2.erode if rng.random() < 0.6 else cv2.dilate
            size = 3 if k >= 8 else 2  # a pixel on each side, or one pixel in all
            printed = spread(printed, np.ones((size, size), np.uint8))
            traits.append("ink-spread")
        canvas[cy0 : cy0 + box, cx0 : cx0 + box] = printed
        quad = _symbol_quad(cx0, cy0, quiet * k, n * k)
    elif content == "finders":
        _finder_logo(rng, canvas, code_box, ink)
    else:
        _printed_text(rng, canvas, code_box, ink)
    if rng.random() < 0.7:
        _fingers(rng, canvas, sheet, code_box)
    canvas = _paper_surface(
        rng, canvas, sheet=sheet, box=code_box, module=k, difficulty=difficulty, traits=traits
    )
    return _Layer(canvas, quad, float(k))


def _finder_logo(
    rng: np.random.Generator, canvas: np.ndarray, box: tuple[int, int, int, int], ink: Colour
) -> None:
    """Three nested squares in an L, a QR code's finder patterns with no code between them."""
    x0, y0, x1, _ = box
    unit = max(2, (x1 - x0) // int(rng.integers(16, 30)))
    paper = tuple(int(c) for c in canvas[y0, x0, :3])
    for fx, fy in ((x0, y0), (x1 - 7 * unit, y0), (x0, y0 + (x1 - x0) - 7 * unit)):
        cv2.rectangle(canvas, (fx, fy), (fx + 7 * unit - 1, fy + 7 * unit - 1), (*ink, 255), -1)
        cv2.rectangle(
            canvas,
            (fx + unit, fy + unit),
            (fx + 6 * unit - 1, fy + 6 * unit - 1),
            (*paper, 255),
            -1,
        )
        cv2.rectangle(
            canvas,
            (fx + 2 * unit, fy + 2 * unit),
            (fx + 5 * unit - 1, fy + 5 * unit - 1),
            (*ink, 255),
            -1,
        )
    _text_lines(
        rng, canvas, (x0 + 9 * unit, y0 + 9 * unit, x1 - unit, y0 + (x1 - x0) - unit), unit, ink
    )


def _printed_text(
    rng: np.random.Generator, canvas: np.ndarray, box: tuple[int, int, int, int], ink: Colour
) -> None:
    x0, y0, x1, y1 = box
    scale = (x1 - x0) / 420
    y = y0 + int(30 * scale)
    letters = "abcdefghijklmnopqrstuvwxyz"
    while y < y1:
        words = [
            "".join(letters[i] for i in rng.integers(0, 26, int(rng.integers(2, 9))))
            for _ in range(int(rng.integers(2, 6)))
        ]
        cv2.putText(
            canvas,
            " ".join(words),
            (x0, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (*ink, 255),
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
        y += int(rng.uniform(34, 48) * scale)


def _paper_surface(
    rng: np.random.Generator,
    canvas: np.ndarray,
    *,
    sheet: tuple[int, int, int, int],
    box: tuple[int, int, int, int],
    module: int,
    difficulty: float,
    traits: list[str],
) -> np.ndarray:
    """Crumple, fold, uneven light and shadow, computed on a grid 1/8 the canvas size."""
    h, w = canvas.shape[:2]
    grid = _Grid(
        np.linspace(0, w - 1, w // 8 + 2, dtype=np.float32)[None, :],
        np.linspace(0, h - 1, h // 8 + 2, dtype=np.float32)[:, None],
    )
    _crumple(rng, grid, module, difficulty, traits)
    crease = _fold(rng, grid, sheet, box, difficulty=difficulty, traits=traits)
    _uneven_light(rng, grid, (w, h), difficulty, traits)
    _shadow(rng, grid, difficulty, traits)
    full = cv2.resize(grid.shade, (w, h), interpolation=cv2.INTER_LINEAR)
    canvas = cv2.multiply(
        canvas, cv2.merge([full, full, full, np.ones_like(full)]), dtype=cv2.CV_8U
    )
    if crease is not None:
        inside = (sheet[0], sheet[1], sheet[2] - sheet[0], sheet[3] - sheet[1])
        ok, p0, p1 = cv2.clipLine(inside, *crease)
        if ok:
            middle = canvas[(p0[1] + p1[1]) // 2, (p0[0] + p1[0]) // 2, :3]
            cv2.line(canvas, p0, p1, (*(0.72 * middle.astype(float)), 255), max(1, w // 300))
    if not grid.dx.any() and not grid.dy.any():
        return canvas
    map_x = cv2.resize(grid.dx, (w, h), interpolation=cv2.INTER_LINEAR)
    map_y = cv2.resize(grid.dy, (w, h), interpolation=cv2.INTER_LINEAR)
    map_x += np.arange(w, dtype=np.float32)[None, :]
    map_y += np.arange(h, dtype=np.float32)[:, None]
    return cv2.remap(canvas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


class _Grid:
    """A coarse grid over a canvas: shading to multiply by, displacement to sample from."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray) -> None:
        self.xs, self.ys = xs, ys  # canvas coordinates of the grid's columns and rows
        shape = (ys.shape[0], xs.shape[1])
        self.shade = np.ones(shape, np.float32)
        self.dx = np.zeros(shape, np.float32)
        self.dy = np.zeros(shape, np.float32)


def _crumple(
    rng: np.random.Generator, grid: _Grid, module: int, difficulty: float, traits: list[str]
) -> None:
    """A smooth random displacement of up to a module, and the light and dark it makes."""
    strength = difficulty * rng.uniform(0.2, 1.0)
    if rng.random() >= 0.35 + 0.5 * difficulty or strength <= 0.05:
        return
    bumps = rng.standard_normal((int(rng.integers(3, 6)), int(rng.integers(3, 6)), 2))
    size = grid.shade.shape[::-1]
    field = cv2.resize(bumps.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    field /= max(1e-6, float(np.abs(field).max()))
    grid.dx += field[..., 0] * np.float32(module * strength)
    grid.dy += field[..., 1] * np.float32(module * strength)
    slope = np.gradient(field[..., 0], axis=1) + np.gradient(field[..., 1], axis=0)
    grid.shade *= 1 + np.float32(0.25 * strength) * slope / max(1e-6, float(np.abs(slope).max()))
    if strength >= 0.3:
        traits.append("crumple")


def _fold(
    rng: np.random.Generator,
    grid: _Grid,
    sheet: tuple[int, int, int, int],
    box: tuple[int, int, int, int],
    *,
    difficulty: float,
    traits: list[str],
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """A fold across the middle: one half bent away and darker. Returns the crease's ends."""
    if difficulty <= 0 or rng.random() >= 0.2 + 0.4 * difficulty:
        return None
    horizontal = rng.random() < 0.5
    at = (sheet[1] + sheet[3]) / 2 if horizontal else (sheet[0] + sheet[2]) / 2
    at += rng.uniform(-0.15, 0.15) * (box[2] - box[0])
    tilt = math.radians(rng.uniform(-4, 4))
    w, h = float(grid.xs[0, -1]) + 1, float(grid.ys[-1, 0]) + 1
    if horizontal:
        nx, ny, cx, cy = math.sin(tilt), math.cos(tilt), w / 2, at
    else:
        nx, ny, cx, cy = math.cos(tilt), -math.sin(tilt), at, h / 2
    dist = (grid.xs - np.float32(cx)) * np.float32(nx) + (grid.ys - np.float32(cy)) * np.float32(ny)
    bend = np.float32(rng.uniform(0.01, 0.05) * difficulty)  # that half turned away
    grid.dx += np.maximum(dist, 0) * bend * np.float32(nx)
    grid.dy += np.maximum(dist, 0) * bend * np.float32(ny)
    grid.shade *= np.where(dist > 0, np.float32(rng.uniform(0.78, 0.95)), np.float32(1.0))
    traits.append("fold")
    reach = 2 * max(w, h)  # the crease runs along (-ny, nx); clipLine trims it to the sheet
    return (
        (int(cx - ny * reach), int(cy + nx * reach)),
        (int(cx + ny * reach), int(cy - nx * reach)),
    )


def _uneven_light(
    rng: np.random.Generator,
    grid: _Grid,
    size: tuple[int, int],
    difficulty: float,
    traits: list[str],
) -> None:
    """Light falling off linearly across the sheet."""
    if rng.random() >= 0.3 + 0.4 * difficulty:
        return
    angle = rng.uniform(0, 2 * math.pi)
    w, h = size
    ramp = (grid.xs - w / 2) * np.float32(math.cos(angle) / w) + (grid.ys - h / 2) * np.float32(
        math.sin(angle) / h
    )
    fall = difficulty * rng.uniform(0.2, 0.7)
    grid.shade *= 1 - np.float32(fall) * (ramp + np.float32(0.5))
    if fall >= 0.25:
        traits.append("uneven-light")


def _shadow(rng: np.random.Generator, grid: _Grid, difficulty: float, traits: list[str]) -> None:
    """A soft-edged shadow (a hand, a head) over part of the sheet."""
    if difficulty <= 0 or rng.random() >= 0.15 + 0.35 * difficulty:
        return
    gh, gw = grid.shade.shape
    mask = np.zeros((gh, gw), np.float32)
    corners = np.column_stack((rng.uniform(-0.2, 1.2, 4) * gw, rng.uniform(-0.2, 1.2, 4) * gh))
    cv2.fillConvexPoly(mask, cv2.convexHull(corners.astype(np.int32)), 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.8, 2.5))
    grid.shade *= 1 - np.float32(rng.uniform(0.25, 0.6) * min(1.0, difficulty * 1.5)) * mask
    traits.append("shadow")


# ---------------------------------------------------------------------------------------------
# The room and the person in front of the kiosk


def _room(rng: np.random.Generator) -> np.ndarray:
    """A room out of focus behind the person: walls, floor, furniture, maybe a window."""
    h, w = HEIGHT // 4, WIDTH // 4
    top = rng.uniform(90, 225, 3).astype(np.float32)
    bottom = top * np.float32(rng.uniform(0.55, 0.95))
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    small = np.repeat(top * (1 - t) + bottom * t, w, axis=1)
    ramp = np.linspace(0, 1, w, dtype=np.float32)
    small *= (1 - np.float32(rng.uniform(0, 0.35)) * (ramp if rng.random() < 0.5 else ramp[::-1]))[
        None, :, None
    ]
    floor = int(rng.integers(int(h * 0.6), int(h * 0.85)))
    small[floor:] = rng.uniform(40, 150, 3).astype(np.float32)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, floor))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        cv2.rectangle(small, (x0, y0), (x1, y1), tuple(rng.uniform(20, 240, 3)), -1)
    if rng.random() < 0.35:  # a window: bright, with glazing bars
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h // 3))
        x1, y1 = x0 + int(rng.integers(40, 110)), y0 + int(rng.integers(40, 90))
        cv2.rectangle(small, (x0, y0), (x1, y1), (250, 250, 245), -1)
        cv2.line(small, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (60, 60, 60), 2)
        cv2.rectangle(small, (x0, y0), (x1, y1), (60, 60, 60), 2)
    if rng.random() < 0.3:  # a ceiling light
        cv2.ellipse(
            small,
            (int(rng.integers(0, w)), 4),
            (int(rng.integers(15, 40)), 6),
            0,
            0,
            360,
            (255, 255, 255),
            -1,
        )
    small = cv2.GaussianBlur(np.clip(small, 0, 255).astype(np.uint8), (0, 0), rng.uniform(0.6, 1.5))
    return cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def _person(rng: np.random.Generator, frame: np.ndarray) -> list[str]:
    """A person facing the camera, often masked, in patterned clothes; returns the traits."""
    traits = ["face"]
    cx, cy = int(WIDTH * rng.uniform(0.3, 0.7)), int(HEIGHT * rng.uniform(0.18, 0.4))
    ax = int(rng.uniform(70, 115))
    ay = int(ax * rng.uniform(1.2, 1.4))
    skin = _SKINS[rng.integers(len(_SKINS))]
    shoulders = cy + int(ay * 1.2)
    _clothes(
        rng,
        frame,
        (cx, shoulders + int(ax * 3.2)),
        (int(ax * rng.uniform(3.0, 4.2)), int(ax * 3.4)),
        traits,
    )
    cv2.rectangle(
        frame,
        (cx - ax // 2, cy + ay // 2),
        (cx + ax // 2, shoulders + ax // 3),
        tuple(c * 0.85 for c in skin),
        -1,
    )
    cv2.ellipse(
        frame,
        (cx, cy - ay // 5),
        (int(ax * 1.1), int(ay * 0.9)),
        0,
        0,
        360,
        _HAIR[rng.integers(len(_HAIR))],
        -1,
    )
    cv2.ellipse(frame, (cx, cy), (ax, ay), 0, 0, 360, skin, -1)
    for side in (-1, 1):
        cv2.ellipse(
            frame,
            (cx + side * int(ax * 0.38), cy - ay // 10),
            (int(ax * 0.16), int(ay * 0.07)),
            0,
            0,
            360,
            (40, 35, 35),
            -1,
        )
    if rng.random() < 0.6:  # a surgical mask
        mask = tuple(rng.uniform(200, 250, 3)) if rng.random() < 0.6 else (200, 150, 100)
        rect = (cx - int(ax * 0.85), cy + ay // 6, cx + int(ax * 0.85), cy + int(ay * 0.85))
        _rounded_rect(frame, rect, ax // 4, mask)
    else:
        cv2.ellipse(
            frame, (cx, cy + ay // 2), (int(ax * 0.3), int(ay * 0.06)), 0, 0, 360, (60, 60, 140), -1
        )
    x0, y0 = max(0, cx - 2 * ax), max(0, cy - 2 * ay)
    x1, y1 = min(WIDTH, cx + 2 * ax), min(HEIGHT, cy + 2 * ay)
    frame[y0:y1, x0:x1] = cv2.GaussianBlur(frame[y0:y1, x0:x1], (0, 0), rng.uniform(1.5, 3.5))
    return traits


def _clothes(
    rng: np.random.Generator,
    frame: np.ndarray,
    centre: tuple[int, int],
    axes: tuple[int, int],
    traits: list[str],
) -> None:
    """The torso: an ellipse filled with a solid colour, stripes, checks or plaid."""
    x0, y0 = max(0, centre[0] - axes[0]), max(0, centre[1] - axes[1])
    x1, y1 = min(WIDTH, centre[0] + axes[0]), min(HEIGHT, centre[1] + axes[1])
    if x1 <= x0 or y1 <= y0:
        return
    shape = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.ellipse(shape, (centre[0] - x0, centre[1] - y0), axes, 0, 0, 360, 255, -1)
    base = tuple(rng.uniform(20, 220, 3))
    other = tuple(rng.uniform(20, 220, 3))
    style = ("solid", "stripes", "checkered", "plaid")[_pick(rng, (0.3, 0.2, 0.25, 0.25))]
    p = int(rng.integers(6, 37))
    tile = np.zeros((2 * p, 2 * p, 3) if style != "plaid" else (3 * p, 3 * p, 3), np.uint8)
    tile[:] = base
    if style == "stripes":
        tile[:, p:] = other
    elif style == "checkered":
        tile[:p, p:] = other
        tile[p:, :p] = other
    elif style == "plaid":
        band = max(2, int(p * rng.uniform(0.25, 0.5)))
        darker = tuple(c * 0.7 for c in base)
        tile[:band] = darker
        tile[:, :band] = darker
        tile[:band, :band] = tuple(0.5 * (a + b) for a, b in zip(base, other, strict=True))
        tile[band // 2 :: 2, ::2] = np.clip(tile[band // 2 :: 2, ::2].astype(np.int16) - 12, 0, 255)
    if style != "solid":
        traits.append(style)
    # The pattern, tiled over a square that covers the region at any angle, turned a little.
    w, h = x1 - x0, y1 - y0
    reach = math.ceil(math.hypot(w, h)) + tile.shape[0]
    big = np.tile(tile, (reach // tile.shape[0] + 1, reach // tile.shape[1] + 1, 1))
    angle = math.radians(rng.normal(0, 8))
    c, s = math.cos(angle), math.sin(angle)
    mid = big.shape[1] / 2, big.shape[0] / 2
    turn = np.array(
        [[c, -s, mid[0] - c * w / 2 + s * h / 2], [s, c, mid[1] - s * w / 2 - c * h / 2]]
    )
    cloth = cv2.warpAffine(big, turn, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    np.copyto(frame[y0:y1, x0:x1], cloth, where=shape[..., None] > 0)


# ---------------------------------------------------------------------------------------------
# Pose, optics and sensor


# Tries at a pose for the second code of a frame that leaves the first code in view.
_POSE_ATTEMPTS = 50


def _around(quad: np.ndarray, margin: float) -> np.ndarray:
    """A quadrilateral grown about its centre by `margin` of its size on each side."""
    centre = quad.mean(axis=0)
    return centre + (quad - centre) * (1 + 2 * margin)


def _projected(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), homography)[:, 0]


def _covers(layer: _Layer, homography: np.ndarray, area: np.ndarray) -> bool:
    """Whether the layer's canvas, posed, overlaps a convex area of the frame."""
    h, w = layer.canvas.shape[:2]
    outline = _projected(np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]), homography)
    overlap, _ = cv2.intersectConvexConvex(outline.astype(np.float32), area.astype(np.float32))
    return overlap > 0


def _pose(
    rng: np.random.Generator,
    layer: _Layer,
    region: tuple[int, int, int, int],
    *,
    side: float,
    tilt: float,
    rotation: float,
) -> np.ndarray:
    """The homography that puts a layer's code at a random place in region (x0, y0, x1, y1).

    The code is `side` pixels across, tilted `tilt` degrees about a random axis in its plane
    and turned `rotation` degrees in it, seen through a pinhole camera of a webcam's focal
    length; the code and two modules of quiet zone around it lie inside the region.
    """
    h, w = layer.canvas.shape[:2]
    if layer.quad is not None:
        quad = layer.quad
    else:  # an object without a code: its middle stands for one
        half = 20 * layer.module
        quad = np.array(
            [
                [w / 2 - half, h / 2 - half],
                [w / 2 + half, h / 2 - half],
                [w / 2 + half, h / 2 + half],
                [w / 2 - half, h / 2 + half],
            ]
        )
    centre = quad.mean(axis=0)
    across = float(np.linalg.norm(quad[1] - quad[0]))
    scale = side / across
    focal = rng.uniform(850, 1100)
    axis = rng.uniform(0, 2 * math.pi)
    turn = cv2.Rodrigues(np.array([math.cos(axis), math.sin(axis), 0.0]) * math.radians(tilt))[0]
    spin = cv2.Rodrigues(np.array([0.0, 0.0, math.radians(rotation)]))[0]
    rotation_matrix = turn @ spin

    def project(points: np.ndarray) -> np.ndarray:
        flat = (points - centre) * scale
        world = np.column_stack((flat, np.zeros(len(flat)))) @ rotation_matrix.T
        depth = np.maximum(world[:, 2] + focal, 0.2 * focal)
        return focal * world[:, :2] / depth[:, None]

    placed = project(_around(quad, 2 * layer.module / across))
    low = np.array(region[:2], dtype=np.float64) - placed.min(axis=0) + 2
    high = np.array(region[2:], dtype=np.float64) - placed.max(axis=0) - 2
    shift = np.where(low <= high, rng.uniform(0, 1, 2) * (high - low) + low, (low + high) / 2)
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    return cv2.getPerspectiveTransform(
        corners.astype(np.float32), (project(corners) + shift).astype(np.float32)
    )


def _disk(radius: float) -> np.ndarray:
    size = 2 * math.ceil(radius) + 1
    ys, xs = np.mgrid[:size, :size] - size // 2
    kernel = np.clip(radius + 0.5 - np.hypot(xs, ys), 0, 1).astype(np.float32)
    return kernel / kernel.sum()


def _streak(length: float, angle: float) -> np.ndarray:
    size = 2 * math.ceil(length / 2) + 1
    kernel = np.zeros((size, size), np.uint8)
    dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
    c = size // 2
    shift = 4  # cv2.line's sub-pixel bits
    p0 = (round((c - dx) * 2**shift), round((c - dy) * 2**shift))
    p1 = (round((c + dx) * 2**shift), round((c + dy) * 2**shift))
    cv2.line(kernel, p0, p1, 255, 1, cv2.LINE_AA, shift)
    kernel = kernel.astype(np.float32)
    return kernel / kernel.sum()


def _composite(
    frame: np.ndarray,
    layer: _Layer,
    homography: np.ndarray,
    *,
    optics: float,
    defocus: float = 0.0,
    motion: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Warp the layer into the frame, blurred (Gaussian optics, a defocus disk, a motion streak)."""
    h, w = layer.canvas.shape[:2]
    corners = np.array([[[0, 0]], [[w - 1, 0]], [[w - 1, h - 1]], [[0, h - 1]]], np.float64)
    placed = cv2.perspectiveTransform(corners, homography)[:, 0]
    pad = int(3 * optics + defocus + motion[0]) + 3
    x0, y0 = np.floor(placed.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(placed.max(axis=0)).astype(int) + pad
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(WIDTH, x1), min(HEIGHT, y1)
    if x1 <= x0 or y1 <= y0:
        return
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    warped = cv2.warpPerspective(
        layer.canvas,
        shift @ homography,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    if optics > 0:
        warped = cv2.GaussianBlur(warped, (0, 0), optics)
    if defocus >= 0.5:
        warped = cv2.filter2D(warped, -1, _disk(defocus), borderType=cv2.BORDER_CONSTANT)
    if motion[0] >= 1.0:
        warped = cv2.filter2D(warped, -1, _streak(*motion), borderType=cv2.BORDER_CONSTANT)
    alpha = warped[..., 3]
    region = frame[y0:y1, x0:x1]
    behind = cv2.multiply(region, cv2.merge([255 - alpha] * 3), scale=1 / 255)
    region[:] = cv2.add(behind, cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR))


@functools.cache
def _noise_bank() -> np.ndarray:
    """Gaussian noise, sigma 16 around 128 in uint8, from a fixed seed; frames take crops of it."""
    rng = np.random.default_rng(0x5E9715)
    noise = rng.standard_normal((HEIGHT + 160, WIDTH + 256, 3), dtype=np.float32) * 16 + 128
    bank = np.clip(np.rint(noise), 0, 255).astype(np.uint8)
    bank.flags.writeable = False
    return bank


def _camera(
    rng: np.random.Generator,
    frame: np.ndarray,
    difficulty: float,
    traits: list[str],
    *,
    gain: float | None = None,
    jpeg: bool = True,
) -> np.ndarray:
    """The sensor and the encoder: exposure, tone curve, noise, dead pixels, JPEG."""
    if gain is None:
        gain = math.exp(rng.normal(0, 0.08 + 0.3 * difficulty))
    gamma = math.exp(rng.normal(0, 0.05 + 0.2 * difficulty))
    if abs(math.log(gain)) >= 0.3 or abs(math.log(gamma)) >= 0.25:
        traits.append("exposure")
    levels = np.arange(256, dtype=np.float64) / 255
    lut = np.clip(np.rint(255 * gain * levels**gamma), 0, 255).astype(np.uint8)
    frame = cv2.LUT(frame, lut)
    sigma = (1.2 + 9 * difficulty * rng.uniform(0, 1)) * max(1.0, 1 / gain) ** 0.5
    if sigma >= 5:
        traits.append("noise")
    bank = _noise_bank()
    oy, ox = (
        int(rng.integers(0, bank.shape[0] - HEIGHT)),
        int(rng.integers(0, bank.shape[1] - WIDTH)),
    )
    crop = bank[oy : oy + HEIGHT, ox : ox + WIDTH]
    frame = cv2.addWeighted(frame, 1.0, crop, sigma / 16, -128 * sigma / 16)
    if rng.random() < 0.2 + 0.4 * difficulty:
        count = int(HEIGHT * WIDTH * 0.002 * difficulty * rng.uniform(0, 1))
        where = rng.integers(0, HEIGHT * WIDTH, count)
        frame.reshape(-1, 3)[where] = np.where(rng.random(count) < 0.5, 0, 255)[:, None]
        if count >= 300:
            traits.append("salt-pepper")
    if jpeg:
        quality = round(90 - 50 * min(1.0, difficulty * rng.uniform(0.3, 1.3)))
        if quality <= 60:
            traits.append("jpeg")
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV cannot encode JPEG")
        frame = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return frame


# ---------------------------------------------------------------------------------------------
# Scenes


def _code_scene(
    rng: np.random.Generator,
    name: str,
    kind: str,
    codes: Sequence[tuple[str, _Payload]],
    difficulty: float,
) -> Scene:
    """A frame with a code on each (carrier, payload): "phone", "phone-dark" or "paper"."""
    frame = _room(rng)
    _person(rng, frame)
    traits: list[str] = []
    if len(codes) == 1:
        regions = [(0, 0, WIDTH, HEIGHT)]
        largest = 420.0
    else:
        half = WIDTH // 2
        regions = [(0, 0, half, HEIGHT), (half, 0, WIDTH, HEIGHT)]
        if rng.random() < 0.5:
            regions.reverse()
        largest = 300.0
    placed = None
    for (carrier, payload), region in zip(codes, regions, strict=True):
        placed = _place_code(
            rng,
            frame,
            carrier,
            payload,
            region=region,
            largest=largest,
            difficulty=difficulty,
            traits=traits,
            keep_clear=placed,
        )
    image = _camera(rng, frame, difficulty, traits)
    texts = tuple(payload.text for _, payload in codes)
    unique = tuple(dict.fromkeys(traits))
    return Scene(name, _freeze(image), texts, kind, unique, round(difficulty, 4))


def _place_code(
    rng: np.random.Generator,
    frame: np.ndarray,
    carrier: str,
    payload: _Payload,
    *,
    region: tuple[int, int, int, int],
    largest: float,
    difficulty: float,
    traits: list[str],
    keep_clear: np.ndarray | None = None,
) -> np.ndarray:
    """Draw a code on its carrier, posed and blurred, into the frame, not over `keep_clear`.

    Returns where the code and two modules of quiet zone around it are in the frame.
    """
    modules = _modules(payload, rng)
    n = modules.shape[0]
    # Pixels per module: large and easy at difficulty 0, down to about 2 at the hard end.
    t = min(1.0, difficulty * rng.uniform(0.5, 1.3))
    high, low = math.log(rng.uniform(4.5, 7.0)), math.log(rng.uniform(1.8, 2.4))
    side = min(max(n * math.exp(high + (low - high) * t), 120.0), largest)
    ppm = side / n
    if ppm < 2.6:
        traits.append("small")
    k = max(2, math.ceil(ppm / 0.75))  # canvas pixels per module: the warp shrinks by ~0.7
    paper = carrier == "paper"
    if paper:
        layer = _paper(rng, modules, k, difficulty=difficulty, traits=traits)
    else:
        dark = carrier == "phone-dark"
        if dark:
            traits.append("inverted")
        layer = _phone(rng, modules, k, dark=dark, difficulty=difficulty, traits=traits)
    most = 50.0 if paper else 35.0
    for _ in range(_POSE_ATTEMPTS):  # a pose that leaves the other code in view, if any
        tilt = rng.uniform(0, 6) + (most - 6) * difficulty * rng.uniform(0.2, 1.0)
        rotation = rng.normal(0, 8) if rng.random() < 0.65 else rng.uniform(-180, 180)
        homography = _pose(rng, layer, region, side=side, tilt=tilt, rotation=rotation)
        if keep_clear is None or not _covers(layer, homography, keep_clear):
            break
    else:
        raise RuntimeError("no pose of the second code leaves the first in view")
    if tilt >= 15:
        traits.append("tilt")
    if abs(rotation) > 20:
        traits.append("rotation")
    defocus = 0.0
    if rng.random() < 0.3 + 0.6 * difficulty:
        defocus = 0.65 * difficulty * rng.uniform(0, 1) * ppm
        if defocus >= 0.25 * ppm and defocus >= 0.5:
            traits.append("blur")
    motion = (0.0, 0.0)
    if rng.random() < 0.1 + 0.35 * difficulty:
        motion = (ppm * difficulty * rng.uniform(0.4, 1.8), rng.uniform(0, math.pi))
        if motion[0] >= 0.5 * ppm and motion[0] >= 1:
            traits.append("motion-blur")
    optics = rng.uniform(0.4, 0.8)
    _composite(frame, layer, homography, optics=optics, defocus=defocus, motion=motion)
    assert layer.quad is not None
    return _projected(_around(layer.quad, 2 / n), homography)


def _empty_frame(rng: np.random.Generator) -> tuple[np.ndarray, tuple[str, ...], float]:
    """A frame with no code, but with what might mislead a detector."""
    difficulty = float(rng.uniform(0, 0.8))
    frame = _room(rng)
    traits = _person(rng, frame) if rng.random() < 0.8 else []
    thing = _pick(rng, (0.35, 0.2, 0.15, 0.3))
    if thing < 3:
        k = int(rng.integers(3, 8))
        if thing == 0:
            layer = _phone(rng, None, k, dark=rng.random() < 0.3, difficulty=difficulty, traits=[])
            traits.append("phone-screen")
        else:
            content = "text" if thing == 1 else "finders"
            layer = _paper(rng, None, k, difficulty=difficulty, traits=[], content=content)
            traits.append("printed-text" if thing == 1 else "finder-like")
        side = rng.uniform(120, 380)  # of the middle, where a code would be
        tilt, rotation = rng.uniform(0, 35), rng.normal(0, 15)
        homography = _pose(
            rng, layer, (0, 0, WIDTH, HEIGHT), side=side, tilt=tilt, rotation=rotation
        )
        _composite(frame, layer, homography, optics=rng.uniform(0.4, 1.5))
    gain = None
    if rng.random() < 0.25:
        gain = rng.uniform(0.15, 0.4)
        traits.append("dark")
    image = _camera(rng, frame, difficulty, traits, gain=gain)
    return image, tuple(dict.fromkeys(traits)), round(difficulty, 4)


# ---------------------------------------------------------------------------------------------
# Paper codes as people carry them: folded, crumpled, bent, curved, printed on cloth


def _warped_scene(
    rng: np.random.Generator, name: str, kind: str, payload: _Payload, *, damaged: bool
) -> Scene:
    """A frame with one paper or cloth code whose modules no longer lie on a flat grid."""
    frame = _room(rng)
    _person(rng, frame)
    modules = _modules(payload, rng)
    traits: list[str] = [kind]
    if damaged:
        _damage(rng, modules)
        traits.append("damaged")
    n = modules.shape[0]
    size = _WARP_SIZES[_pick(rng, (0.25, 0.5, 0.25))]
    ppm = rng.uniform(*_WARP_PPM[size])
    side = min(n * ppm, 600.0)
    if side / n < 2.6:
        traits.append("small")
    elif side / n >= 5.5:
        traits.append("close")
    k = max(4, math.ceil(side / n / 0.6))  # canvas pixels per module
    strength = float(rng.uniform(0.35, 1.0))
    if kind == "cloth":
        layer = _cloth(rng, modules, k)
    else:
        layer = _paper(rng, modules, k, difficulty=0.15, traits=traits)
    layer.canvas = _deform(rng, layer, kind, strength)
    margin = (40, 30, WIDTH - 40, HEIGHT - 30)  # the warp may push the code out a little
    tilt = rng.uniform(0, 28)
    rotation = rng.normal(0, 10) if rng.random() < 0.7 else rng.uniform(-180, 180)
    homography = _pose(rng, layer, margin, side=side, tilt=tilt, rotation=rotation)
    if tilt >= 15:
        traits.append("tilt")
    if abs(rotation) > 20:
        traits.append("rotation")
    _composite(frame, layer, homography, optics=rng.uniform(0.4, 0.9))
    image = _camera(rng, frame, 0.3, traits)
    return Scene(
        name,
        _freeze(image),
        () if damaged else (payload.text,),
        "damaged" if damaged else kind,
        tuple(dict.fromkeys(traits)),
        round(strength, 4),
    )


def _warped_empty(rng: np.random.Generator, name: str) -> Scene:
    """A frame with warped paper or cloth that carries no code: print, a finder-like logo, plaid."""
    frame = _room(rng)
    traits = _person(rng, frame)
    kind = WARPS[rng.integers(len(WARPS))]
    k = int(rng.integers(4, 9))
    content = ("text", "finders", "plaid")[rng.integers(3)]
    if content == "plaid":
        layer = _cloth(rng, None, k)
        traits.append("plaid")
    else:
        layer = _paper(rng, None, k, difficulty=0.15, traits=[], content=content)
        traits.append("printed-text" if content == "text" else "finder-like")
    strength = float(rng.uniform(0.35, 1.0))
    layer.canvas = _deform(rng, layer, kind, strength)
    side = rng.uniform(150, 450)
    margin = (40, 30, WIDTH - 40, HEIGHT - 30)
    homography = _pose(rng, layer, margin, side=side, tilt=rng.uniform(0, 28), rotation=0.0)
    _composite(frame, layer, homography, optics=rng.uniform(0.4, 0.9))
    image = _camera(rng, frame, 0.3, traits)
    traits.append(kind)
    return Scene(
        name, _freeze(image), (), "empty", tuple(dict.fromkeys(traits)), round(strength, 4)
    )


def _damage(rng: np.random.Generator, modules: np.ndarray) -> None:
    """Flip a fifth to a third of the data modules: finders and format stay, the data is lost."""
    data = modules[9:, 9:]
    flip = rng.random(data.shape) < rng.uniform(0.2, 0.35)
    data ^= flip


def _cloth(rng: np.random.Generator, modules: np.ndarray | None, k: int) -> _Layer:
    """A code printed on fabric: ink bled into a woven texture (or, modules None, a plaid)."""
    quiet = 4
    n = 0 if modules is None else modules.shape[0]
    box = (n + 2 * quiet) * k if modules is not None else int(rng.uniform(40, 60) * k)
    cloth_w = int(box / rng.uniform(0.65, 0.85))
    cloth_h = int(cloth_w * rng.uniform(0.9, 1.3))
    margin = int(cloth_w * 0.1)
    canvas = np.zeros((cloth_h + 2 * margin, cloth_w + 2 * margin, 4), np.uint8)
    fabric = tuple(rng.uniform(150, 235, 3))
    ink = tuple(rng.uniform(15, 75, 3))
    cv2.rectangle(
        canvas, (margin, margin), (margin + cloth_w, margin + cloth_h), (*fabric, 255), -1
    )
    x0, y0 = margin + (cloth_w - box) // 2, margin + (cloth_h - box) // 2
    quad = None
    if modules is not None:
        printed = _code_image(modules, k, quiet, ink, fabric)
        bleed = k * rng.uniform(0.1, 0.3)
        canvas[y0 : y0 + box, x0 : x0 + box] = cv2.GaussianBlur(printed, (0, 0), bleed)
        quad = _symbol_quad(x0, y0, quiet * k, n * k)
    else:  # a plaid print where a code would be: checks and bands of several widths
        cells = rng.integers(0, 2, (int(rng.integers(6, 14)),) * 2).astype(bool)
        bands = np.kron(cells ^ cells.T, np.ones((box // len(cells) + 1,) * 2, bool))[:box, :box]
        canvas[y0 : y0 + box, x0 : x0 + box] = np.where(
            bands[..., None], (*ink, 255), (*fabric, 255)
        ).astype(np.uint8)
    # The weave: threads a little lighter and darker in turn, and fibres.
    h, w = canvas.shape[:2]
    period = rng.uniform(2.0, 4.0)
    xs = np.cos(np.arange(w, dtype=np.float32) * np.float32(2 * math.pi / period))
    ys = np.cos(np.arange(h, dtype=np.float32) * np.float32(2 * math.pi / period))
    depth = np.float32(rng.uniform(0.08, 0.25))
    weave = 1 - depth * (0.5 + 0.5 * np.outer(ys, xs))
    fibres = rng.standard_normal((h, w)).astype(np.float32)
    weave += cv2.GaussianBlur(fibres, (0, 0), 0.6, 3.0) * np.float32(0.08)
    canvas[..., :3] = cv2.multiply(canvas[..., :3], cv2.merge([weave] * 3), dtype=cv2.CV_8U)
    return _Layer(canvas, quad, float(k))


def _deform(rng: np.random.Generator, layer: _Layer, kind: str, strength: float) -> np.ndarray:
    """The canvas as the surface of a sheet shaped as `kind` shows it from the front.

    Each warp maps a pixel of the picture back to the point of the flat canvas seen there,
    stage by stage (so a folded sheet can also be crumpled), and shades it by its slope.
    """
    canvas = layer.canvas
    h, w = canvas.shape[:2]
    if layer.quad is None:
        middle = np.array([w / 2, h / 2])
        half = 20 * layer.module
    else:
        middle = layer.quad.mean(axis=0)
        half = float(np.linalg.norm(layer.quad[1] - layer.quad[0])) / 2
    sheet = _Sheet(
        np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)).copy(),
        np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).copy(),
        np.ones((h, w), np.float32),
        middle,
        half,
        layer.module,
    )
    if kind == "crumpled":
        _crumpled(rng, sheet, strain=0.2 + 0.35 * strength, creases=int(rng.integers(2, 6)))
    elif kind == "folded":
        _folded(rng, sheet, strength, angle=rng.uniform(0, math.pi))
        if rng.random() < 0.4:  # folded in four
            _folded(rng, sheet, strength * rng.uniform(0.4, 1.0), angle=rng.uniform(0, math.pi))
        _crumpled(rng, sheet, strain=0.08, creases=0)
    elif kind == "wrinkled":
        for _ in range(int(rng.integers(1, 3))):
            _ripples(rng, sheet, strain=0.12 + 0.3 * strength, wavelength=rng.uniform(3, 8))
    elif kind in ("bent", "curved"):
        _cylinder(rng, sheet, strength, bent=kind == "bent")
    else:  # cloth: draped, stretched and rippled
        _crumpled(rng, sheet, strain=0.12 + 0.25 * strength, creases=0)
        _ripples(rng, sheet, strain=0.1 + 0.25 * strength, wavelength=rng.uniform(4, 12))
    warped = cv2.remap(canvas, sheet.x, sheet.y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    shade = np.clip(sheet.shade, 0, 1.6)
    return cv2.multiply(
        warped, cv2.merge([shade, shade, shade, np.ones_like(shade)]), dtype=cv2.CV_8U
    )


@dataclass
class _Sheet:
    """Where each pixel of the picture comes from on the flat canvas, and its light."""

    x: np.ndarray  # canvas coordinates (float32, one per picture pixel)
    y: np.ndarray
    shade: np.ndarray  # what the pixel's colour is multiplied by
    middle: np.ndarray  # the code's centre on the canvas
    half: float  # half the code's side, canvas pixels
    module: float  # canvas pixels per module

    def across(self, angle: float, offset: float) -> tuple[np.ndarray, float, float]:
        """Signed distance of each pixel from a line through the middle (moved by offset)."""
        nx, ny = math.cos(angle), math.sin(angle)
        cx, cy = self.middle + offset * np.array([nx, ny])
        t = (self.x - np.float32(cx)) * np.float32(nx) + (self.y - np.float32(cy)) * np.float32(ny)
        return t, nx, ny

    def move(self, t: np.ndarray, moved: np.ndarray, nx: float, ny: float) -> None:
        self.x += (moved - t) * np.float32(nx)
        self.y += (moved - t) * np.float32(ny)


def _crumpled(rng: np.random.Generator, sheet: _Sheet, *, strain: float, creases: int) -> None:
    """A smooth random displacement (largest slope `strain`), and creases where it jumps."""
    h, w = sheet.x.shape
    cells = max(3, round(2 * sheet.half / (sheet.module * rng.uniform(5, 10))))
    bumps = rng.standard_normal((cells + 2, cells + 2, 2)).astype(np.float32)
    field = cv2.resize(bumps, (w, h), interpolation=cv2.INTER_CUBIC)
    slope = max(
        float(np.abs(np.gradient(field[..., i], axis=j)).max()) for i in (0, 1) for j in (0, 1)
    )
    field *= np.float32(strain / max(slope, 1e-6))
    light = rng.uniform(0, 2 * math.pi)  # the stretches facing the light are the brighter
    stretch_x = np.gradient(field[..., 0], axis=1)
    stretch_y = np.gradient(field[..., 1], axis=0)
    facing = math.cos(light) * stretch_x + math.sin(light) * stretch_y
    moved = cv2.remap(
        cv2.merge([field[..., 0], field[..., 1], facing]), sheet.x, sheet.y, cv2.INTER_LINEAR
    )
    sheet.x += moved[..., 0]
    sheet.y += moved[..., 1]
    sheet.shade *= 1 + np.float32(0.6) * moved[..., 2]
    for _ in range(creases):
        t, nx, ny = sheet.across(rng.uniform(0, math.pi), rng.uniform(-0.8, 0.8) * sheet.half)
        jump = np.float32(sheet.module * rng.uniform(0.05, 0.2))
        sheet.move(t, t + jump * np.tanh(t / np.float32(0.3 * sheet.module)), nx, ny)
        sheet.shade *= 1 - np.float32(rng.uniform(0.1, 0.3)) * np.exp(
            -((t / np.float32(0.4 * sheet.module)) ** 2)
        )


def _folded(rng: np.random.Generator, sheet: _Sheet, strength: float, *, angle: float) -> None:
    """Folded and opened again: the far side turned away (foreshortened), a ridge at the crease."""
    t, nx, ny = sheet.across(angle, rng.uniform(-0.25, 0.25) * sheet.half)
    near = np.float32(rng.uniform(0.9, 1.0))
    far = np.float32(1 - strength * rng.uniform(0.3, 0.55))  # the cosine of the turn
    ridge = np.float32(sheet.module * strength * rng.uniform(0, 0.4))  # hidden behind the crease
    sheet.move(t, np.where(t > 0, t / far + ridge, t / near), nx, ny)
    sheet.shade *= np.where(t > 0, np.float32(rng.uniform(0.7, 1.05)), np.float32(1))
    sheet.shade *= 1 - np.float32(0.3) * np.exp(-((t / np.float32(0.4 * sheet.module)) ** 2))


def _ripples(rng: np.random.Generator, sheet: _Sheet, *, strain: float, wavelength: float) -> None:
    """Wrinkles: a sine displacement across a line (slope `strain`), fading along it."""
    t, nx, ny = sheet.across(rng.uniform(0, math.pi), 0.0)
    along = (sheet.y - np.float32(sheet.middle[1])) * np.float32(nx) - (
        sheet.x - np.float32(sheet.middle[0])
    ) * np.float32(ny)
    period = np.float32(2 * math.pi / (wavelength * sheet.module))
    phase = np.float32(rng.uniform(0, 2 * math.pi))
    fade = 0.6 + 0.4 * np.cos(along * np.float32(math.pi / (sheet.half * rng.uniform(1, 3))))
    amplitude = np.float32(strain) / period * fade
    sheet.move(t, t + amplitude * np.sin(t * period + phase), nx, ny)
    sheet.shade *= 1 + np.float32(0.2 * strain / 0.4) * fade * np.cos(t * period + phase)


def _cylinder(rng: np.random.Generator, sheet: _Sheet, strength: float, *, bent: bool) -> None:
    """Round a cylinder: a card or a bottle (curved), or round the hand that holds it (bent)."""
    horizontal = rng.random() < 0.5
    angle = (0.0 if horizontal else math.pi / 2) + math.radians(rng.normal(0, 8))
    offset = rng.uniform(-0.5, 0.5) * sheet.half if bent else rng.uniform(-0.1, 0.1) * sheet.half
    t, nx, ny = sheet.across(angle, offset)
    # The code's far edge is this angle round the cylinder: up to 60 degrees, where its
    # modules are seen at half their width (never out of sight round the curve).
    span = 0.45 + 0.6 * strength
    taper = rng.uniform(-0.3, 0.3) if bent else 0.0  # a hand's curl tightens to the fingers
    radius = np.float32((sheet.half + abs(offset)) / (span * (1 - abs(taper))))
    if bent:
        along = (sheet.y - np.float32(sheet.middle[1])) * np.float32(nx) - (
            sheet.x - np.float32(sheet.middle[0])
        ) * np.float32(ny)
        radius = radius * np.maximum(1 + np.float32(taper) * along / np.float32(sheet.half), 0.5)
    ratio = t / radius
    outside = np.abs(ratio) >= 1
    theta = np.arcsin(np.clip(ratio, -1, 1))
    sheet.move(t, np.where(outside, np.float32(1e5), theta * radius), nx, ny)
    light = rng.uniform(-0.6, 0.6)
    sheet.shade *= np.float32(0.55) + np.float32(0.45) * np.cos(theta - np.float32(light))
    if not bent and rng.random() < 0.6:  # a gloss stripe along a card or bottle
        where = np.float32(rng.uniform(-0.8, 0.8))
        sheet.shade += np.float32(rng.uniform(0.2, 0.6)) * np.exp(-(((theta - where) / 0.12) ** 2))


# ---------------------------------------------------------------------------------------------
# Presentation clips


def _clip_frames(
    texts: list[str], seed: int, fps: int, per_person: int, gap: int
) -> Iterator[Scene]:
    room = _room(np.random.default_rng([seed, _CLIP_STREAM]))
    number = 0

    def finish(frame: np.ndarray, texts: tuple[str, ...], kind: str, traits: list[str]) -> Scene:
        nonlocal number
        rng = np.random.default_rng([seed, _FRAME_STREAM, number])
        image = _camera(rng, frame, 0.1, [], gain=1.0, jpeg=False)
        scene = Scene(f"clip-{number:05d}", _freeze(image), texts, kind, tuple(traits), 0.1)
        number += 1
        return scene

    for _ in range(gap):
        yield finish(room.copy(), (), "empty", [])
    for index, text in enumerate(texts):
        rng = np.random.default_rng([seed, _PERSON_STREAM, index])
        scene = room.copy()
        _person(rng, scene)
        for frame, in_view, kind, traits in _presentation(rng, scene, text, fps, per_person):
            yield finish(frame, (text,) if in_view else (), kind, traits)
        for _ in range(gap):
            yield finish(room.copy(), (), "empty", [])


def _presentation(
    rng: np.random.Generator, scene: np.ndarray, text: str, fps: int, frames: int
) -> Iterator[tuple[np.ndarray, bool, str, list[str]]]:
    """One person's phone: in from an edge, held with jitter, out again."""
    dark = rng.random() < 0.2
    kind = "phone-dark" if dark else "phone"
    modules = _modules(_Payload(text, None, "M"), rng)
    n = modules.shape[0]
    side = min(max(n * rng.uniform(3.5, 5.5), 180.0), 400.0)
    layer = _phone(
        rng, modules, max(2, math.ceil(side / n / 0.75)), dark=dark, difficulty=0.0, traits=[]
    )
    margin = (WIDTH // 5, HEIGHT // 8, WIDTH - WIDTH // 5, HEIGHT - HEIGHT // 16)
    held = _pose(rng, layer, margin, side=side, tilt=rng.uniform(0, 12), rotation=rng.normal(0, 6))
    assert layer.quad is not None
    outer = _around(layer.quad, 2 / n)  # the code and two modules of quiet zone
    h, w = layer.canvas.shape[:2]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    outline = _projected(corners, held)
    edge = int(rng.integers(3))  # left, right, bottom
    if edge == 0:
        away = np.array([-outline[:, 0].max() - 10, rng.uniform(-60, 60)])
    elif edge == 1:
        away = np.array([WIDTH - outline[:, 0].min() + 10, rng.uniform(-60, 60)])
    else:
        away = np.array([rng.uniform(-80, 80), HEIGHT - outline[:, 1].min() + 10])
    moving = max(1, min(round(0.6 * fps), frames // 5))
    tremor = np.cumsum(rng.normal(0, 0.8, (frames, 2)), axis=0)
    tremor -= np.linspace(0, 1, frames)[:, None] * tremor[-1]  # the hand comes back
    previous = None
    for i in range(frames):
        if i < moving:  # from out of view, slowing down
            offset = away * (1 - i / moving) ** 2
        elif i >= frames - moving:  # speeding up, out of view on the last frame
            offset = away * ((i - (frames - moving) + 1) / moving) ** 2
        else:
            offset = np.zeros(2)
        offset = offset + tremor[i]
        step = np.zeros(2) if previous is None else offset - previous
        previous = offset
        move = np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1]], np.float64)
        homography = move @ held
        speed = float(np.hypot(*step))
        frame = scene.copy()
        _composite(
            frame,
            layer,
            homography,
            optics=rng.uniform(0.5, 1.1),
            motion=(0.5 * speed, math.atan2(step[1], step[0])),
        )
        seen = _projected(corners, homography)
        code = _projected(outer, homography)
        in_view = bool(((code >= 0) & (code <= [WIDTH - 1, HEIGHT - 1])).all())
        visible = bool(
            (seen.max(axis=0) > 0).all() and seen[:, 0].min() < WIDTH and seen[:, 1].min() < HEIGHT
        )
        traits = ["moving"] if speed > 3 else []
        if visible and not in_view:
            traits.append("partial")
        yield frame, in_view, kind if visible else "empty", traits

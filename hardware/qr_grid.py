"""Flattens warped QR codes: fits the module grid from finders and local phase, samples it clean."""

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

_SAMPLES = 4  # samples a module in the rectified image
_PAD = 1  # modules rectified round the symbol (its edge with the quiet zone is an edge too)
_ROUNDS = 3  # refinements of the grid
_REACH = 0.7  # modules: how far round a place its phase is measured
_POINTS = 2  # where it is measured, a module
_OUT_SCALE = 3  # pixels a module in the clean image handed to the decoder
_QUIET = 4  # modules of quiet zone round it
_MAX_FINDERS = 12  # the largest finder-like patterns considered in one patch
_TRIPLES = 3  # triples of them tried as a code's finders
_BLOCK = 24  # the finder search's threshold: its block, a fraction of the patch's side
# Of the timing patterns' modules, the share that differ from the next one: about 1 on a code's
# grid (half on data, as a wrong size gives), none where finder-like squares frame text.
_TIMING = 0.5
_NO_TIMING = 0.3


@dataclass(frozen=True)
class Pattern:
    """A finder- or alignment-like pattern: its centre, and the shapes of its hole and core.

    The hole is the light ring with all it holds, the core the dark square inside; each shape is
    given by its central second moments per area (xx, xy, yy), in pixels. A finder's hole is 5
    modules a side and its core 3; a threshold that thins the dark grows the hole as much as it
    shrinks the core, so their sides summed are 8 modules, whatever the threshold, and
    whichever way the paper is turned, tilted or squeezed there.
    """

    x: float
    y: float
    area: float  # the hole's
    hole: tuple[float, float, float]
    core: tuple[float, float, float]

    def pitches(self, across: np.ndarray, down: np.ndarray) -> tuple[float, float]:
        """Pixels a module along two unit directions (the code's rows and columns here).

        A parallelogram with sides a along `across` and b along `down` has second moments per
        area (a² across acrossᵀ + b² down downᵀ) / 12: solved for a² and b², hole and core.
        """
        system = np.array(
            [
                [across[0] ** 2, down[0] ** 2],
                [across[0] * across[1], down[0] * down[1]],
                [across[1] ** 2, down[1] ** 2],
            ]
        )
        sides = []
        for shape in (self.hole, self.core):
            squares = np.linalg.lstsq(system, 12 * np.array(shape), rcond=None)[0]
            square = 6 * (shape[0] + shape[2])  # a square's side squared, however it is turned
            sides.append(np.sqrt(np.where(squares > 0, squares, square)))
        across_pitch, down_pitch = (sides[0] + sides[1]) / 8
        return float(across_pitch), float(down_pitch)


def flattened(grey: np.ndarray) -> Iterator[np.ndarray]:
    """Clean images of the QR code a grey patch may hold, sampled along its fitted grid.

    Candidates come best guess first: for each of a few triples of finder-like patterns, the
    grid of the size the finders and the phase between them suggest. Each is a binary image
    (0 dark, 255 light) with a quiet zone, for a decoder to read and check.
    """
    binary = cv2.adaptiveThreshold(
        grey,
        255,
        cv2.ADAPTIVE_THRESH_MEAN_C,
        cv2.THRESH_BINARY_INV,
        max(11, min(grey.shape) // _BLOCK) | 1,
        8,
    )
    image = grey.astype(np.float32)
    corners, alignments = patterns(binary)
    for a, b, c in _triples(corners)[:_TRIPLES]:
        yield from _flattened_at(image, (a, b, c), alignments)


def patterns(binary: np.ndarray) -> tuple[list[Pattern], list[Pattern]]:
    """Finder-like and alignment-like patterns in a binary image (255 dark), largest first.

    A finder is a dark ring round a light ring round a dark square (1:1:3:1:1), an alignment
    pattern the same at 1:1:1:1:1: a hole in a dark region with one dark child, the child's
    area about 9/25 (finder) or 1/9 (alignment) of the hole's, ratios an affine map keeps.
    """
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    found: tuple[list[Pattern], list[Pattern]] = ([], [])
    if hierarchy is None:
        return found
    following, preceding, first_child, parent = hierarchy[0].T
    # Outer edges of dark regions lie at even depths of the tree, holes at odd ones.
    odd = np.zeros(len(parent), bool)
    above = parent.copy()
    while (above >= 0).any():
        odd ^= above >= 0
        above = np.where(above >= 0, parent[above], -1)
    child = np.maximum(first_child, 0)
    only_child = (first_child >= 0) & (following[child] < 0) & (preceding[child] < 0)
    for index in np.flatnonzero(odd & only_child):
        child = first_child[index]
        hole = cv2.moments(contours[index])
        inner = cv2.moments(contours[child])
        if hole["m00"] < 9 or inner["m00"] <= 0:
            continue
        ratio = inner["m00"] / hole["m00"]
        if not 0.005 <= ratio <= 0.7:
            continue
        x, y = hole["m10"] / hole["m00"], hole["m01"] / hole["m00"]
        ix, iy = inner["m10"] / inner["m00"], inner["m01"] / inner["m00"]
        if math.hypot(x - ix, y - iy) > 0.2 * math.sqrt(hole["m00"]):
            continue  # the dark square is off the hole's centre
        kind = found[0] if ratio >= 0.18 else found[1]
        pattern = Pattern((x + ix) / 2, (y + iy) / 2, hole["m00"], _shape(hole), _shape(inner))
        reach = 0.3 * math.sqrt(pattern.area)
        if not any(math.hypot(f.x - pattern.x, f.y - pattern.y) < reach for f in kind):
            kind.append(pattern)
    for kind in found:
        kind.sort(key=lambda pattern: -pattern.area)
    return found


def _shape(moments: dict[str, float]) -> tuple[float, float, float]:
    area = moments["m00"]
    return moments["mu20"] / area, moments["mu11"] / area, moments["mu02"] / area


def _triples(found: list[Pattern]) -> list[tuple[Pattern, Pattern, Pattern]]:
    """Triples that may be a code's finders, as (top left, top right, bottom left), best first.

    The top-left finder is at the corner: the other two are about as far from it, at about a
    right angle (a warp bends both), top right clockwise of bottom left in the image.
    """
    scored = []
    for trio in itertools.combinations(found[:_MAX_FINDERS], 3):
        for corner in range(3):
            a, b, c = trio[corner], *(trio[i] for i in range(3) if i != corner)
            ab = np.array([b.x - a.x, b.y - a.y])
            ac = np.array([c.x - a.x, c.y - a.y])
            if ab[0] * ac[1] - ab[1] * ac[0] < 0:
                b, c, ab, ac = c, b, ac, ab
            lab, lac = float(np.hypot(*ab)), float(np.hypot(*ac))
            areas = [f.area for f in (a, b, c)]
            if max(areas) > 5 * min(areas) or min(lab, lac) ** 2 < 2.5 * a.area:
                continue
            cos = float(ab @ ac) / (lab * lac)
            if abs(cos) > 0.6 or not 0.5 < lab / lac < 2.0:
                continue
            score = abs(cos) + abs(math.log(lab / lac)) + 0.5 * math.log(max(areas) / min(areas))
            scored.append((score, (a, b, c)))
    scored.sort(key=lambda item: item[0])
    return [trio for _, trio in scored]


def _flattened_at(
    image: np.ndarray, corners: tuple[Pattern, Pattern, Pattern], alignments: list[Pattern]
) -> Iterator[np.ndarray]:
    """Clean images of a code with these finders, at the sizes it most likely has.

    The size its version information gives (versions 7 and up) comes first; then the size the
    finders' pitch suggests, corrected by the whole modules the phase counts between them; then
    a version either side. A size whose grid finds no timing pattern between the finders is
    skipped, and if the first finds none at all, these are no code's finders.
    """
    estimate = _snapped(_size_from_finders(*corners))
    sizes = [17 + 4 * version for version in _versions(image, corners)]
    grids = {}
    if not sizes:
        grids[estimate] = _Grid(image, corners, estimate)
        sizes.append(_snapped(estimate - grids[estimate].refine()))
    sizes += [s for s in (estimate, sizes[0] - 4, sizes[0] + 4) if s not in sizes and s >= 21]
    for number, size in enumerate(sizes[:3]):
        grid = grids.get(size)
        if grid is None:
            grid = _Grid(image, corners, size)
            grid.refine()
        grid.pin(alignments)
        timing = grid.timing()
        if timing < _NO_TIMING and number == 0:
            return
        if timing < _TIMING:
            continue
        for _ in range(_ROUNDS - 1):
            grid.refine()
        dark = _binarized(_module_values(grid.rectified(), size))
        _draw_function_patterns(dark)
        yield _rendered(dark)


def _versions(image: np.ndarray, corners: tuple[Pattern, Pattern, Pattern]) -> list[int]:
    """The versions (7-40) the version information beside the finders reads as ([] if none).

    Each of the two blocks, beside the top-right and the bottom-left finder, is sampled on its
    finder's own pitch.
    """
    a, b, c = corners
    across = np.array([b.x - a.x, b.y - a.y])
    down = np.array([c.x - a.x, c.y - a.y])
    across /= np.hypot(*across)
    down /= np.hypot(*down)
    bits = np.arange(18)
    readings = []
    # Bit i sits at (row i // 3, column size - 11 + i % 3) by the top-right finder, and
    # transposed by the bottom-left one: in modules from the finder's centre, as below.
    for finder, (du, dv) in (
        (b, (bits % 3 - 7, bits // 3 - 3)),
        (c, (bits // 3 - 3, bits % 3 - 7)),
    ):
        pitch_u, pitch_v = finder.pitches(across, down)
        offsets = np.outer(du * pitch_u, across) + np.outer(dv * pitch_v, down)
        # Then the finder's dark core and its light ring, to set the threshold between.
        offsets = np.vstack([offsets, [0, 0], 2 * pitch_u * across])
        points = (offsets + np.array([finder.x, finder.y])).astype(np.float32)
        xs, ys = np.ascontiguousarray(points.T[:, None])
        samples = cv2.remap(image, xs, ys, cv2.INTER_LINEAR)[0]
        dark = samples[:18] < (samples[18] + samples[19]) / 2
        word = int(np.dot(dark, 1 << bits))
        distance, version = min(
            (bin(word ^ _VERSION_WORDS[v]).count("1"), v) for v in _VERSION_WORDS
        )
        if distance <= 3:
            readings.append((distance, version))
    # Up to 3 bits wrong are corrected, but 18 bits of noise come within 3 of some version one
    # time in eight: a reading counts if both blocks agree, or one has at most one bit wrong.
    return sorted(
        {
            version
            for distance, version in readings
            if distance <= 1 or [v for _, v in readings].count(version) == 2
        }
    )


def _version_word(version: int) -> int:
    """The 18 bits of version information: the version and its BCH(18, 6) check bits."""
    remainder = version << 12
    for bit in range(17, 11, -1):
        if remainder >> bit & 1:
            remainder ^= 0x1F25 << (bit - 12)
    return version << 12 | remainder


_VERSION_WORDS = {version: _version_word(version) for version in range(7, 41)}


def _size_from_finders(a: Pattern, b: Pattern, c: Pattern) -> float:
    """Modules a side: the finders' distances over their pitch along them, plus 7."""
    ab = np.array([b.x - a.x, b.y - a.y])
    ac = np.array([c.x - a.x, c.y - a.y])
    across, down = ab / np.hypot(*ab), ac / np.hypot(*ac)
    pitch_a, pitch_b, pitch_c = (f.pitches(across, down) for f in (a, b, c))
    columns = float(np.hypot(*ab)) / ((pitch_a[0] + pitch_b[0]) / 2)
    rows = float(np.hypot(*ac)) / ((pitch_a[1] + pitch_c[1]) / 2)
    return (columns + rows) / 2 + 7


def _snapped(size: float) -> int:
    """The QR symbol size (17 + 4 version, versions 1-40) nearest to size."""
    return 17 + 4 * min(40, max(1, round((size - 17) / 4)))


class _Grid:
    """Where each module of a code of `size` modules is in the image, refined round by round.

    Module (u, v) (u across, v down, in modules from the symbol's top-left corner) is at pixel
    base(u + shift_u, v + shift_v): base is the affine map that puts the finders' centres
    (3.5 modules in from their corners) where they were found, and the shifts, kept at each
    module's centre and bilinear between, bend it to the paper. At the anchors (the finders,
    and the alignment patterns found where the grid expects them) the shifts are pinned to
    what was seen; a thin-plate spline carries each correction smoothly between them.
    """

    def __init__(
        self, image: np.ndarray, corners: tuple[Pattern, Pattern, Pattern], size: int
    ) -> None:
        source = np.float32([[3.5, 3.5], [size - 3.5, 3.5], [3.5, size - 3.5]])
        target = np.float32([[f.x, f.y] for f in corners])
        self.base = cv2.getAffineTransform(source, target).astype(np.float32)
        self.image = image
        self.size = size
        nodes = size + 2 * _PAD
        self.shift_u = np.zeros((nodes, nodes), np.float32)
        self.shift_v = np.zeros((nodes, nodes), np.float32)
        far = size - 4 + _PAD
        # Anchors: nodes (row, column) and the shifts (u, v) seen there.
        self.anchors = [(3 + _PAD, 3 + _PAD), (3 + _PAD, far), (far, 3 + _PAD)]
        self.seen = [(0.0, 0.0)] * 3

    def rectified(self) -> np.ndarray:
        """The image sampled _SAMPLES times a module along the grid, the pad included."""
        count = (self.size + 2 * _PAD) * _SAMPLES
        # Sample q is (q + 0.5) / _SAMPLES modules from the pad's edge; cv2.resize puts it at
        # node (q + 0.5) / _SAMPLES - 0.5, nodes being at the modules' centres.
        at = (np.arange(count, dtype=np.float32) + 0.5) / _SAMPLES - _PAD
        u = at[None, :] + cv2.resize(self.shift_u, (count, count), interpolation=cv2.INTER_LINEAR)
        v = at[:, None] + cv2.resize(self.shift_v, (count, count), interpolation=cv2.INTER_LINEAR)
        m = self.base
        xs = m[0, 0] * u + m[0, 1] * v + m[0, 2]
        ys = m[1, 0] * u + m[1, 1] * v + m[1, 2]
        return cv2.remap(self.image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def refine(self) -> float:
        """One round: measure where the module edges are, move the grid onto them.

        Returns how many modules more than the code has the grid puts between the finders, by
        the phase (about 4 when its size is a version too large, -4 too small).
        """
        du, dv = _phase(self.rectified())
        rows, columns = np.array(self.anchors[:3]).T
        at = (rows * _POINTS, columns * _POINTS)  # the finders' centres among the phase's points
        nodes = self.shift_u.shape[::-1]
        du = cv2.resize(_unwrapped(du, at), nodes, interpolation=cv2.INTER_AREA)
        dv = cv2.resize(_unwrapped(dv, at), nodes, interpolation=cv2.INTER_AREA)
        drift = (
            du[rows[1], columns[1]]
            - du[rows[0], columns[0]]
            + dv[rows[2], columns[2]]
            - dv[rows[0], columns[0]]
        ) / 2
        self.shift_u += du
        self.shift_v += dv
        self._pinned()
        return float(drift)

    def timing(self) -> float:
        """The share of the timing patterns' modules that differ from the next, on this grid."""
        dark = _binarized(_module_values(self.rectified(), self.size))
        row = dark[6, 8 : self.size - 8]
        column = dark[8 : self.size - 8, 6]
        return float(np.mean(row[1:] != row[:-1]) + np.mean(column[1:] != column[:-1])) / 2

    def pin(self, alignments: list[Pattern]) -> None:
        """Pin the grid to the alignment patterns found near where it puts them.

        Nearest the finders first: each pin betters the grid's guess for the next.
        """
        if not alignments:
            return
        found = np.array([[f.x, f.y] for f in alignments], np.float32)
        inverse = cv2.invertAffineTransform(self.base)
        pitch = math.sqrt(abs(np.linalg.det(self.base[:, :2])))
        places = _alignment_centres(self.size)
        places.sort(
            key=lambda rc: min(rc[0] + rc[1], rc[0] + self.size - rc[1], self.size - rc[0] + rc[1])
        )
        for row, column in places:
            node = (row + _PAD, column + _PAD)
            u = column + 0.5 + self.shift_u[node]
            v = row + 0.5 + self.shift_v[node]
            x, y = self.base @ np.float32([u, v, 1])
            distance = np.hypot(found[:, 0] - x, found[:, 1] - y)
            nearest = int(np.argmin(distance))
            # Alignment patterns are 16 to 28 modules apart: the nearest is taken if well
            # within half that of where the grid expects it, and alone there.
            others = np.delete(distance, nearest)
            if distance[nearest] > 6 * pitch or (
                others.size and others.min() < 2 * distance[nearest]
            ):
                continue
            fu, fv = inverse @ np.float32([*found[nearest], 1])
            self.anchors.append(node)
            self.seen.append((fu - column - 0.5, fv - row - 0.5))
            self._pinned()

    def _pinned(self) -> None:
        rows, columns = np.array(self.anchors).T
        seen = np.array(self.seen, np.float32)
        error = seen - np.stack([self.shift_u[rows, columns], self.shift_v[rows, columns]], axis=1)
        correction = _spline(
            np.stack([columns, rows], axis=1).astype(np.float32), error, self.shift_u.shape
        )
        self.shift_u += correction[..., 0]
        self.shift_v += correction[..., 1]


def _alignment_centres(size: int) -> list[tuple[int, int]]:
    """The modules (row, column) at the centres of a symbol's alignment patterns."""
    version = (size - 17) // 4
    if version < 2:
        return []
    count = version // 7 + 2
    last = size - 7
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    lines = [6] + [last - i * step for i in reversed(range(count - 1))]
    corners = {(6, 6), (6, last), (last, 6)}
    return [(r, c) for r in lines for c in lines if (r, c) not in corners]


def _spline(points: np.ndarray, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The thin-plate spline through values (K x 2) at points (K x 2, x y), on a grid of shape."""
    count = len(points)
    kernel = _radial(np.linalg.norm(points[:, None] - points[None], axis=2))
    affine = np.c_[np.ones(count), points]
    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = kernel
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    rhs = np.zeros((count + 3, values.shape[1]))
    rhs[:count] = values
    weights = np.linalg.lstsq(system, rhs, rcond=None)[0]
    # Evaluated on a coarser grid, where cv2.resize's bilinear steps put its points.
    coarse = max(4, shape[0] // 3)
    at = (np.arange(coarse) + 0.5) * shape[0] / coarse - 0.5
    xs, ys = np.meshgrid(at, at)
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
    field = _radial(np.linalg.norm(grid[:, None] - points[None], axis=2)) @ weights[:count]
    field += np.c_[np.ones(len(grid)), grid] @ weights[count:]
    field = field.reshape(coarse, coarse, values.shape[1]).astype(np.float32)
    return cv2.resize(field, shape[::-1], interpolation=cv2.INTER_LINEAR)


def _radial(distance: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(distance > 0, distance**2 * np.log(distance), 0.0)


def _phase(rectified: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far (modules, wrapped) the module edges lie from the grid, across and down.

    The squared steps between neighbouring samples peak on module edges, which repeat every
    module: the phase of that repetition near a place (a Gaussian of _REACH modules) says
    where the edges are there. Given at _POINTS points a module, so that a module squeezed to a
    third of its width turns the phase by less than half a cycle from point to point.
    """
    count = rectified.shape[0]
    # A step between samples q and q + 1 lies at q + 0.5, on a module edge when q + 1 is a
    # multiple of _SAMPLES.
    angle = (np.arange(count, dtype=np.float32) + 1) * np.float32(2 * math.pi / _SAMPLES)
    cos, sin = np.cos(angle), np.sin(angle)
    edges_u = np.zeros_like(rectified)
    edges_v = np.zeros_like(rectified)
    edges_u[:, :-1] = np.square(np.diff(rectified, axis=1))
    edges_v[:-1] = np.square(np.diff(rectified, axis=0))
    parts = cv2.merge(
        [
            edges_u * cos[None, :],
            edges_u * sin[None, :],
            edges_v * cos[:, None],
            edges_v * sin[:, None],
        ]
    )
    points = count * _POINTS // _SAMPLES
    summed = cv2.resize(
        cv2.GaussianBlur(parts, (0, 0), _REACH * _SAMPLES),
        (points, points),
        interpolation=cv2.INTER_AREA,
    )
    du = np.arctan2(summed[..., 1], summed[..., 0]) / np.float32(2 * math.pi)
    dv = np.arctan2(summed[..., 3], summed[..., 2]) / np.float32(2 * math.pi)
    return du, dv


def _unwrapped(phase: np.ndarray, anchors: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The phase (cycles, wrapped) unwrapped by a least-squares fit to its neighbours' steps.

    The fit (a Poisson equation solved by DCT, after Ghiglia and Romero) spreads any
    inconsistency smoothly instead of slipping a whole cycle along a line; its constant makes
    it agree with the phase at the anchors.
    """
    across = _wrapped(np.diff(phase, axis=1))
    down = _wrapped(np.diff(phase, axis=0))
    divergence = np.zeros_like(phase)
    divergence[:, :-1] += across
    divergence[:, 1:] -= across
    divergence[:-1] += down
    divergence[1:] -= down
    rows, columns = phase.shape
    eigen = (
        2 * np.cos(np.pi * np.arange(rows) / rows)[:, None]
        + 2 * np.cos(np.pi * np.arange(columns) / columns)[None, :]
        - 4
    ).astype(np.float32)
    eigen[0, 0] = 1
    spectrum = cv2.dct(divergence) / eigen
    spectrum[0, 0] = 0
    smooth = cv2.idct(spectrum)
    return smooth - float(np.mean(smooth[anchors] - phase[anchors]))


def _wrapped(cycles: np.ndarray) -> np.ndarray:
    return cycles - np.round(cycles)


def _module_values(rectified: np.ndarray, size: int) -> np.ndarray:
    """The mean of the middle 2x2 samples of each module of the symbol."""
    first = _PAD * _SAMPLES + _SAMPLES // 2 - 1
    core = rectified[first : first + size * _SAMPLES, first : first + size * _SAMPLES]
    return core.reshape(size, _SAMPLES, size, _SAMPLES)[:, :2, :, :2].mean(axis=(1, 3))


def _binarized(values: np.ndarray) -> np.ndarray:
    """Dark modules: those darker than the mean of their neighbourhood (a few modules round)."""
    return values < cv2.GaussianBlur(values, (0, 0), 2.5)


def _draw_function_patterns(dark: np.ndarray) -> None:
    """Draw the finders, separators, timing and alignment patterns as the standard has them.

    They carry no data, and a decoder finds the grid by them.
    """
    size = dark.shape[0]
    finder = np.ones((7, 7), bool)
    finder[1:6, 1:6] = False
    finder[2:5, 2:5] = True
    for rows, columns in (
        (slice(0, 8), slice(0, 8)),
        (slice(0, 8), slice(-8, None)),
        (slice(-8, None), slice(0, 8)),
    ):
        dark[rows, columns] = False  # the separator, then the finder inside it
    dark[:7, :7] = dark[:7, -7:] = dark[-7:, :7] = finder
    timing = np.arange(8, size - 8) % 2 == 0
    dark[6, 8 : size - 8] = timing
    dark[8 : size - 8, 6] = timing
    alignment = np.ones((5, 5), bool)
    alignment[1:4, 1:4] = False
    alignment[2, 2] = True
    for row, column in _alignment_centres(size):
        dark[row - 2 : row + 3, column - 2 : column + 3] = alignment


def _rendered(dark: np.ndarray) -> np.ndarray:
    image = np.where(np.pad(dark, _QUIET), 0, 255).astype(np.uint8)
    return cv2.resize(image, None, fx=_OUT_SCALE, fy=_OUT_SCALE, interpolation=cv2.INTER_NEAREST)

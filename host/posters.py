"""Venue-code posters to print: A4 or A5, bilingual, the code as vector squares; PDF or SVG."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import segno
from fontTools.ttLib import TTCollection, TTFont, TTLibError
from fpdf import FPDF
from fpdf.enums import RenderStyle

from host.storage.base import VenueRecord
from shared.venuecode import Binding, BindingKind

MAX_PAGES = 500  # one request's pages: a district's rooms or buses come in several requests
PT = 25.4 / 72  # a typographic point, in millimetres
QUIET_MODULES = 4  # the blank margin the QR standard asks for around the symbol
# Q: a quarter of the symbol may be soiled, torn or glared over and it still reads; a poster on
# a door or in a taxi wears. (H would need a larger version for the same URL: smaller modules.)
ERROR_LEVEL = "q"


class PaperSize(StrEnum):
    A4 = "a4"
    A5 = "a5"


@dataclass(frozen=True)
class Sheet:
    """A paper size's geometry in millimetres, and its text's size against A4's."""

    width: float
    height: float
    margin: float
    code_side: float  # the symbol without its quiet zone
    text_scale: float


# A phone camera reads a code from about ten times its side, so a metre needs 10 cm: 12 cm on
# A4 (read from ~1.2 m), 10 cm on A5, which then gives the code most of the page.
SHEETS = {
    PaperSize.A4: Sheet(210.0, 297.0, 14.0, 120.0, 1.0),
    PaperSize.A5: Sheet(148.0, 210.0, 8.0, 100.0, 0.68),
}

# The words on every poster: Chinese first (the seeds' venues are in China), English after.
HEADER = "场所码 · VENUE CODE"
CALL = ("请扫码登记", "Scan to check in")
STEPS = (
    ("用手机相机或微信扫描二维码", "Scan with a phone camera or WeChat"),
    ("页面显示登记成功即可进入", "The page that opens confirms your check-in"),
    ("没有手机？请向工作人员出示身份证", "No phone? Show your ID card to staff"),  # noqa: RUF001
)
STEP_MARKS = "①②③"
BINDING_LABELS = {BindingKind.ROOM: ("房间", "Room"), BindingKind.PLATE: ("车牌", "Plate")}
BRAND = "数字哨兵 Digital Sentinel"
ELLIPSIS = "…"

GREEN = "#0a7a4c"  # the header band; dark enough to print as grey under white text
PALE_GREEN = "#e6f3ec"
PALE = "#cfe9dc"
WHITE = "#ffffff"
INK = "#1a1a1a"
GREY = "#5c5c5c"
FRAME = "#9a9a9a"
BOLD = ' font-weight="bold"'
SVG_FONTS = "'Noto Sans CJK SC', 'Source Han Sans SC', 'Noto Sans SC', 'PingFang SC', sans-serif"


# ---- which rooms or plates ------------------------------------------------------------------


class PageListError(ValueError):
    """A list of rooms or plates that cannot be made into pages; `code` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# A room range: `101-120`, `B01-B12` or `B01-12` (a prefix, then numbers; the width of a first
# number with a leading zero is kept).
ROOM_RANGE = re.compile(
    r"^(?P<prefix>(?:[^-]*[^-0-9])?)(?P<first>[0-9]{1,9})-(?P=prefix)?(?P<last>[0-9]{1,9})$"
)
LIST_SEPARATORS = re.compile(r"[,，]")


def split_list(text: str) -> list[str]:
    """The items of a list as a query gives it: comma-separated (ASCII or full-width commas)."""
    return LIST_SEPARATORS.split(text)


def csv_values(text: str) -> Iterator[str]:
    """The first column of each line of a CSV, as written (a byte-order mark skipped)."""
    try:
        for row in csv.reader(io.StringIO(text.removeprefix("\ufeff"))):
            if row:
                yield row[0]
    except csv.Error as error:
        raise PageListError("bad-csv", f"not CSV: {error}") from None


def expand_rooms(items: Iterable[str]) -> Iterator[str]:
    """Each item, or each room of a range item (`101-120`), in order."""
    for item in items:
        match = ROOM_RANGE.match(item.strip())
        if match is None:
            yield item
            continue
        first, last = int(match["first"]), int(match["last"])
        if first > last:
            raise PageListError("bad-range", f"room range {item.strip()} runs backwards")
        if last - first >= MAX_PAGES:
            raise PageListError("too-many-pages", f"room range {item.strip()} is over {MAX_PAGES}")
        width = len(match["first"]) if match["first"].startswith("0") else 0
        for number in range(first, last + 1):
            yield f"{match['prefix']}{number:0{width}d}"


def bindings(kind: BindingKind, values: Iterable[str]) -> list[Binding]:
    """One binding per distinct value (blank ones skipped), in order; at most `MAX_PAGES`."""
    distinct: dict[str, None] = {}
    for value in values:
        if value.strip():
            distinct[value.strip()] = None
        if len(distinct) > MAX_PAGES:
            raise PageListError("too-many-pages", f"at most {MAX_PAGES} pages in one poster")
    if not distinct:
        raise PageListError("no-pages", f"no {kind.value} given")
    found = []
    for value in distinct:
        try:
            found.append(Binding(kind, value))
        except ValueError as error:
            shown = value if len(value) <= 40 else value[:40] + ELLIPSIS
            raise PageListError("bad-binding", f"{kind.value} {shown!r}: {error}") from None
    return found


# ---- fonts ----------------------------------------------------------------------------------


class FontMissing(RuntimeError):
    """No installed font has the poster's Chinese characters."""


@dataclass(frozen=True)
class Face:
    """One font face: a file, and the face's index in it when it is a collection (.ttc)."""

    path: Path
    index: int = 0


@dataclass(frozen=True)
class Metrics:
    """What laying text out needs of a face: each character's advance."""

    units_per_em: int
    cmap: dict[int, str]
    advances: dict[str, int]

    def width(self, text: str, size: float) -> float:
        """The advance of `text` set at `size` points, in millimetres."""
        em = self.units_per_em
        units = sum(self.advances.get(self.cmap.get(ord(char), ".notdef"), em) for char in text)
        return units / em * size * PT

    def covers(self, text: str) -> bool:
        return all(ord(char) in self.cmap for char in text if not char.isspace())


@functools.cache
def face_metrics(face: Face) -> Metrics:
    """The face's metrics, read once per process (a CJK face has 65,535 glyphs)."""
    font = TTFont(face.path, fontNumber=face.index, lazy=True)
    advances = {name: advance for name, (advance, _) in font["hmtx"].metrics.items()}
    return Metrics(font["head"].unitsPerEm, font.getBestCmap(), advances)


# What fontconfig is asked for; a font it offers instead must still cover POSTER_CHINESE.
FONT_PATTERN = "Noto Sans CJK SC:lang=zh-cn"
# Debian's fonts-noto-cjk, where fontconfig is not installed; the face is found by its family.
DEBIAN_FONTS = {
    False: Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    True: Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
}
DEBIAN_FAMILY = "Noto Sans CJK SC"
POSTER_CHINESE = STEP_MARKS + "".join(
    chinese for chinese, _ in (CALL, *STEPS, *BINDING_LABELS.values())
)
FONT_HELP = (
    "no installed font has Chinese characters: install fonts-noto-cjk "
    "(Debian: apt-get install fonts-noto-cjk) or another CJK font fontconfig finds"
)


def _fontconfig_face(bold: bool) -> Face | None:
    """The face fontconfig matches to `FONT_PATTERN`, if fontconfig is installed."""
    command = shutil.which("fc-match")
    if command is None:
        return None
    pattern = FONT_PATTERN + (":style=Bold" if bold else "")
    try:
        matched = subprocess.run(
            [command, "--format=%{file}\n%{index}", pattern],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
        return Face(Path(matched[0]), int(matched[1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _debian_face(bold: bool) -> Face | None:
    """`DEBIAN_FAMILY` in Debian's collection file, if it is there."""
    path = DEBIAN_FONTS[bold]
    try:
        collection = TTCollection(path, lazy=True)
    except (OSError, TTLibError):
        return None
    for index, font in enumerate(collection.fonts):
        if font["name"].getDebugName(1) == DEBIAN_FAMILY:
            return Face(path, index)
    return None


def _covers_chinese(face: Face) -> bool:
    try:
        return face_metrics(face).covers(POSTER_CHINESE)
    except (OSError, TTLibError, KeyError):  # not a font, or one without advances or a cmap
        return False


@dataclass(frozen=True)
class Fonts:
    """The regular and the bold face posters are set in."""

    regular: Face
    bold: Face

    def metrics(self, bold: bool) -> Metrics:
        return face_metrics(self.bold if bold else self.regular)


def find_fonts() -> Fonts:
    """The CJK faces fontconfig matches, else Debian's Noto Sans CJK SC; FontMissing if none."""
    faces = []
    for bold in (False, True):
        candidates = (_fontconfig_face(bold), _debian_face(bold))
        face = next((face for face in candidates if face and _covers_chinese(face)), None)
        if face is None:
            raise FontMissing(FONT_HELP)
        faces.append(face)
    return Fonts(*faces)


@functools.cache
def fonts() -> Fonts:
    """`find_fonts`, once per process once it has found them."""
    return find_fonts()


# ---- layout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PosterPage:
    """One page: the venue, and the signed URL of its code, fixed or bound to a room or plate."""

    venue: VenueRecord
    url: str
    binding: Binding | None = None


@dataclass(frozen=True)
class Span:
    text: str
    size: float  # points
    bold: bool = False
    colour: str = INK


@dataclass(frozen=True)
class Line:
    """Spans set one after another on a baseline, from `x`, or centred on `x`."""

    x: float
    baseline: float
    spans: tuple[Span, ...]
    width: float
    centred: bool = True


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    fill: str | None
    stroke: str | None = None
    radius: float = 0.0


Rectangle = tuple[int, int, int, int]  # row, column, width, height, in modules


@dataclass(frozen=True)
class Code:
    """A QR symbol at (x, y) with modules of `module` mm: its dark rectangles."""

    x: float
    y: float
    module: float
    dark: tuple[Rectangle, ...]


Item = Box | Line | Code


@dataclass(frozen=True)
class Layout:
    """A page's items, in drawing order, on a sheet; millimetres from the top left corner."""

    sheet: Sheet
    items: tuple[Item, ...]


def dark_rectangles(text: str) -> tuple[int, tuple[Rectangle, ...]]:
    """The QR symbol of `text` (error level Q): its side in modules, and its dark modules.

    Each row's runs of dark modules, a run joined with the same run in the rows below it: a
    tenth fewer shapes to draw than runs, and fewer edges for a renderer to seam.
    """
    symbol = segno.make_qr(text, error=ERROR_LEVEL, boost_error=False)
    done: list[Rectangle] = []
    open_above: dict[tuple[int, int], Rectangle] = {}  # by (column, width)
    for row, modules in enumerate(symbol.matrix):
        open_here = {}
        column = 0
        for dark, run in itertools.groupby(modules, key=bool):
            width = len(list(run))
            if dark:
                above = open_above.pop((column, width), None)
                top, height = (above[0], above[3] + 1) if above else (row, 1)
                open_here[column, width] = (top, column, width, height)
            column += width
        done += open_above.values()
        open_above = open_here
    done += open_above.values()
    return len(symbol.matrix), tuple(done)


def printable(text: str) -> str:
    """Text to set: line breaks and tabs as spaces, other control characters dropped."""
    spaced = re.sub(r"\s", " ", text)
    return "".join(char for char in spaced if unicodedata.category(char)[0] != "C").strip()


def _tokens(text: str) -> list[str]:
    """Where a line may break: around each wide (CJK) character, and at spaces."""
    return re.findall(
        r"\s+|[^\s\u1100-\u11ff\u2e80-\ua4cf\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]+|.", text
    )


def wrap(text: str, measure: Callable[[str], float], width: float) -> list[str]:
    """`text` broken into lines no wider than `width` (a word too wide is broken anywhere)."""
    pieces: list[str] = []
    for token in _tokens(text):
        pieces += list(token) if measure(token) > width else [token]
    lines: list[str] = []
    current, current_width = "", 0.0
    for piece in pieces:
        piece_width = measure(piece)
        if current and current_width + piece_width > width:
            lines.append(current.rstrip())
            current, current_width = "", 0.0
        if current or not piece.isspace():
            current, current_width = current + piece, current_width + piece_width
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _truncate(
    lines: list[str], max_lines: int, measure: Callable[[str], float], width: float
) -> list[str]:
    """The first `max_lines` lines, the last ending in an ellipsis if any text was cut."""
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and measure(last + ELLIPSIS) > width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip() + ELLIPSIS]


class _Writer:
    """Sets centred paragraphs down a page, collecting the lines."""

    def __init__(self, fonts: Fonts, centre: float, width: float) -> None:
        self.fonts = fonts
        self.centre = centre
        self.width = width
        self.items: list[Item] = []

    def span_width(self, span: Span) -> float:
        return self.fonts.metrics(span.bold).width(span.text, span.size)

    def line(self, top: float, spans: Sequence[Span], x: float | None = None) -> float:
        """One line of spans (its top at `top`), centred or from `x`; the top of the next."""
        size = max(span.size for span in spans) * PT
        width = sum(self.span_width(span) for span in spans)
        at, centred = (self.centre, True) if x is None else (x, False)
        self.items.append(Line(at, top + 0.95 * size, tuple(spans), width, centred))
        return top + 1.3 * size

    def paragraph(
        self,
        top: float,
        text: str,
        sizes: Sequence[float],
        max_lines: int,
        *,
        bold: bool = False,
        colour: str = INK,
    ) -> float:
        """`text` at the largest of `sizes` it fits in `max_lines` at, else cut at the smallest."""
        text = printable(text)
        for size in sizes:
            measure = functools.partial(self.fonts.metrics(bold).width, size=size)
            lines = wrap(text, measure, self.width)
            if len(lines) <= max_lines:
                break
        for line in _truncate(lines, max_lines, measure, self.width):
            top = self.line(top, [Span(line, size, bold, colour)])
        return top

    def fitted(self, spans: Sequence[Span], width: float) -> list[Span]:
        """`spans` with the last one's size lowered until the whole line is `width` at most."""
        *fixed, last = spans
        fixed_width = sum(self.span_width(span) for span in fixed)
        size = last.size
        while size > 6 and fixed_width + self.span_width(replace(last, size=size)) > width:
            size -= 1
        return [*fixed, replace(last, size=size)]


def lay_out(page: PosterPage, size: PaperSize, fonts: Fonts) -> Layout:
    """Where everything on one page goes: header band, name, address, code, words, footer."""
    sheet = SHEETS[size]
    scale, margin = sheet.text_scale, sheet.margin
    writer = _Writer(fonts, sheet.width / 2, sheet.width - 2 * margin)
    venue = page.venue

    # The header band: what this is, and the venue's name.
    top = writer.line(0.7 * margin, [Span(HEADER, 9 * scale, colour=PALE)]) + 2 * scale
    sizes = [point * scale for point in (30, 26, 22, 18)]
    top = writer.paragraph(top, venue.name, sizes, 2, bold=True, colour=WHITE)
    band = Box(0, 0, sheet.width, top + 4 * scale, GREEN)
    top = band.height + 6 * scale
    top = writer.paragraph(top, venue.address, [13 * scale, 11 * scale], 2)
    place = " · ".join(part for part in (venue.district, venue.street) if part)
    top = writer.paragraph(top, place, [11 * scale], 1, colour=GREY)

    # The footer, and the steps above it.
    footer_size = 7.5 * scale
    parts = [BRAND, f"venue {venue.id}", *([f"{page.binding}"] if page.binding else [])]
    footer_top = sheet.height - 0.6 * margin - 1.3 * footer_size * PT
    writer.paragraph(footer_top, "  ·  ".join(parts), [footer_size], 1, colour=GREY)
    step_sizes = (12 * scale, 10 * scale)
    pitch = 1.3 * step_sizes[0] * PT + 1.5 * scale
    steps_top = footer_top - 5 * scale - len(STEPS) * pitch
    step_lines = [
        [
            Span(f"{mark} ", step_sizes[0], True, GREEN),
            Span(chinese + "  ", step_sizes[0]),
            Span(english, step_sizes[1], colour=GREY),
        ]
        for mark, (chinese, english) in zip(STEP_MARKS, STEPS, strict=True)
    ]
    left = writer.centre - max(sum(map(writer.span_width, spans)) for spans in step_lines) / 2
    for index, spans in enumerate(step_lines):
        writer.line(steps_top + index * pitch, spans, x=left)

    # Between the address and the steps: the room or plate, the call, and the code.
    modules, dark = dark_rectangles(page.url)
    module = sheet.code_side / modules
    frame_side = sheet.code_side + 2 * QUIET_MODULES * module
    call = [Span(CALL[0], 26 * scale, True), Span("  " + CALL[1], 18 * scale, colour=GREY)]
    call_height = 1.3 * 26 * scale * PT
    label: list[Span] = []
    label_height = 0.0
    if page.binding is not None:
        chinese, english = BINDING_LABELS[page.binding.kind]
        caption = Span(f"{chinese} {english}  ", 16 * scale, colour=GREY)
        value = Span(printable(page.binding.value), 40 * scale, True)
        label = writer.fitted([caption, value], writer.width - 10 * scale)
        label_height = 1.4 * label[-1].size * PT
    gap = 3 * scale
    block = label_height + (gap if label else 0) + call_height + gap + frame_side
    top += max(0.0, (steps_top - top - block) / 2)
    boxes = []
    if label:
        boxes.append(Box(margin, top, writer.width, label_height, PALE_GREEN, radius=3 * scale))
        label_top = top + (label_height - 1.3 * label[-1].size * PT) / 2
        writer.line(label_top + 0.1 * label[-1].size * PT, label)
        top += label_height + gap
    top = writer.line(top, call) + gap
    frame_left = (sheet.width - frame_side) / 2
    boxes.append(Box(frame_left, top, frame_side, frame_side, None, FRAME, 2 * scale))
    quiet = QUIET_MODULES * module
    code = Code(frame_left + quiet, top + quiet, module, dark)
    return Layout(sheet, (band, *boxes, code, *writer.items))


# ---- PDF and SVG ------------------------------------------------------------------------------


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _pdf_item(pdf: FPDF, item: Item, metrics: Callable[[bool], Metrics]) -> None:
    if isinstance(item, Box):
        style = ("F" if item.fill else "") + ("D" if item.stroke else "")
        if item.fill:
            pdf.set_fill_color(*_rgb(item.fill))
        if item.stroke:
            pdf.set_draw_color(*_rgb(item.stroke))
            pdf.set_line_width(0.35)
        rounded = item.radius > 0
        pdf.rect(item.x, item.y, item.width, item.height, style, rounded, item.radius)
    elif isinstance(item, Code):
        pdf.set_fill_color(0, 0, 0)
        module = item.module
        for row, column, width, height in item.dark:
            x, y = item.x + column * module, item.y + row * module
            pdf.rect(x, y, width * module, height * module, RenderStyle.F)
    else:
        x = item.x - item.width / 2 if item.centred else item.x
        for span in item.spans:
            pdf.set_font("cjk", "B" if span.bold else "", span.size)
            pdf.set_text_color(*_rgb(span.colour))
            pdf.text(x, item.baseline, span.text)
            x += metrics(span.bold).width(span.text, span.size)


def render_pdf(pages: Sequence[PosterPage], size: PaperSize) -> bytes:
    """The pages as one PDF, its Chinese font embedded as a subset; FontMissing without one."""
    chosen = fonts()
    sheet = SHEETS[size]
    pdf = FPDF(unit="mm", format=(sheet.width, sheet.height))
    pdf.set_auto_page_break(False)
    pdf.add_font("cjk", "", chosen.regular.path, collection_font_number=chosen.regular.index)
    pdf.add_font("cjk", "B", chosen.bold.path, collection_font_number=chosen.bold.index)
    pdf.set_title(printable(pages[0].venue.name))
    pdf.set_creator("Digital Sentinel")
    pdf.set_lang("zh-CN")
    for page in pages:
        pdf.add_page()
        for item in lay_out(page, size, chosen).items:
            _pdf_item(pdf, item, chosen.metrics)
    return bytes(pdf.output())


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg_item(item: Item) -> str:
    if isinstance(item, Box):
        fill = item.fill or "none"
        stroke = f' stroke="{item.stroke}" stroke-width="0.35"' if item.stroke else ""
        radius = f' rx="{_number(item.radius)}"' if item.radius else ""
        return (
            f'<rect x="{_number(item.x)}" y="{_number(item.y)}" width="{_number(item.width)}"'
            f' height="{_number(item.height)}" fill="{fill}"{stroke}{radius}/>'
        )
    if isinstance(item, Code):
        path = "".join(
            f"M{column},{row}h{width}v{height}h-{width}z"
            for row, column, width, height in item.dark
        )
        return (
            f'<path transform="translate({_number(item.x)} {_number(item.y)})'
            f' scale({item.module:.4f})" fill="#000" shape-rendering="crispEdges" d="{path}"/>'
        )
    spans = "".join(
        f'<tspan font-size="{_number(span.size * PT)}" fill="{span.colour}"'
        f"{BOLD if span.bold else ''}>{escape(span.text)}</tspan>"
        for span in item.spans
    )
    anchor = "middle" if item.centred else "start"
    return (
        f'<text x="{_number(item.x)}" y="{_number(item.baseline)}" text-anchor="{anchor}"'
        f' xml:space="preserve">{spans}</text>'
    )


def render_svg(page: PosterPage, size: PaperSize) -> bytes:
    """One page as SVG: text as text in the CJK fonts named (not embedded), the code as a path."""
    layout = lay_out(page, size, fonts())
    width, height = _number(layout.sheet.width), _number(layout.sheet.height)
    body = "\n".join(_svg_item(item) for item in layout.items)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}mm" height="{height}mm"'
        f' viewBox="0 0 {width} {height}" font-family={quoteattr(SVG_FONTS)}>\n'
        f"<title>{escape(printable(page.venue.name))}</title>\n"
        f'<rect width="{width}" height="{height}" fill="#fff"/>\n{body}\n</svg>\n'
    ).encode()

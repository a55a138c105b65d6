"""Venue posters: rendered (pdftoppm, rsvg-convert) and their codes read back by our decoder."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import zxingcpp

from hardware.qr import QrDecoder
from host import posters
from host.posters import (
    MAX_PAGES,
    SHEETS,
    Box,
    Code,
    Line,
    PageListError,
    PaperSize,
    PosterPage,
    bindings,
    csv_values,
    expand_rooms,
    lay_out,
    split_list,
)
from host.storage.base import VenueRecord
from sentinel.cli import main
from sentinel.demo import HostProcess, free_port
from shared.keys import TrustStore
from shared.messages import API_PREFIX, PublishedKey, trust_store
from shared.policy import VenueCategory
from shared.venuecode import Binding, BindingKind, VenueCode, read_url
from tests.host.conftest import Admin

DPI = 150
NANJING = {
    "name": "玄武区图书馆 Xuanwu District Library",
    "address": "南京市玄武区中山路 189 号",
    "category": "public_place",
    "district": "玄武区",
    "street": "梅园新村街道",
}
A4_POINTS, A5_POINTS = (595.28, 841.89), (419.53, 595.28)


def _font_missing() -> str | None:
    try:
        posters.fonts()
    except posters.FontMissing as missing:
        return str(missing)
    return None


def _tools_missing(*tools: str) -> str | None:
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: poppler-utils, librsvg2-bin)"
    return _font_missing()


@pytest.fixture
def renders() -> None:
    """Skip, saying why, where posters cannot be made (no CJK font) or rendered back."""
    reason = _tools_missing("pdftoppm", "pdfinfo", "pdffonts")
    if reason:
        pytest.skip(reason)


@pytest.fixture
def fonts() -> posters.Fonts:
    reason = _font_missing()
    if reason:
        pytest.skip(reason)
    return posters.fonts()


@pytest.fixture(scope="module")
def decoder() -> QrDecoder:
    return QrDecoder()


def pdf_pages(pdf: bytes, tmp_path: Path) -> list[np.ndarray]:
    """Each page of the PDF as a grey image at `DPI`, as pdftoppm renders it."""
    source = tmp_path / "poster.pdf"
    source.write_bytes(pdf)
    out = tmp_path / "pages"
    out.mkdir()
    subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-gray", "-png", source, out / "page"],
        check=True,
        timeout=60,
    )
    return [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in sorted(out.glob("*.png"))]


def pdf_info(pdf: bytes, tmp_path: Path) -> dict[str, str]:
    source = tmp_path / "info.pdf"
    source.write_bytes(pdf)
    text = subprocess.run(
        ["pdfinfo", source], check=True, timeout=30, capture_output=True, text=True
    ).stdout
    return dict(re.findall(r"^([^:]+):\s+(.*)$", text, re.MULTILINE))


def page_points(info: dict[str, str]) -> tuple[float, float]:
    width, height = re.match(r"([\d.]+) x ([\d.]+) pts", info["Page size"]).groups()
    return float(width), float(height)


def host_trust(client: httpx.Client) -> TrustStore:
    """What a phone or kiosk trusts: the keys the host publishes."""
    keys = client.get(f"{API_PREFIX}/keys").json()["keys"]
    return trust_store([PublishedKey.model_validate(key) for key in keys])


def read_codes(images: list[np.ndarray], decoder: QrDecoder, trust: TrustStore) -> list[VenueCode]:
    """The one venue code on each page, its signature checked."""
    codes = []
    for image in images:
        texts = decoder.decode(image)
        assert len(texts) == 1, texts
        codes.append(read_url(texts[0], trust))
    return codes


def code_side_mm(image: np.ndarray) -> float:
    """The printed side of the QR symbol on a page rendered at `DPI`.

    Measured by zxing-cpp's corners of the symbol: OpenCV's detector misses some of the
    patterns a fresh signature makes, which made this flaky.
    """
    (found,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    top_left, top_right = found.position.top_left, found.position.top_right
    return math.hypot(top_right.x - top_left.x, top_right.y - top_left.y) / DPI * 25.4


def poster(admin: Admin, venue_id: str, output: str = "pdf", **params: str) -> httpx.Response:
    return admin.request("GET", f"/venues/{venue_id}/poster.{output}", params=params)


# ---- the API, on both backends --------------------------------------------------------------


def test_a_room_poster_has_a_page_per_room_each_with_its_own_code(
    client, admin: Admin, renders, decoder: QrDecoder, tmp_path: Path
):
    venue = admin.ok("POST", "/venues", json=NANJING)
    response = poster(admin, venue["id"], rooms="101-103,B1", size="a5")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["x-poster-pages"] == "4"
    info = pdf_info(response.content, tmp_path)
    assert info["Pages"] == "4"
    assert page_points(info) == pytest.approx(A5_POINTS, abs=0.1)
    images = pdf_pages(response.content, tmp_path)
    assert len(images) == 4
    assert images[0].shape == pytest.approx((210 / 25.4 * DPI, 148 / 25.4 * DPI), abs=2)
    codes = read_codes(images, decoder, host_trust(client))
    assert codes == [
        VenueCode(venue["id"], Binding(BindingKind.ROOM, room))
        for room in ("101", "102", "103", "B1")
    ]
    # Read from a metre: 10 cm, even on A5 (within the detector's pixel or two).
    assert code_side_mm(images[0]) == pytest.approx(100, abs=1)


def test_a_plate_poster_on_a4_with_the_plates_listed_as_typed(
    client, admin: Admin, renders, decoder: QrDecoder, tmp_path: Path
):
    venue = admin.ok("POST", "/venues", json=NANJING | {"category": "public_transport"})
    response = poster(admin, venue["id"], plates="京A12345，苏A·67890")  # a full-width comma
    assert response.status_code == 200, response.text
    info = pdf_info(response.content, tmp_path)
    assert (info["Pages"], page_points(info)) == ("2", pytest.approx(A4_POINTS, abs=0.1))
    fonts = subprocess.run(
        ["pdffonts", tmp_path / "info.pdf"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    assert re.search(r"^[A-Z]{6}\+\S*CJK", fonts, re.MULTILINE), fonts  # embedded, a subset
    images = pdf_pages(response.content, tmp_path)
    assert read_codes(images, decoder, host_trust(client)) == [
        VenueCode(venue["id"], Binding(BindingKind.PLATE, "京A12345")),
        VenueCode(venue["id"], Binding(BindingKind.PLATE, "苏A·67890")),
    ]
    assert code_side_mm(images[1]) == pytest.approx(120, abs=1)


def test_a_long_list_comes_as_csv_one_room_a_line_taken_as_written(
    client, admin: Admin, renders, decoder: QrDecoder, tmp_path: Path
):
    venue = admin.ok("POST", "/venues", json=NANJING)
    listed = "\ufeffroom 2-1,first floor\n\n3-12\n2-1\n"  # a BOM, a blank line, a repeat
    response = admin.request(
        "POST",
        f"/venues/{venue['id']}/poster.pdf",
        params={"kind": "room", "size": "a5"},
        content=listed.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    codes = read_codes(pdf_pages(response.content, tmp_path), decoder, host_trust(client))
    assert [code.binding for code in codes] == [
        Binding(BindingKind.ROOM, "room 2-1"),
        Binding(BindingKind.ROOM, "3-12"),  # not a range: the list is as written
        Binding(BindingKind.ROOM, "2-1"),
    ]


def test_a_venue_manager_prints_their_venue_and_no_other(
    client, admin: Admin, renders, decoder: QrDecoder, tmp_path: Path
):
    own, other = admin.ok("POST", "/venues", json=NANJING), admin.venue("Other")
    manager = admin.user("manager", "venue-manager", venues=[own["id"]])
    response = manager.request("GET", f"/admin/venues/{own['id']}/poster.pdf")
    assert response.status_code == 200, response.text
    assert response.headers["x-poster-pages"] == "1"
    (image,) = pdf_pages(response.content, tmp_path)
    # The fixed poster carries the venue's one fixed code, exactly as stored.
    assert decoder.decode(image) == [own["code_url"]]
    assert read_url(own["code_url"], host_trust(client)) == VenueCode(own["id"])
    refused = manager.request("GET", f"/admin/venues/{other['id']}/poster.pdf")
    assert (refused.status_code, refused.json()["error"]) == (404, "unknown-venue")
    for role, scope in (("epidemiologist", {}), ("screener", {"org": "acme"})):
        user = admin.user(role, role, **scope)
        for method in ("GET", "POST"):
            answer = user.request(
                method, f"/admin/venues/{own['id']}/poster.pdf?kind=room", content=b"101"
            )
            assert answer.status_code == 403, (role, method, answer.text)
    anonymous = client.get(f"{API_PREFIX}/admin/venues/{own['id']}/poster.svg")
    assert anonymous.status_code == 401


def test_an_svg_poster_is_one_page_of_xml_with_the_name_and_a_readable_code(
    client, admin: Admin, renders, decoder: QrDecoder, tmp_path: Path
):
    venue = admin.ok("POST", "/venues", json=NANJING)
    response = poster(admin, venue["id"], "svg", rooms="B1", size="a5")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    root = ElementTree.fromstring(response.content)
    assert (root.get("width"), root.get("height")) == ("148mm", "210mm")
    texts = "".join(root.itertext())
    assert NANJING["name"] in texts
    assert "请扫码登记" in texts
    assert "Scan to check in" in texts
    several = poster(admin, venue["id"], "svg", rooms="B1-B2")
    assert (several.status_code, several.json()["error"]) == (422, "svg-one-page")
    if shutil.which("rsvg-convert") is None:
        pytest.skip("rsvg-convert not installed (Debian: librsvg2-bin): the SVG is not rendered")
    svg = tmp_path / "poster.svg"
    svg.write_bytes(response.content)
    png = tmp_path / "poster.png"
    subprocess.run(
        ["rsvg-convert", "-d", str(DPI), "-p", str(DPI), "-o", png, svg], check=True, timeout=60
    )
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert read_codes([image], decoder, host_trust(client)) == [
        VenueCode(venue["id"], Binding(BindingKind.ROOM, "B1"))
    ]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"rooms": "120-101"}, "bad-range"),
        ({"rooms": "1-501"}, "too-many-pages"),
        ({"rooms": "1-300,301-501"}, "too-many-pages"),
        ({"rooms": "101,a:b"}, "bad-binding"),
        ({"rooms": "x" * 33}, "bad-binding"),
        ({"rooms": " , "}, "no-pages"),
        ({"rooms": "101", "plates": "京A12345"}, "bad-binding"),
        ({"size": "a3"}, "invalid-request"),
    ],
)
def test_bad_page_lists_are_refused_saying_why(admin: Admin, venue: dict, params, error):
    response = poster(admin, venue["id"], **params)
    assert (response.status_code, response.json()["error"]) == (422, error), response.text


def test_a_csv_over_the_page_limit_is_refused(admin: Admin, venue: dict):
    listed = "\n".join(f"R{number}" for number in range(MAX_PAGES + 1))
    response = admin.request(
        "POST",
        f"/venues/{venue['id']}/poster.pdf",
        params={"kind": "plate"},
        content=listed.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert (response.status_code, response.json()["error"]) == (422, "too-many-pages")
    no_kind = admin.request("POST", f"/venues/{venue['id']}/poster.pdf", content=b"101")
    assert no_kind.status_code == 422


def test_without_a_cjk_font_the_host_answers_503_saying_what_to_install(
    admin: Admin, venue: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fc-match
    monkeypatch.setattr(posters, "DEBIAN_FONTS", {False: tmp_path / "a.ttc", True: tmp_path / "b"})
    posters.fonts.cache_clear()
    try:
        response = poster(admin, venue["id"], rooms="101")
        svg = poster(admin, venue["id"], "svg")
    finally:
        posters.fonts.cache_clear()
    for answer in (response, svg):
        assert answer.status_code == 503
        assert answer.json()["error"] == "no-cjk-font"
        assert "fonts-noto-cjk" in answer.json()["detail"]


# ---- page lists and layout ------------------------------------------------------------------


def test_room_ranges_keep_their_prefix_and_zero_padding():
    rooms = list(expand_rooms(split_list("101-103,B01-B03,C8-10，201")))
    assert rooms == ["101", "102", "103", "B01", "B02", "B03", "C8", "C9", "C10", "201"]
    assert [str(b) for b in bindings(BindingKind.ROOM, ["101", " 101 ", "", "102"])] == [
        "room:101",
        "room:102",
    ]
    assert list(expand_rooms(["B-101", "1-2-3", "1" * 12 + "-2"])) == [
        "B-101",
        "1-2-3",
        "1" * 12 + "-2",
    ]
    with pytest.raises(PageListError, match="runs backwards"):
        list(expand_rooms(["B12-B01"]))
    assert list(csv_values('"a,b",c\n\nd\n')) == ["a,b", "d"]


WORST = VenueRecord(
    id="v_0123456789",
    name="全国文明城市示范中心 Exhibition Centre " * 6,  # 200 characters and more
    address="江苏省南京市玄武区中山路 189 号 " * 20,
    category=VenueCategory.PUBLIC_PLACE,
    code_url="https://sentinel.example.org/v/v_0123456789?k=AAAAAAAAAAA&s=" + "A" * 86,
    rules=None,
    created_at_ms=0,
    district="玄武区" * 30,
    street="梅园新村街道" * 15,
)


@pytest.mark.parametrize("size", list(PaperSize))
@pytest.mark.parametrize("binding", [None, Binding(BindingKind.PLATE, "京" * 32)])
def test_the_longest_texts_leave_the_code_and_its_quiet_zone_clear(
    fonts: posters.Fonts, size: PaperSize, binding: Binding | None
):
    url = WORST.code_url.replace("?", "?b=plate:" + "x" * 32 + "&")  # as long as a bound URL
    layout = lay_out(PosterPage(WORST, url, binding), size, fonts)
    sheet = SHEETS[size]
    (code,) = [item for item in layout.items if isinstance(item, Code)]
    side = code.module * (max(row + height for row, _, _, height in code.dark))
    assert side == pytest.approx(sheet.code_side)
    (frame,) = [item for item in layout.items if isinstance(item, Box) and item.stroke]
    assert frame.x >= 0 and frame.x + frame.width <= sheet.width
    lines = [item for item in layout.items if isinstance(item, Line)]
    name = [line.spans[0].text for line in lines if line.spans[0].colour == posters.WHITE]
    assert len(name) == 2 and name[1].endswith("…")  # cut after two lines
    for line in lines:
        size_mm = max(span.size for span in line.spans) * posters.PT
        top, bottom = line.baseline - 0.9 * size_mm, line.baseline + 0.25 * size_mm
        left = line.x - line.width / 2 if line.centred else line.x
        assert (
            sheet.margin - 0.01 <= left and left + line.width <= sheet.width - sheet.margin + 0.01
        )
        assert top >= 0 and bottom <= sheet.height
        assert bottom <= frame.y or top >= frame.y + frame.height, line


# ---- the command, against a real host process --------------------------------------------------


@pytest.mark.integration
def test_the_command_writes_a_venue_managers_posters(
    tmp_path: Path, renders, decoder: QrDecoder, capsys: pytest.CaptureFixture[str]
):
    host = HostProcess(tmp_path, free_port(), "admin-token-for-the-poster-command-0123")
    host.start()
    try:
        with httpx.Client(base_url=host.url, timeout=30) as client:
            admin = Admin(client, "admin-token-for-the-poster-command-0123")
            venue = admin.ok("POST", "/venues", json=NANJING)
            manager = admin.user("manager", "venue-manager", venues=[venue["id"]])
            token = manager.headers["Authorization"].removeprefix("Bearer ")
            trust = host_trust(client)
        common = ["host", "poster", "--host", host.url, "--token", token, "--venue", venue["id"]]
        out = tmp_path / "rooms.pdf"
        assert main([*common, "--rooms", "101-102", "--size", "a5", "--out", str(out)]) == 0
        assert f"{out}: 2 page(s), A5 PDF" in capsys.readouterr().out
        rooms = read_codes(pdf_pages(out.read_bytes(), tmp_path), decoder, trust)
        assert [code.binding for code in rooms] == [
            Binding(BindingKind.ROOM, "101"),
            Binding(BindingKind.ROOM, "102"),
        ]
        listed = tmp_path / "plates.csv"
        listed.write_text("京A12345\n", encoding="utf-8")
        svg = tmp_path / "plate.svg"
        csv_options = ["--csv", str(listed), "--kind", "plate", "--format", "svg"]
        assert main([*common, *csv_options, "--out", str(svg)]) == 0
        assert NANJING["name"] in "".join(ElementTree.parse(svg).getroot().itertext())
        assert main([*common, "--csv", str(listed), "--out", str(svg)]) == 2
        assert "--csv FILE and --kind room|plate go together" in capsys.readouterr().err
        stranger = [*common[:-1], "v_nobody", "--out", str(tmp_path / "x.pdf")]
        assert main(stranger) == 1
        assert "unknown-venue: no venue v_nobody" in capsys.readouterr().err
        assert not (tmp_path / "x.pdf").exists()
    finally:
        host.stop()

"""Render a code's text as a QR PNG or inline SVG, the same way for the host's codes and tests."""

import io

import segno


def _symbol(text: str) -> segno.QRCode:
    """Error correction M; segno picks alphanumeric mode for envelope text."""
    return segno.make_qr(text, error="m", boost_error=False)


def qr_png(text: str, *, scale: int = 6, border: int = 4) -> bytes:
    """A QR code PNG."""
    buffer = io.BytesIO()
    _symbol(text).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def qr_svg(text: str, *, title: str, border: int = 4) -> str:
    """A QR code as an inline <svg> element (one unit per module, sized by the page's CSS)."""
    return _symbol(text).svg_inline(
        scale=1, border=border, omitsize=True, light="#fff", title=title, svgclass="qr"
    )

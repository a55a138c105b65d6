"""Render a code's text as a QR PNG, the same way for the host's codes and for test frames."""

import io

import segno


def qr_png(text: str, *, scale: int = 6, border: int = 4) -> bytes:
    """A QR code PNG (error correction M; segno picks alphanumeric mode for envelope text)."""
    buffer = io.BytesIO()
    segno.make_qr(text, error="m", boost_error=False).save(
        buffer, kind="png", scale=scale, border=border
    )
    return buffer.getvalue()

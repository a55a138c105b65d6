"""Fixtures for the hardware tests: the reference QR photos in ../shared/data."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
QR_PHOTO_DIRS = ("qrcode-1", "qrcode-2", "qrcode-3", "qrcode-5")


@pytest.fixture(scope="session")
def qr_photos_root() -> Path:
    root = SHARED_DATA / "qr" / "zxing-cpp"
    if not root.is_dir():
        pytest.skip(f"reference QR photos not found at {root} (the shared data folder is absent)")
    return root


@pytest.fixture(scope="session")
def qr_photos(qr_photos_root: Path) -> list[tuple[Path, str]]:
    """Each photo with the text its N.txt expects (UTF-8, line endings as in the code)."""
    photos = []
    for folder in QR_PHOTO_DIRS:
        for path in sorted((qr_photos_root / folder).iterdir()):
            if path.suffix in {".png", ".jpg", ".webp"}:
                photos.append((path, path.with_suffix(".txt").read_bytes().decode("utf-8")))
    return photos

"""Headless Chromium for the browser tests and the screen bench: Debian's, driven by Playwright.

Playwright's own browser download (`playwright install`) needs the internet; the system's
Chromium (scripts/_bootstrap installs Debian's `chromium`) is used instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("SENTINEL_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_TIMEOUT_MS = 30_000
# Kiosk screen sizes: the official Raspberry Pi touch display, and a 1080p monitor.
SCREEN_SIZES = ((800, 480), (1920, 1080))


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is not installed here; the message says which and how to fix it."""


def unavailable() -> str | None:
    """Why no headless Chromium can be started here, or None when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (the `dev` extra: pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SENTINEL_CHROMIUM)"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards; BrowserUnavailable says what is missing."""
    reason = unavailable()
    if reason is not None:
        raise BrowserUnavailable(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()

"""Headless Chromium for browser tests, the demo and the screen bench: Debian's, by Playwright.

Playwright's own browser download (`playwright install`) needs the internet; the system's
Chromium (scripts/_bootstrap installs Debian's `chromium`) is used instead. Also what a page
shows, read in one evaluation: the kiosk screen, and a phone's venue-code check-in.
"""

from __future__ import annotations

import colorsys
import importlib.util
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

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


# ---- the dashboard --------------------------------------------------------------------------

DASHBOARD = "/dashboard"


def dashboard_sign_in(page: Page, host_url: str, token: str, then: str = "") -> None:
    """Sign in to the host's dashboard in `page` with a user's token, as a person would.

    `then`: a dashboard path to land on (the role's home page without one).
    """
    page.goto(f"{host_url}{DASHBOARD}/sign-in" + (f"?then={then}" if then else ""))
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form[action$='/sign-in'] button[type=submit]")


def accessibility_problems(page: Page) -> list[str]:
    """The serious and critical axe-core violations on the page, each as "rule: where"."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{violation['id']}: {node['target']}"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
        for node in violation["nodes"]
    ]


# ---- the kiosk screen ---------------------------------------------------------------------

# Read in one evaluation, so what is returned was all on screen at the same moment; false
# (and so waited for) until the screen shows this outcome ("idle" for the idle screen).
_SHOWN = """(outcome) => {
  if (document.body.dataset.outcome !== outcome) return false;
  const visible = (element) => !element.closest("[hidden]");
  const outside = (element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && (box.top < -0.5 || box.left < -0.5
      || box.bottom > innerHeight + 0.5 || box.right > innerWidth + 0.5);
  };
  return {
    colour: getComputedStyle(document.body).backgroundColor,
    text: document.getElementById(outcome === "idle" ? "idle" : "decision").innerText,
    bar: document.querySelector(".bar").innerText,
    online: document.getElementById("online").dataset.online,
    warnings: [...document.querySelectorAll(".warnings p")].filter(visible).map((p) => p.id),
    cut_off: [...document.querySelectorAll("body *")].filter(visible).filter(outside)
      .map((element) => element.id || element.className || element.tagName),
  };
}"""

# Hue ranges (degrees) of the screen's colours.
_HUES = {"red": (345, 375), "amber": (30, 55), "green": (90, 160), "blue": (190, 240)}


def shown(page: Page, outcome: str) -> dict[str, Any]:
    """What the screen shows once it shows `outcome`; the page's default timeout bounds the wait."""
    return page.wait_for_function(_SHOWN, arg=outcome).json_value()


def colour_name(css: str) -> str:
    """A CSS rgb() colour as red, amber, green, blue, or grey for one with too little colour."""
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css)[:3])
    hue, _, saturation = colorsys.rgb_to_hls(red, green, blue)
    degrees = hue * 360 if hue * 360 >= 15 else hue * 360 + 360  # red spans 0
    if saturation >= 0.3:
        for name, (low, high) in _HUES.items():
            if low <= degrees <= high:
                return name
    return "grey"


# ---- a phone's pages ----------------------------------------------------------------------

# A citizen's page as it reads: its kind, each part's words (one line each), the colours of the
# code and the decision, and whether anything sticks out sideways (a phone scrolls down only).
_PHONE = """() => {
  const words = (id) => {
    const element = document.getElementById(id);
    return element ? element.innerText.replace(/\\s+/g, " ").trim() : null;
  };
  const background = (id) => {
    const element = document.getElementById(id);
    return element ? getComputedStyle(element).backgroundColor : null;
  };
  const body = document.body;
  const parts = ["colour", "headline-zh", "headline-en", "reason-zh", "reason-en", "venue",
    "address", "binding", "time", "test", "recorded", "repeat", "title-zh", "title-en",
    "text-zh", "text-en", "valid-until"];
  return {
    page: body.dataset.page,
    outcome: body.dataset.outcome || null,
    notice: body.dataset.notice || null,
    ...Object.fromEntries(parts.map((id) => [id, words(id)])),
    colour_css: background("colour"),
    decision_css: background("decision"),
    speak_button: Boolean(document.getElementById("speak")?.checkVisibility()),
    sideways: document.documentElement.scrollWidth > innerWidth,
  };
}"""


def phone_shown(page: Page) -> dict[str, Any]:
    """What a citizen's page (check-in, personal code, notice) shows, read once it has loaded."""
    return page.evaluate(_PHONE)

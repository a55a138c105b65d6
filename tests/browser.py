"""Reading the kiosk screen in a browser: what it shows at one moment, and its colour's name."""

from __future__ import annotations

import colorsys
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

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

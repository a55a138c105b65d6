"""The demo's parts in headless Chromium: the kiosk screen's decisions, and a phone check-in.

The kiosk screen: a kiosk agent runs again with its screen on 127.0.0.1 and an emulated ID-card
module; three holders lay their cards on it (one green, one red, one the host does not know),
and the screen is saved at 800x480 idle and at each decision: pass, deny, refer. The phone: a
citizen opens their sign-in link, then the venue's code, as a phone camera would, at 390x844;
what the page showed is read back, and both pages are saved.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hardware.idcard.ga467 import IdCardText
from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from sentinel.browser import SCREEN_SIZES, phone_shown, shown
from shared.idnumber import id_check_character

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

KIOSK_SIZE = SCREEN_SIZES[0]  # the Raspberry Pi touch display
PHONE_SIZE = (390, 844)  # a phone's viewport, in CSS pixels
PAGE_TIMEOUT_MS = 15_000  # every wait of a page is bounded by this
SCREEN_HOLD_SECONDS = 4.0  # how long a decision stays up: saved well within it
ONLINE_SECONDS = 60.0
STOP_SECONDS = 60.0  # the agent syncs what it recorded before it exits

UNKNOWN_NUMBER = "11010119850101001" + id_check_character("11010119850101001")
# Three holders at the kiosk; the host knows the first two. Fictional: the first is the
# national standard's example card, the others valid numbers of no one.
CARDS: dict[str, IdCardText] = {
    "pass": SAMPLE_TEXT,
    "deny": dataclasses.replace(SAMPLE_TEXT, name="李四", id_number="110101199003071233"),
    "refer": dataclasses.replace(SAMPLE_TEXT, name="王五", id_number=UNKNOWN_NUMBER),
}
REGISTERED = {"pass": "green", "deny": "red"}  # the register's colour of each known holder


def wait_until_online(url: str, log: Path, timeout: float = ONLINE_SECONDS) -> None:
    """Until the agent's screen answers and says the host has answered it (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "state.json", timeout=2).json()["status"]["online"]:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise RuntimeError(f"the kiosk screen never showed the host online; see {log}")


def _page(browser: Browser, size: tuple[int, int], *, mobile: bool = False) -> Page:
    width, height = size
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    return context.new_page()


def kiosk_screenshots(
    browser: Browser, agent_command: list[str], screen_port: int, workdir: Path, shots: Path
) -> dict[str, Any]:
    """Run a kiosk agent with its screen and an ID-card module; save the screen at each state.

    `agent_command` runs the agent over a source of frames, looping; the module and the screen
    are added here. Returns each state's screenshot and what the screen said then.
    """
    address = f"127.0.0.1:{screen_port}"
    url = f"http://{address}/"
    options = ["--screen", address, "--screen-hold", str(SCREEN_HOLD_SECONDS)]
    saved: dict[str, Any] = {}
    log = workdir / "kiosk-screen.log"
    with SamEmulator(link=workdir / "ttyUSB-sam") as module, log.open("w") as output:
        agent = subprocess.Popen(
            [*agent_command, "--sam", module.port, *options],
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
        try:
            wait_until_online(url, log)
            page = _page(browser, KIOSK_SIZE)
            page.goto(url)
            saved["idle"] = _save(page, shown(page, "idle"), shots / "kiosk-idle.png")
            for outcome, card in CARDS.items():
                module.insert(card)
                saved[outcome] = _save(page, shown(page, outcome), shots / f"kiosk-{outcome}.png")
                module.remove()
            page.context.close()
        finally:
            agent.send_signal(signal.SIGTERM)  # it syncs what it recorded, then exits
            try:
                status = agent.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
                raise RuntimeError(f"the kiosk with the screen did not stop; see {log}") from None
    if status != 0:
        raise RuntimeError(f"the kiosk with the screen exited {status}; see {log}")
    return saved


def _save(page: Page, seen: dict[str, Any], path: Path) -> dict[str, Any]:
    page.screenshot(path=path)
    lines = [line.strip() for line in seen["text"].splitlines() if line.strip()]
    return {"screenshot": str(path), "text": lines}


def phone_check_in(
    browser: Browser, sign_in_url: str, venue_url: str, shots: Path
) -> dict[str, Any]:
    """Sign in, then open the venue code as a phone camera does; what the page showed."""
    page = _page(browser, PHONE_SIZE, mobile=True)
    try:
        page.goto(sign_in_url)  # the host sets the session cookie and shows the person's code
        personal = phone_shown(page)
        if personal["page"] != "me":
            raise RuntimeError(f"the sign-in link showed {personal['notice'] or personal['page']}")
        page.screenshot(path=shots / "phone-code.png")
        page.goto(venue_url)
        checkin = phone_shown(page)
        page.screenshot(path=shots / "phone-checkin.png")
    finally:
        page.context.close()
    return {
        "page": checkin["page"],
        "decision": checkin["outcome"],
        "colour": checkin["colour"],
        "headline": f"{checkin['headline-zh']} {checkin['headline-en']}",
        "reason": f"{checkin['reason-zh']} / {checkin['reason-en']}",
        "venue": checkin["venue"],
        "address": checkin["address"],
        "time": checkin["time"],
        "test": checkin["test"],
        "recorded": checkin["recorded"] or checkin["repeat"],
        "new": checkin["recorded"] is not None,  # a check-in of its own, not a repeat
        "screenshots": [str(shots / "phone-code.png"), str(shots / "phone-checkin.png")],
    }

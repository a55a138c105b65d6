"""The screen's page in headless Chromium: colours, both languages, the fit at both kiosk sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from device.pipeline import SHOW_ID_REASON, Event
from device.screen.server import ScreenOptions, ScreenServer
from hardware.voice.language import Language
from hardware.voice.prompts import prompt_for
from sentinel.browser import SCREEN_SIZES, colour_name, shown
from sentinel.demo import free_port
from shared.healthcode import NucleicTest, TestResult
from shared.policy import Decision, Outcome
from shared.verification import CredentialKind
from tests.device.screen.test_server import Status

TEST = NucleicTest(datetime.now(UTC) - timedelta(hours=30), TestResult.NEGATIVE)
# Each outcome, with the longest texts the screen has to fit; no two in a row alike.
SHOWN = [
    ("green", Event("sam", CredentialKind.ID_CARD, Decision(Outcome.PASS), "c_1",
                    "1101**********1234", 36.4, TEST)),
    ("red", Event("camera", CredentialKind.HEALTH, Decision(Outcome.DENY, ("fever: 38.2",)),
                  "c_2", None, 38.2, TEST)),
    ("amber", Event("sam", CredentialKind.ID_CARD,
                    Decision(Outcome.REFER, ("id-card-not-valid: out of date",)), "c_3",
                    "1101**********5678")),
    ("red", Event("camera+sam", CredentialKind.HEALTH,
                  Decision(Outcome.DENY, ("paper-code-id-mismatch: another holder",)), "c_4",
                  "1101**********9999", 36.6, TEST)),
    ("blue", Event("camera", CredentialKind.HEALTH, Decision(Outcome.IGNORED, (SHOW_ID_REASON,)))),
]  # fmt: skip


@pytest.fixture
def screen() -> Any:
    server = ScreenServer(ScreenOptions("127.0.0.1", 0, hold_seconds=60), Status())
    server.start()
    yield server
    server.close()


@pytest.mark.parametrize("size", SCREEN_SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_each_outcome_in_its_colour_in_both_languages_fits_the_screen(
    size: tuple[int, int], screen: ScreenServer, open_page, screenshot
) -> None:
    page = open_page(*size)
    page.goto(screen.url)
    shown(page, "idle")
    for colour, event in SHOWN:
        screen.show(event)
        outcome = event.decision.outcome.value
        seen = shown(page, outcome)
        screenshot(page, f"{outcome}-{event.checkin_id}-{size[0]}x{size[1]}")
        assert colour_name(seen["colour"]) == colour
        reasons, celsius = event.decision.reasons, event.temperature_c
        for language in (Language.MANDARIN, Language.ENGLISH):
            prompt = prompt_for(outcome, reasons, celsius, language)
            assert prompt is not None and prompt.written in seen["text"]
        if event.holder:
            assert event.holder in seen["text"]
        if event.test:
            assert "阴性" in seen["text"] and "30 h ago" in seen["text"]
        if celsius is not None:
            assert f"{celsius:.1f} °C" in seen["text"]
        assert seen["cut_off"] == []


def test_the_link_and_the_warnings_follow_the_status(open_page) -> None:
    status = Status()
    server = ScreenServer(ScreenOptions("127.0.0.1", 0), status)
    server.start()
    try:
        page = open_page(800, 480)
        page.goto(server.url)
        idle = shown(page, "idle")
        assert (idle["online"], idle["warnings"]) == ("yes", [])
        status.now = status.now.__class__(
            "Library", None, online=False, clock_trusted=False, deny_list_stale=True,
            now=status.now.now,
        )  # fmt: skip
        page.wait_for_function("() => document.getElementById('online').dataset.online == 'no'")
        idle = shown(page, "idle")
        assert idle["warnings"] == ["warn-clock", "warn-denylist"]
        assert "离线 Offline" in idle["bar"]
    finally:
        server.close()


def test_the_page_says_it_is_connecting_and_comes_back_when_the_agent_restarts(
    open_page,
) -> None:
    port = free_port()
    first = ScreenServer(ScreenOptions("127.0.0.1", port), Status())
    first.start()
    page = open_page(800, 480)
    page.goto(first.url)
    shown(page, "idle")
    first.close()
    page.wait_for_selector("#warn-connection", state="visible")
    second = ScreenServer(ScreenOptions("127.0.0.1", port), Status())
    second.start()
    try:
        page.wait_for_selector("#warn-connection", state="hidden")  # reconnected by itself
        second.show(SHOWN[0][1])
        assert colour_name(shown(page, "pass")["colour"]) == "green"
    finally:
        second.close()

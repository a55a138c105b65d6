"""A phone's venue-code check-in in headless Chromium at a phone's size, against a real host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sentinel.browser import colour_name, phone_shown
from sentinel.demo import Admin, HostProcess, on_host
from sentinel.demo_browser import PHONE_SIZE
from shared import healthcode
from shared.healthcode import CodeKind, Colour
from shared.messages import PublishedKey, trust_store
from tests.conftest import PAGE_TIMEOUT_MS
from tests.host.test_admin import decode_qr

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.integration
VENUE = "市图书馆 City Library"
# The page's voice, heard: each utterance's language and words, in order.
RECORD_SPEECH = """
window.spoken = [];
Object.defineProperty(window, "speechSynthesis", {
  value: { speak: (u) => window.spoken.push([u.lang, u.text]), cancel: () => {} },
});
"""
NO_SPEECH = "delete window.speechSynthesis; delete window.SpeechSynthesisUtterance;"


@pytest.fixture
def phone_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Opens a phone's browser (its own cookies), closed after the test."""
    contexts: list[BrowserContext] = []

    def open_phone(*, script: str | None = None, javascript: bool = True) -> BrowserContext:
        width, height = PHONE_SIZE
        context = browser.new_context(
            viewport={"width": width, "height": height},
            is_mobile=True,
            has_touch=True,
            java_script_enabled=javascript,
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        if script is not None:
            context.add_init_script(script)
        contexts.append(context)
        return context

    yield open_phone
    for context in contexts:
        context.close()


def watched(page: Page, host: HostProcess) -> tuple[list[str], list[str]]:
    """The page's requests to anywhere but the host, and its errors (scripts, the CSP's)."""
    elsewhere: list[str] = []
    errors: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(host.url) else elsewhere.append(request.url),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    return elsewhere, errors


def code_on(page: Page, path: Path) -> str:
    """The text of the QR code the personal page shows, read from a screenshot of it."""
    return decode_qr(page.locator("#code").screenshot(path=path))


def test_a_phone_signs_in_then_checks_in_once_through_a_venue_code(
    host: HostProcess, admin: Admin, phone_context, screenshot, tmp_path: Path
) -> None:
    venue = admin.venue(VENUE, "2 Book Street", "public_place")
    person_ref = admin.person("110101199003071233", "green", 5)
    keys = admin.http.get("/keys").json()["keys"]
    trust = trust_store([PublishedKey.model_validate(key) for key in keys])

    context = phone_context(script=RECORD_SPEECH)
    page = context.new_page()
    elsewhere, errors = watched(page, host)
    page.clock.install()  # the page's own clock, moved on below: no waiting for real minutes
    page.goto(on_host(admin.sign_in(person_ref).url, host.url))
    personal = phone_shown(page)
    assert (personal["page"], personal["colour"]) == ("me", "绿码 Green code")
    assert colour_name(personal["colour_css"]) == "green" and not personal["sideways"]
    first = code_on(page, tmp_path / "code-1.png")
    code = healthcode.read(first, trust, now=None)
    assert (code.person_ref, code.kind, code.colour) == (person_ref, CodeKind.DYNAMIC, Colour.GREEN)
    screenshot(page, "phone-code")

    # Half a minute before the code expires, the page fetches a new one and shows it in place.
    svg = page.locator("#code").inner_html()
    page.clock.fast_forward(150_000)
    page.wait_for_function("(svg) => document.getElementById('code').innerHTML !== svg", arg=svg)
    renewed = code_on(page, tmp_path / "code-2.png")
    assert renewed != first and healthcode.read(renewed, trust, now=None).person_ref == person_ref

    # The camera opens the poster's URL: the host records the check-in and the page says so.
    page.goto(on_host(venue.code_url, host.url))
    seen = phone_shown(page)
    screenshot(page, "phone-checkin")
    assert (seen["page"], seen["outcome"], seen["colour"]) == ("checkin", "pass", "绿码 Green code")
    assert colour_name(seen["colour_css"]) == "green"
    assert colour_name(seen["decision_css"]) == "green"
    assert (seen["headline-zh"], seen["headline-en"]) == ("通过", "Pass")
    assert (seen["reason-zh"], seen["reason-en"]) == ("绿码，请通行", "Green code, please enter.")
    assert (seen["venue"], seen["address"]) == (VENUE, "2 Book Street")
    assert "阴性" in seen["test"] and "negative · 5 h ago" in seen["test"]
    assert seen["recorded"] == "已登记 Checked in" and seen["repeat"] is None
    assert seen["speak_button"] and not seen["sideways"]
    assert page.evaluate("window.spoken") == [
        ["zh-CN", f"{VENUE}，绿码，请通行"],
        ["en-US", f"{VENUE}. Green code, please enter."],
    ]
    assert admin.stats().checkins == 1
    (hour,) = admin.counts(venue.id)
    assert (hour.total, hour.passed) == (1, 1)

    page.reload()  # within the repeat window: the same check-in, nothing new
    again = phone_shown(page)
    assert again["repeat"] is not None and again["time"] == seen["time"]
    assert admin.stats().checkins == 1
    assert elsewhere == [] and errors == []


def test_the_check_in_needs_no_script_and_the_voice_no_speech_engine(
    host: HostProcess, admin: Admin, phone_context
) -> None:
    venue = admin.venue(VENUE, "2 Book Street", "public_place")
    plain = phone_context(javascript=False).new_page()
    plain.goto(on_host(admin.sign_in(admin.person("110101199003071233", "red", 5)).url, host.url))
    plain.goto(on_host(venue.code_url, host.url))
    assert plain.locator("body").get_attribute("data-outcome") == "deny"
    assert plain.locator("#reason-en").inner_text() == "Red code, please do not enter."
    assert admin.stats().checkins == 1

    quiet = phone_context(script=NO_SPEECH).new_page()
    _, errors = watched(quiet, host)
    quiet.goto(on_host(admin.sign_in(admin.person("11010519491231002X", "green", 5)).url, host.url))
    quiet.goto(on_host(venue.code_url, host.url))
    seen = phone_shown(quiet)
    assert seen["outcome"] == "pass" and not seen["speak_button"]
    assert errors == []
    assert admin.stats().checkins == 2

    # Without a session: how to check in, and nothing recorded.
    stranger = phone_context().new_page()
    stranger.goto(on_host(venue.code_url, host.url))
    told = phone_shown(stranger)
    assert (told["page"], told["notice"], told["venue"]) == ("notice", "sign-in-needed", VENUE)
    assert admin.stats().checkins == 2

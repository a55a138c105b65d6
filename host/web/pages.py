"""The citizen's pages, rendered on the server: a venue-code check-in, their code, notices.

Mobile first, large type, Chinese with English. The decision's words are the kiosk's (the
written side of hardware.voice.prompts, which the host may not import; a test keeps the two
alike), so a phone and a kiosk never word one decision differently. Nothing is fetched from
elsewhere: the Content-Security-Policy allows this host only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from host.storage.base import DEFAULT_TIMEZONE, PersonRecord, VenueRecord
from host.storage.citizens import PhoneVisit
from host.storage.sqlbase import TokenProblem
from shared.healthcode import Colour, HealthCode, NucleicTest, TestResult
from shared.policy import Outcome
from shared.qrimage import qr_svg
from shared.venuecode import Binding, BindingKind

HERE = Path(__file__).parent
STATIC = HERE / "static"
ASSETS_PATH = "/assets"  # where the app mounts STATIC
HEADERS = {
    "Cache-Control": "no-store",  # one URL answers each phone differently
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
RENEW_BEFORE_EXPIRY_S = 30  # the personal page fetches a new code this long before it expires

Words = tuple[str, str]  # (Chinese, English)

COLOURS: dict[Colour, Words] = {
    Colour.GREEN: ("绿码", "Green code"),
    Colour.YELLOW: ("黄码", "Yellow code"),
    Colour.RED: ("红码", "Red code"),
}
HEADLINES: dict[Outcome, Words] = {
    Outcome.PASS: ("通过", "Pass"),
    Outcome.DENY: ("禁止通行", "Do not enter"),
    Outcome.REFER: ("请稍候", "Staff check"),
}
RESULTS: dict[TestResult, Words] = {
    TestResult.NEGATIVE: ("阴性", "negative"),
    TestResult.POSITIVE: ("阳性", "positive"),
}
BINDINGS: dict[BindingKind, Words] = {
    BindingKind.ROOM: ("房间", "Room"),
    BindingKind.PLATE: ("车牌", "Plate"),
}
GENERIC: dict[Outcome, Words] = {
    Outcome.PASS: ("绿码，请通行", "Green code, please enter."),
    Outcome.DENY: ("核验未通过，请勿通行", "Check failed, please do not enter."),
    Outcome.REFER: ("请稍候，工作人员将为您核验", "Please wait, staff will check for you."),
}
# A reason code (or code/shown) a phone check-in can meet -> the outcome its words suit, and
# the words. A positive test or a deny-list entry is said as a plain "check failed", as the
# kiosk says it: a phone speaks aloud too.
REASONS: dict[str, tuple[Outcome, Words]] = {
    "colour-not-accepted": (
        Outcome.DENY,
        ("非绿码，请勿通行", "Not a green code, please do not enter."),
    ),
    "colour-not-accepted/red": (Outcome.DENY, ("红码，请勿通行", "Red code, please do not enter.")),
    "colour-not-accepted/yellow": (
        Outcome.DENY,
        ("黄码，请勿通行", "Yellow code, please do not enter."),
    ),
    "no-test": (
        Outcome.DENY,
        ("无核酸检测记录，请勿通行", "No test on record, please do not enter."),
    ),
    "test-positive": (Outcome.DENY, GENERIC[Outcome.DENY]),
    "test-too-old": (
        Outcome.DENY,
        ("核酸检测已过期，请勿通行", "Test too old, please do not enter."),
    ),
    "deny-listed": (Outcome.DENY, GENERIC[Outcome.DENY]),
    "no-temperature": (Outcome.REFER, ("请测量体温", "Please have your temperature taken.")),
}


@dataclass(frozen=True)
class Notice:
    """A page that only tells something: why nothing happened, and what to do."""

    name: str  # for tests and logs: sign-in-needed, invalid-code, ...
    title: Words
    text: Words


SIGN_IN_NEEDED = Notice(
    "sign-in-needed",
    ("请先登录", "Sign in first"),
    (
        "未登记。请先在健康码应用中打开您的个人页面以登录，再用手机相机扫描此场所码。",
        "Nothing was recorded. Open your personal page in the city health app first (that"
        " signs you in), then scan this venue code again with your phone's camera.",
    ),
)
INVALID_CODE = Notice(
    "invalid-code",
    ("无效场所码", "Not a valid venue code"),
    (
        "此码已损坏、被改动或非本系统签发，未登记。请扫描场所张贴的原码，或联系工作人员。",
        "This code is damaged, altered or was not issued here. Nothing was recorded. Scan"
        " the code posted at the venue, or ask staff.",
    ),
)
UNKNOWN_VENUE = Notice(
    "unknown-venue",
    ("场所未登记", "Unknown venue"),
    ("此场所已不在系统中，未登记。", "This venue is no longer registered. Nothing was recorded."),
)
NOT_SIGNED_IN = Notice(
    "not-signed-in",
    ("未登录", "Not signed in"),
    (
        "请从健康码应用打开您的个人页面。",
        "Open your personal page from the city health app.",
    ),
)
SIGN_IN_REFUSED: dict[TokenProblem, Notice] = {
    TokenProblem.UNKNOWN: Notice(
        "sign-in-unknown",
        ("登录链接无效", "Not a valid sign-in link"),
        (
            "请从健康码应用重新打开您的个人页面。",
            "Open your personal page from the city health app again.",
        ),
    ),
    TokenProblem.USED: Notice(
        "sign-in-used",
        ("登录链接已使用", "Sign-in link already used"),
        (
            "每个登录链接只能使用一次。请从健康码应用重新打开您的个人页面。",
            "A sign-in link works once. Open your personal page from the city health app again.",
        ),
    ),
    TokenProblem.EXPIRED: Notice(
        "sign-in-expired",
        ("登录链接已过期", "Sign-in link expired"),
        (
            "登录链接仅在发出后几分钟内有效。请从健康码应用重新打开您的个人页面。",
            "A sign-in link works for a few minutes only. Open your personal page from the"
            " city health app again.",
        ),
    ),
}

# The one template environment of the host's pages (the citizens' and the dashboard's).
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _render(name: str, **context: Any) -> str:
    return TEMPLATES.get_template(name).render(assets=ASSETS_PATH, **context)


def decision_words(outcome: Outcome, reasons: Sequence[str]) -> Words:
    """What a decision says, as the kiosk says it.

    The first reason with words for this outcome (its shown value first, as
    colour-not-accepted/red), else the outcome's own.
    """
    for reason in reasons:
        code, _, detail = (part.strip() for part in reason.partition(":"))
        shown = detail.partition(";")[0].strip()
        for key in (f"{code}/{shown}", code):
            entry = REASONS.get(key)
            if entry is not None and entry[0] is outcome:
                return entry[1]
    return GENERIC[outcome]


def nucleic_test_words(test: NucleicTest | None, now: datetime, zone: ZoneInfo) -> Words:
    """The latest test: when it was sampled (local time), its result, and how long ago."""
    if test is None:
        return "无核酸检测记录", "No test on record"
    sampled = f"{test.sampled_at.astimezone(zone):%m-%d %H:%M}"
    hours = max(0, int((now - test.sampled_at).total_seconds() // 3600))
    result_zh, result_en = RESULTS[test.result]
    return (
        f"{sampled} 采样 · {result_zh} · {hours} 小时前",
        f"sampled {sampled} · {result_en} · {hours} h ago",
    )


def _binding(binding: Binding | None) -> dict[str, str] | None:
    if binding is None:
        return None
    zh, en = BINDINGS[binding.kind]
    return {"zh": zh, "en": en, "value": binding.value}


def notice(notice: Notice, venue: VenueRecord | None = None, binding: Binding | None = None) -> str:
    """A notice page, naming the venue whose code was opened when there is one."""
    return _render("notice.html", notice=notice, venue=venue, binding=_binding(binding))


def checkin_page(
    venue: VenueRecord,
    binding: Binding | None,
    person: PersonRecord,
    visit: PhoneVisit,
    now: datetime,
) -> str:
    """The page a phone shows after opening a venue code: colour, venue, time, test, decision."""
    checkin = visit.checkin
    outcome = Outcome(checkin.outcome)
    zone = ZoneInfo(venue.timezone)
    reason = decision_words(outcome, checkin.reasons)
    where = venue.name if binding is None else f"{venue.name} {binding.value}"
    return _render(
        "checkin.html",
        venue=venue,
        binding=_binding(binding),
        colour=person.colour.value,
        colour_words=COLOURS[person.colour],
        outcome=outcome.value,
        headline=HEADLINES[outcome],
        reason=reason,
        time=f"{checkin.scanned_at.astimezone(zone):%Y-%m-%d %H:%M}",
        test=nucleic_test_words(person.test, now, zone),
        repeat=not visit.new,
        say=(f"{where}，{reason[0]}", f"{where}. {reason[1]}"),
    )


def code_view(person: PersonRecord, code: HealthCode, text: str) -> dict[str, Any]:
    """The personal page's code and what goes with it; also what the page renews itself with."""
    zone = ZoneInfo(DEFAULT_TIMEZONE)
    lifetime_s = (code.expires_at - code.issued_at).total_seconds()
    colour_zh, colour_en = COLOURS[code.colour]
    test_zh, test_en = nucleic_test_words(person.test, code.issued_at, zone)
    return {
        "svg": qr_svg(text, title=f"{colour_zh} {colour_en}"),
        "colour": code.colour.value,
        "colour_zh": colour_zh,
        "colour_en": colour_en,
        "test_zh": test_zh,
        "test_en": test_en,
        "valid_until": f"{code.expires_at.astimezone(zone):%H:%M:%S}",
        "renew_in_ms": int(max(lifetime_s - RENEW_BEFORE_EXPIRY_S, lifetime_s / 2) * 1000),
    }


def personal_page(person: PersonRecord, code: HealthCode, text: str) -> str:
    """The citizen's own page: their dynamic code framed in its colour, renewed before expiry."""
    return _render("me.html", code=code_view(person, code, text))

"""What the kiosk screen shows: a decision in Chinese and English, and the kiosk's status.

The reason is the voice prompt's text (hardware.voice.prompts), so screen and voice never
disagree, and what the voice keeps from the queue behind (a positive test, a deny-list entry)
the screen keeps too: a positive test's result is not shown, only a plain "check failed".
Only the masked holder ever reaches the screen; the person reference never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from device.pipeline import Event
from hardware.voice.language import Language
from hardware.voice.prompts import prompt_for
from shared.healthcode import NucleicTest, TestResult
from shared.idnumber import mask_id_number
from shared.policy import Outcome

# The screen's own words, above the reason: one per outcome, so no one has to read a colour.
HEADLINES: dict[Outcome, tuple[str, str]] = {
    Outcome.PASS: ("通过", "Pass"),
    Outcome.DENY: ("禁止通行", "Do not enter"),
    Outcome.REFER: ("请稍候", "Staff check"),
    Outcome.IGNORED: ("请注意", "Please note"),  # a scan that asks for something (an ID card)
}
SHOWN_RESULTS: dict[TestResult, tuple[str, str]] = {TestResult.NEGATIVE: ("阴性", "negative")}


@dataclass(frozen=True)
class ScreenStatus:
    """What the screen always shows beside a decision; `now` is left out of comparisons."""

    venue: str
    timezone: str | None  # the venue's IANA time zone; None: the kiosk's own
    online: bool  # the host answered the last sync round
    clock_trusted: bool
    deny_list_stale: bool  # no deny list, or one the host has not confirmed for too long
    now: datetime = field(compare=False)
    out_of_service: bool = False  # the host revoked the kiosk: staff decide every check

    def as_json(self) -> dict[str, object]:
        return {
            "venue": self.venue,
            "timezone": self.timezone,
            "online": self.online,
            "clock_trusted": self.clock_trusted,
            "deny_list_stale": self.deny_list_stale,
            "out_of_service": self.out_of_service,
            "now_ms": int(self.now.timestamp() * 1000),
        }

    def local(self, moment: datetime) -> datetime:
        """A moment in the venue's time zone (the kiosk's own without one)."""
        return moment.astimezone(ZoneInfo(self.timezone) if self.timezone else None)


def decision_view(event: Event, status: ScreenStatus) -> dict[str, object] | None:
    """A decision as the screen shows it, texts chosen; None for a scan that tells nothing."""
    outcome = event.decision.outcome
    reasons, celsius = event.decision.reasons, event.temperature_c
    zh = prompt_for(outcome, reasons, celsius, Language.MANDARIN)
    en = prompt_for(outcome, reasons, celsius, Language.ENGLISH)
    if zh is None or en is None:  # a repeat, plain text, a venue code: nothing to tell
        return None
    headline_zh, headline_en = HEADLINES[outcome]
    return {
        "outcome": outcome.value,
        "headline": {"zh": headline_zh, "en": headline_en},
        "reason": {"zh": zh.written, "en": en.written},
        "holder": None if event.holder is None else mask_id_number(event.holder),  # masked twice
        "test": _test_view(event.test, status),
        "temperature": None if celsius is None else f"{celsius:.1f} °C",
    }


def _test_view(test: NucleicTest | None, status: ScreenStatus) -> dict[str, str] | None:
    """The latest test's sample time (venue time), its result unless positive, and its age."""
    if test is None or test.result not in SHOWN_RESULTS:
        return None
    sampled = f"{status.local(test.sampled_at):%m-%d %H:%M}"
    hours = max(0, int((status.now - test.sampled_at).total_seconds() // 3600))
    result_zh, result_en = SHOWN_RESULTS[test.result]
    return {
        "zh": f"{sampled} 采样 · {result_zh} · {hours} 小时前",
        "en": f"sampled {sampled} · {result_en} · {hours} h ago",
    }

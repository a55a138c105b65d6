"""What the kiosk screen shows: a decision in Chinese and English, and the kiosk's status.

The reason is the voice prompt's text (hardware.voice.prompts), so screen and voice never
disagree, and what the voice keeps from the queue behind (a positive test, a deny-list entry)
the screen keeps too: a positive test's result is not shown, only a plain "check failed".
Only the masked holder ever reaches the screen; the person reference never does. The staff's
panels (referrals waiting for them; a handheld's scan, vehicle and occupants) are drawn from
the same views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from device.handheld import Handheld
from device.pipeline import Event
from device.staff import OpenReferral, StaffDesk, staff_reason
from hardware.voice.language import Language
from hardware.voice.prompts import prompt_for
from shared.healthcode import NucleicTest, TestResult
from shared.idnumber import mask_id_number
from shared.messages import StaffAction, StaffReason
from shared.policy import Outcome
from shared.venuecode import Binding

# The screen's own words, above the reason: one per outcome, so no one has to read a colour.
HEADLINES: dict[Outcome, tuple[str, str]] = {
    Outcome.PASS: ("通过", "Pass"),
    Outcome.DENY: ("禁止通行", "Do not enter"),
    Outcome.REFER: ("请稍候", "Staff check"),
    Outcome.IGNORED: ("请注意", "Please note"),  # a scan that asks for something (an ID card)
}
SHOWN_RESULTS: dict[TestResult, tuple[str, str]] = {TestResult.NEGATIVE: ("阴性", "negative")}
# The staff's choices on screen, and how a decision made with them is shown.
STAFF_ACTIONS: dict[StaffAction, tuple[str, str]] = {
    StaffAction.LET_THROUGH: ("放行", "Let through"),
    StaffAction.REFUSE: ("拒绝", "Refuse"),
}
STAFF_REASONS: dict[StaffReason, tuple[str, str]] = {
    StaffReason.EMERGENCY: ("紧急就医", "Emergency medical care"),
    StaffReason.IDENTITY_CHECKED: ("人工核验身份", "Identity checked by hand"),
    StaffReason.OTHER: ("其他", "Other"),
}
OCCUPANT_FIELDS = ("outcome", "headline", "reason", "holder", "staff", "checkin_id")


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
        "staff": _staff_view(event),
        # A referral's check-in, for staff to settle it from the screen.
        "checkin_id": event.checkin_id if outcome is Outcome.REFER else None,
    }


def _staff_view(event: Event) -> dict[str, str] | None:
    """Who of the staff decided, and why; None for a decision that was not theirs."""
    reason = staff_reason(event)
    if reason is None:
        return None
    zh, en = STAFF_REASONS[reason]
    return {"zh": f"工作人员 {event.staff_id} · {zh}", "en": f"Staff {event.staff_id} · {en}"}


def referrals_view(referrals: list[OpenReferral], status: ScreenStatus) -> list[dict[str, object]]:
    """The referrals waiting for staff, newest first: when (venue time), whom, why."""
    shown = []
    for referral in referrals:
        view = decision_view(referral.event, status)
        if view is not None:
            shown.append(
                {
                    "checkin_id": referral.event.checkin_id,
                    "at": f"{status.local(referral.at):%H:%M:%S}",
                    "holder": view["holder"],
                    "reason": view["reason"],
                }
            )
    return shown


def handheld_view(handheld: Handheld, status: ScreenStatus) -> dict[str, object]:
    """A handheld's scan (running or not) and open vehicle: its plate and occupants' results."""
    vehicle = handheld.vehicle()
    occupants = []
    if vehicle is not None:
        for event in vehicle.occupants:
            view = decision_view(event, status)
            if view is not None:
                occupants.append({key: view[key] for key in OCCUPANT_FIELDS})
    return {
        "scanning": handheld.trigger.armed(),
        "vehicle": None
        if vehicle is None
        else {"plate": Binding.parse(vehicle.group.binding).value, "occupants": occupants},
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


def panels_view(
    desk: StaffDesk | None, handheld: Handheld | None, status: ScreenStatus
) -> dict[str, object]:
    """The staff's panels there are: referrals waiting for them, a handheld's."""
    panels: dict[str, object] = {}
    if desk is not None:
        panels["referrals"] = referrals_view(desk.open_referrals(), status)
    if handheld is not None:
        panels["handheld"] = handheld_view(handheld, status)
    return panels

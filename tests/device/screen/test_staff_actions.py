"""The screen's staff actions over HTTP: only from its own page, a PIN to settle, handheld-only."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from device.agent import Agent, RunOptions
from device.pins import StaffPins
from device.screen.server import ScreenOptions
from shared.idnumber import id_check_character
from shared.messages import DeviceForm
from shared.sealed import CardIdentity, DocumentType

PIN = "482916"
TYPED = "11010119850101001" + id_check_character("11010119850101001")


@pytest.fixture
def start_agent(enrolled_state: Path) -> Iterator[Callable[[DeviceForm], Agent]]:
    """Agents of a form with their screen up on a free loopback port, and staff S01's PIN."""
    agents: list[Agent] = []

    def start(form: DeviceForm) -> Agent:
        options = RunOptions(form=form, screen=ScreenOptions("127.0.0.1", 0))
        agent = Agent(enrolled_state, decoder=None, options=options)  # type: ignore[arg-type]
        StaffPins(agent.store).add("S01", PIN)
        assert agent.screen is not None
        agent.screen.start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        assert agent.screen is not None
        agent.screen.close()
        agent.client.close()


class Page:
    """What the screen's own page sends: its token, its origin; `headers` change them."""

    def __init__(self, url: str) -> None:
        self.url = url
        drawn = httpx.get(url).text
        self.token = re.search(r'data-token="([^"]+)"', drawn).group(1)  # type: ignore[union-attr]

    def post(self, path: str, body: dict, **headers: str) -> httpx.Response:
        sent = {"X-Screen-Token": self.token, "Origin": self.url.rstrip("/")} | headers
        return httpx.post(self.url + path.lstrip("/"), json=body, headers=sent)


def referral_of(agent: Agent) -> str:
    identity = CardIdentity.of(DocumentType.CN_ID, "CHN", TYPED)
    checkin_id = agent.pipeline.present_id(identity, "sam").checkin_id
    assert checkin_id is not None
    return checkin_id


def test_only_the_screens_own_page_may_act(start_agent: Callable[[DeviceForm], Agent]) -> None:
    agent = start_agent(DeviceForm.KIOSK)
    assert agent.screen is not None
    page = Page(agent.screen.url)
    settle = {"checkin_id": referral_of(agent), "action": "let-through", "reason": "emergency"}
    origin = page.url.rstrip("/")
    refused = {
        "no token": page.post("/staff/decide", settle | {"pin": PIN}, **{"X-Screen-Token": ""}),
        "another site": page.post(
            "/staff/decide", settle | {"pin": PIN}, Origin="https://evil.example"
        ),
        "cross-site fetch": page.post(
            "/staff/decide", settle | {"pin": PIN}, **{"Sec-Fetch-Site": "cross-site"}
        ),
        "a rebound name": page.post(
            "/staff/decide",
            settle | {"pin": PIN},
            Host="evil.example",
            Origin=origin.replace("127.0.0.1", "evil.example"),
        ),
    }
    assert {why: answer.json()["error"] for why, answer in refused.items()} == {
        "no token": "bad-token",
        "another site": "cross-origin",
        "cross-site fetch": "cross-origin",
        "a rebound name": "wrong-host",
    }
    assert all(answer.status_code == 403 for answer in refused.values())
    assert agent.store.staff_counts() == (0, 0)


def test_a_referral_is_settled_with_the_pin_only(
    start_agent: Callable[[DeviceForm], Agent],
) -> None:
    agent = start_agent(DeviceForm.KIOSK)
    assert agent.screen is not None
    page = Page(agent.screen.url)
    checkin_id = referral_of(agent)
    waiting = httpx.get(page.url + "state.json").json()["panels"]["referrals"]
    assert [item["checkin_id"] for item in waiting] == [checkin_id]
    assert waiting[0]["holder"] == "1101**********0017"
    settle = {"checkin_id": checkin_id, "action": "let-through", "reason": "emergency"}
    wrong = page.post("/staff/decide", settle | {"pin": "000000"})
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"error": "wrong-pin", "detail": "wrong PIN (4 tries left)"},
    )
    bad = page.post("/staff/decide", settle | {"reason": "bribe", "pin": PIN})
    assert bad.status_code == 422
    assert "reason: one of emergency, identity-checked, other" in bad.json()["detail"]
    assert page.post("/staff/decide", settle | {"pin": PIN}).json() == {"ok": True}
    assert agent.store.staff_counts() == (1, 0)
    assert httpx.get(page.url + "state.json").json()["panels"]["referrals"] == []
    again = page.post("/staff/decide", settle | {"pin": PIN})
    assert (again.status_code, again.json()["error"]) == (409, "not-open")


def test_a_kiosk_has_no_handheld_actions(start_agent: Callable[[DeviceForm], Agent]) -> None:
    agent = start_agent(DeviceForm.KIOSK)
    assert agent.screen is not None
    page = Page(agent.screen.url)
    for path in ("/handheld/scan", "/handheld/vehicle", "/handheld/manual"):
        assert page.post(path, {}).status_code == 404
    assert 'data-form="kiosk"' in httpx.get(page.url).text


def test_a_handheld_scans_checks_vehicles_and_registers_by_hand(
    start_agent: Callable[[DeviceForm], Agent],
) -> None:
    agent = start_agent(DeviceForm.HANDHELD)
    assert agent.screen is not None and agent.handheld is not None
    page = Page(agent.screen.url)
    assert page.post("/handheld/scan", {}).json() == {"ok": True}
    assert agent.handheld.trigger.armed()
    bad_plate = page.post("/handheld/vehicle", {"plate": "A:1"})
    assert (bad_plate.status_code, bad_plate.json()["error"]) == (422, "bad-plate")
    assert page.post("/handheld/vehicle", {"plate": "京A 12345"}).json() == {"ok": True}
    wrong = TYPED[:-1] + ("0" if TYPED[-1] != "0" else "1")
    refused = page.post("/handheld/manual", {"id_number": wrong})
    assert (refused.status_code, refused.json()["error"]) == (422, "bad-id-number")
    assert wrong not in refused.text
    assert page.post("/handheld/manual", {"id_number": TYPED}).json() == {"ok": True}
    panel = httpx.get(page.url + "state.json").json()["panels"]["handheld"]
    assert panel["vehicle"]["plate"] == "京A12345"
    [occupant] = panel["vehicle"]["occupants"]
    assert occupant["holder"] == "1101**********0017" and occupant["outcome"] == "refer"
    [stored] = agent.store.pending(10)
    assert stored.binding == "plate:京A12345"
    assert page.post("/handheld/vehicle/end", {}).json() == {"ok": True}
    assert httpx.get(page.url + "state.json").json()["panels"]["handheld"]["vehicle"] is None
    assert TYPED not in httpx.get(page.url).text

"""ID numbers where they enter the host: normalised, MOD 11-2 checked, never typed back."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from host.core.config import Settings
from shared import healthcode
from shared.denylist import identity_hash
from shared.sealed import CardIdentity, DocumentType
from tests.host.conftest import (
    ID_NUMBER,
    OTHER_ID_NUMBER,
    START,
    Admin,
    Device,
    db_contents,
    person_entry,
)

FULL_WIDTH = {ord(d): 0xFF10 + int(d) for d in "0123456789"} | {ord("X"): 0xFF38}
ENDS_IN_X = OTHER_ID_NUMBER  # its check character is X
WRONG_CHECK = ID_NUMBER[:-1] + ("5" if ID_NUMBER[-1] != "5" else "6")
# Each way a number is refused, and what the refusal says about it (never the number).
REFUSED = {
    "wrong check character": (WRONG_CHECK, "check character is wrong"),
    "wrong check, full-width": (WRONG_CHECK.translate(FULL_WIDTH), "check character is wrong"),
    "wrong check, spaced": (f"{WRONG_CHECK[:6]} {WRONG_CHECK[6:14]} {WRONG_CHECK[14:]}", "check"),
    "17 digits": (ID_NUMBER[:17], "has 17 characters besides spaces, not 18"),
    "19 digits": (ID_NUMBER + "1", "has 19 characters besides spaces, not 18"),
    "first-generation 15 digits": (ID_NUMBER[:6] + ID_NUMBER[8:17], "not 18"),
    "a passport number": ("E12345678", "has 9 characters besides spaces, not 18"),
    "a letter inside": (ID_NUMBER[:9] + "A" + ID_NUMBER[10:], "only digits"),
    "a hyphenated number": (f"{ID_NUMBER[:6]}-{ID_NUMBER[6:]}", "has 19 characters"),
    "Arabic-Indic digits": (
        ID_NUMBER.translate({ord(d): 0x0660 + int(d) for d in "0123456789"}),
        "only digits",
    ),
    "only spaces": (" \t  ", "has 0 characters besides spaces"),
}


def import_people(admin: Admin, number: str, _ref: str) -> httpx.Response:
    return admin.request("POST", "/people", json={"people": [person_entry(), person_entry(number)]})


def paper_code(admin: Admin, number: str, ref: str) -> httpx.Response:
    body = {"kind": "paper", "id_number": number}
    return admin.request("POST", f"/people/{ref}/codes", json=body)


def deny_list(admin: Admin, number: str, ref: str) -> httpx.Response:
    body = {"reason": "forged code", "entries": [{"person_ref": ref}, {"id_number": number}]}
    return admin.request("POST", "/denylist", json=body)


# Each entry point, and where its refusal names the field.
ENTRY_POINTS: dict[str, tuple[Callable[[Admin, str, str], httpx.Response], str]] = {
    "people import": (import_people, "body.people.1.id_number"),
    "paper code": (paper_code, "body.id_number"),
    "deny list": (deny_list, "id_number"),
}


def the_people(admin: Admin) -> int:
    return admin.ok("GET", "/stats")["people"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", REFUSED)
def test_a_number_that_is_no_resident_id_number_is_refused_without_being_typed_back(
    admin: Admin, settings: Settings, entry: str, case: str
):
    ref = admin.import_person()["person_ref"]
    before = admin.ok("GET", "/denylist")
    number, why = REFUSED[case]
    call, field = ENTRY_POINTS[entry]
    response = call(admin, number, ref)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid-request"
    assert field in body["detail"] and "is not a resident ID number" in body["detail"]
    assert why in body["detail"]
    flat = "".join(number.split())
    for shown in (number, flat, flat.translate(FULL_WIDTH), ID_NUMBER[:17], WRONG_CHECK):
        if shown.strip():
            assert shown not in response.text
    # Nothing of the refused request is kept: no new person, no entry, no number anywhere.
    assert the_people(admin) == 1
    assert admin.ok("GET", "/denylist") == before
    assert WRONG_CHECK.encode() not in db_contents(settings)


def test_a_lower_case_x_is_the_check_character_x(admin: Admin, device: Device):
    first = admin.import_person(id_number=ENDS_IN_X.lower())
    again = admin.import_person(id_number=ENDS_IN_X)
    assert again["person_ref"] == first["person_ref"] and the_people(admin) == 1

    paper = admin.ok(
        "POST",
        f"/people/{first['person_ref']}/codes",
        json={"kind": "paper", "id_number": ENDS_IN_X.lower()},
    )
    code = healthcode.read(paper["text"], device.trust(), now=START)
    assert healthcode.matches_id(code, ENDS_IN_X)

    listed = admin.ok(
        "POST",
        "/denylist",
        json={"reason": "forged code", "entries": [{"id_number": ENDS_IN_X.lower()}]},
    )
    card = CardIdentity.of(DocumentType.CN_ID, "CHN", ENDS_IN_X)
    assert identity_hash(card).hex() in {entry["digest"] for entry in listed["entries"]}


def test_full_width_and_spaced_forms_of_a_right_number_are_that_number(admin: Admin):
    person = admin.import_person()
    full_width = ID_NUMBER.translate(FULL_WIDTH)
    spaced = f"{ID_NUMBER[:6]}\u3000{ID_NUMBER[6:14]} {ID_NUMBER[14:]}"
    for written in (full_width, spaced):
        assert admin.import_person(id_number=written)["person_ref"] == person["person_ref"]
        body = {"kind": "paper", "id_number": written}
        admin.ok("POST", f"/people/{person['person_ref']}/codes", json=body)
    assert the_people(admin) == 1

    by_plain = admin.ok(
        "POST", "/denylist", json={"reason": "r", "entries": [{"id_number": ID_NUMBER}]}
    )
    by_full_width = admin.ok(
        "POST", "/denylist", json={"reason": "r", "entries": [{"id_number": full_width}]}
    )
    assert by_full_width["entries"] == by_plain["entries"] and by_full_width["added"] == 0


def test_one_wrong_number_refuses_the_whole_import(admin: Admin):
    batch = [person_entry(ID_NUMBER), person_entry(WRONG_CHECK), person_entry(OTHER_ID_NUMBER)]
    response = admin.request("POST", "/people", json={"people": batch})
    assert response.status_code == 422
    assert "body.people.1.id_number" in response.json()["detail"]
    assert (
        "people.0" not in response.json()["detail"] and "people.2" not in response.json()["detail"]
    )
    assert the_people(admin) == 0

"""Admin API: authentication, venues and their codes, people and their codes, policies, stats."""

from datetime import timedelta

import cv2
import numpy as np
import pytest
import zxingcpp

from host.core.config import Settings
from host.signing import HostKeys
from shared import healthcode, venuecode
from shared.auth import HEADER_SERVER_TIME
from shared.envelope import CredentialError
from shared.healthcode import CodeKind, Colour
from shared.keys import TrustStore
from shared.messages import API_PREFIX, DeviceConfig, trust_store
from shared.venuecode import Binding, BindingKind, VenueCode
from tests.host.conftest import (
    ID_NUMBER,
    OTHER_ID_NUMBER,
    PUBLIC_URL,
    START,
    Admin,
    Clock,
    Device,
    db_contents,
    person_entry,
)


def decode_qr(png: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    result = zxingcpp.read_barcode(image)
    assert result is not None
    return result.text


# ---- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", "Basic YWRtaW46YWRtaW4=", "Bearer "],
)
def test_admin_endpoints_refuse_a_missing_or_wrong_token(admin: Admin, authorization: str | None):
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [("GET", "/venues"), ("POST", "/venues"), ("GET", "/stats")]:
        response = admin.client.request(method, f"{API_PREFIX}/admin{path}", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert HEADER_SERVER_TIME in response.headers


def test_the_right_token_is_accepted_and_every_response_carries_the_server_time(
    admin: Admin, clock: Clock
):
    response = admin.request("GET", "/stats")
    assert response.status_code == 200
    assert response.json() == {"venues": 0, "people": 0, "devices": 0, "checkins": 0}
    assert response.headers[HEADER_SERVER_TIME] == str(clock.ms())


# ---- venues and venue codes ---------------------------------------------------------------


def test_venues_are_created_listed_and_found(admin: Admin, clock: Clock):
    mall = admin.venue("Riverside Mall")
    clock.advance(1)
    home = admin.venue("Lotus Garden", category="residential")
    assert mall["id"].startswith("v_") and len(mall["id"]) == 12
    assert mall["id"] != home["id"]
    assert mall["code_url"].startswith(f"{PUBLIC_URL}/v/{mall['id']}?")
    assert admin.ok("GET", "/venues") == [mall, home]
    assert admin.ok("GET", f"/venues/{home['id']}") == home
    missing = admin.request("GET", "/venues/v_nosuchvenue")
    assert missing.status_code == 404
    assert missing.json()["error"] == "unknown-venue"


def test_venue_codes_verify_against_the_published_venue_key(admin: Admin, device: Device):
    trust = device.trust()
    venue_id = device.venue_id
    fixed = admin.ok("GET", f"/venues/{venue_id}")["code_url"]
    assert venuecode.read_url(fixed, trust) == VenueCode(venue_id)
    assert admin.ok("POST", f"/venues/{venue_id}/codes", json={})["url"] == fixed

    for kind, value in [("plate", "ABC123"), ("room", "1204")]:
        body = {"binding": {"kind": kind, "value": value}}
        bound = admin.ok("POST", f"/venues/{venue_id}/codes", json=body)
        assert bound["venue_id"] == venue_id
        code = venuecode.read_url(bound["url"], trust)
        assert code == VenueCode(venue_id, Binding(BindingKind(kind), value))
        with pytest.raises(CredentialError):
            venuecode.read_url(bound["url"].replace(value, value + "9"), trust)

    with pytest.raises(CredentialError, match="no venue key") as caught:
        venuecode.read_url(fixed, TrustStore())
    assert caught.value.untrusted_signer


def test_venue_code_png_holds_the_code(admin: Admin, device: Device):
    venue_id = device.venue_id
    fixed = admin.request("GET", f"/venues/{venue_id}/code.png")
    assert fixed.status_code == 200
    assert fixed.headers["content-type"] == "image/png"
    assert decode_qr(fixed.content) == admin.ok("GET", f"/venues/{venue_id}")["code_url"]

    plated = admin.request("GET", f"/venues/{venue_id}/code.png", params={"plate": "B12345"})
    code = venuecode.read_url(decode_qr(plated.content), device.trust())
    assert code.binding == Binding(BindingKind.PLATE, "B12345")

    both = admin.request("GET", f"/venues/{venue_id}/code.png", params={"plate": "A", "room": "1"})
    assert (both.status_code, both.json()["error"]) == (422, "bad-binding")
    colon = admin.request("GET", f"/venues/{venue_id}/code.png", params={"room": "a:b"})
    assert (colon.status_code, colon.json()["error"]) == (422, "bad-binding")


def test_the_venue_page_checks_the_code_signature(admin: Admin, venue: dict, settings: Settings):
    path = venue["code_url"].removeprefix(PUBLIC_URL)
    page = admin.client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Without a session nothing is recorded: the page names the venue and says how to check in.
    assert "Sign in first" in page.text and "Riverside Mall" in page.text

    room = admin.ok(
        "POST", f"/venues/{venue['id']}/codes", json={"binding": {"kind": "room", "value": "12"}}
    )
    assert '<dd id="binding">12</dd>' in admin.client.get(room["url"].removeprefix(PUBLIC_URL)).text

    forged = admin.client.get(path.replace("s=", "s=AAAA"))
    assert forged.status_code == 400
    assert "Not a valid venue code" in forged.text

    # A genuine signature for a venue the host does not know.
    storage = settings.database.open()
    try:
        keys = HostKeys.load(storage)
    finally:
        storage.close()
    unknown = venuecode.issue_url(VenueCode("v_gone"), PUBLIC_URL, keys.venue)
    assert admin.client.get(unknown.removeprefix(PUBLIC_URL)).status_code == 404


# ---- policies -----------------------------------------------------------------------------


def test_a_stored_rule_set_replaces_the_default_for_devices(
    admin: Admin, device: Device, clock: Clock
):
    venue_id = device.venue_id
    default = admin.ok("GET", f"/venues/{venue_id}/rules")
    assert device.config["rules"]["version"] == default["version"] == 1
    assert "HC-TEST-AGE" in {rule["id"] for rule in default["rules"]}

    stale = admin.request("PUT", f"/venues/{venue_id}/rules", json=default)
    assert (stale.status_code, stale.json()["error"]) == (409, "stale-rules")
    wrong = admin.request(
        "PUT", f"/venues/{venue_id}/rules", json=default | {"version": 2, "category": "office"}
    )
    assert (wrong.status_code, wrong.json()["error"]) == (422, "rules-category")
    not_certlogic = default | {
        "version": 2,
        "rules": [default["rules"][0] | {"logic": {"or": [True, False]}}],
    }
    refused = admin.request("PUT", f"/venues/{venue_id}/rules", json=not_certlogic)
    assert refused.status_code == 422

    colour_only = default | {
        "version": 2,
        "rules": [rule for rule in default["rules"] if rule["id"] == "HC-COLOUR"],
    }
    assert admin.ok("PUT", f"/venues/{venue_id}/rules", json=colour_only)["version"] == 2
    config = DeviceConfig.model_validate(
        device.request("GET", "/device/config", time_ms=clock.ms()).json()
    )
    signed = config.rules.open(trust_store(config.keys))
    assert signed.version == 2
    assert [rule.id for rule in signed.rules] == ["HC-COLOUR"]


# ---- people and health codes --------------------------------------------------------------


def test_people_import_upserts_by_id_number(admin: Admin, clock: Clock):
    first = admin.import_person()
    assert first["person_ref"].startswith("p_") and len(first["person_ref"]) == 18
    assert first["colour"] == "green"

    clock.advance(60)
    # The same number written differently is the same person; colour is replaced.
    again = admin.import_person(
        id_number=" 1101 0119 9003 07777 4", colour="yellow", hours_ago=None
    )
    assert again["person_ref"] == first["person_ref"]
    assert again["colour"] == "yellow"
    assert again["test"] == first["test"], "no test in the import keeps the stored one"
    assert again["updated_at"] > first["updated_at"]

    older = admin.import_person(hours_ago=100)
    assert older["test"] == first["test"], "an older test does not replace a newer one"
    newer = admin.import_person(hours_ago=1)
    assert newer["test"]["sampled_at"] > first["test"]["sampled_at"]

    other = admin.import_person(id_number=OTHER_ID_NUMBER)
    assert other["person_ref"] != first["person_ref"]
    looked_up = admin.client.get(
        f"{API_PREFIX}/people/{first['person_ref']}",
        params={"purpose": "case 2022-0417"},
        headers=admin.headers,
    )
    assert looked_up.json() == newer
    assert admin.ok("GET", "/stats")["people"] == 2
    nobody = admin.client.get(
        f"{API_PREFIX}/people/p_nobody", params={"purpose": "case 1"}, headers=admin.headers
    )
    assert nobody.status_code == 404


def test_a_batch_that_names_one_person_twice_gives_one_ref(admin: Admin):
    body = {
        "people": [
            person_entry(colour="green"),
            person_entry(colour="red"),
            person_entry(OTHER_ID_NUMBER),
        ]
    }
    people = admin.ok("POST", "/people", json=body)["people"]
    assert people[0]["person_ref"] == people[1]["person_ref"] != people[2]["person_ref"]
    assert people[0]["colour"] == people[1]["colour"] == "red"


def test_a_blank_id_number_is_refused(admin: Admin):
    response = admin.request(
        "POST", "/people", json={"people": [person_entry(id_number="  \t    ")]}
    )
    assert response.status_code == 422
    assert "0 characters besides spaces, not 18" in response.json()["detail"]


def test_the_id_number_is_stored_nowhere(admin: Admin, settings: Settings):
    ref = admin.import_person()["person_ref"]
    spaced = "110101 19900307 7774"
    paper = {"kind": "paper", "id_number": spaced}
    assert admin.request("POST", f"/people/{ref}/codes", json=paper).status_code == 200
    wrong = {"kind": "paper", "id_number": OTHER_ID_NUMBER}
    assert admin.request("POST", f"/people/{ref}/codes", json=wrong).status_code == 403
    stored = db_contents(settings)
    for number in (ID_NUMBER, spaced, OTHER_ID_NUMBER, "19900307"):
        assert number.encode() not in stored
        assert number.encode("utf-16-le") not in stored


def test_a_dynamic_code_verifies_against_the_published_health_key(
    admin: Admin, device: Device, clock: Clock
):
    ref = admin.import_person()["person_ref"]
    issued = admin.ok("POST", f"/people/{ref}/codes", json={})
    assert issued["kind"] == "dynamic"
    code = healthcode.read(issued["text"], device.trust(), now=START)
    assert code.person_ref == ref
    assert code.kind is CodeKind.DYNAMIC
    assert code.colour is Colour.GREEN
    assert code.test is not None and code.test.sampled_at == START - timedelta(hours=12)
    assert code.expires_at - code.issued_at == healthcode.DYNAMIC_TTL
    assert code.id_binding is None

    short = admin.ok("POST", f"/people/{ref}/codes", json={"ttl_seconds": 30})
    short_code = healthcode.read(short["text"], device.trust(), now=START)
    assert short_code.expires_at - short_code.issued_at == timedelta(seconds=30)
    with pytest.raises(CredentialError, match="expir"):
        healthcode.read(short["text"], device.trust(), now=START + timedelta(minutes=1))

    too_long = admin.request("POST", f"/people/{ref}/codes", json={"ttl_seconds": 601})
    assert (too_long.status_code, too_long.json()["error"]) == (422, "bad-ttl")
    with_id = admin.request("POST", f"/people/{ref}/codes", json={"id_number": ID_NUMBER})
    assert with_id.status_code == 422

    admin.import_person(colour="red")
    assert (
        healthcode.read(
            admin.ok("POST", f"/people/{ref}/codes", json={})["text"], device.trust(), now=START
        ).colour
        is Colour.RED
    )


def test_a_code_comes_as_png_too(admin: Admin, device: Device):
    ref = admin.import_person()["person_ref"]
    response = admin.request("POST", f"/people/{ref}/codes", params={"format": "png"}, json={})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    code = healthcode.read(decode_qr(response.content), device.trust(), now=START)
    assert code.person_ref == ref
    assert response.headers["X-Code-Expires-At"] == code.expires_at.isoformat()


def test_a_paper_code_needs_the_holders_id_number(admin: Admin, device: Device):
    ref = admin.import_person()["person_ref"]
    missing = admin.request("POST", f"/people/{ref}/codes", json={"kind": "paper"})
    assert (missing.status_code, missing.json()["error"]) == (422, "id-number-required")
    wrong = admin.request(
        "POST", f"/people/{ref}/codes", json={"kind": "paper", "id_number": OTHER_ID_NUMBER}
    )
    assert (wrong.status_code, wrong.json()["error"]) == (403, "id-mismatch")

    body = {"kind": "paper", "id_number": ID_NUMBER.lower()}
    issued = admin.ok("POST", f"/people/{ref}/codes", json=body)
    code = healthcode.read(issued["text"], device.trust(), now=START)
    assert code.kind is CodeKind.PAPER
    assert code.expires_at - code.issued_at == healthcode.PAPER_TTL
    assert healthcode.matches_id(code, ID_NUMBER)
    assert not healthcode.matches_id(code, OTHER_ID_NUMBER)

    month = admin.ok("POST", f"/people/{ref}/codes", json=body | {"ttl_seconds": 30 * 86400})
    month_code = healthcode.read(month["text"], device.trust(), now=START)
    assert month_code.expires_at - month_code.issued_at == timedelta(days=30)


def test_codes_for_unknown_people_and_venues_are_404(admin: Admin):
    assert (
        admin.request("POST", "/people/p_nobody/codes", json={}).json()["error"] == "unknown-person"
    )
    token = admin.request("POST", "/enrollment-tokens", json={"venue_id": "v_nowhere"})
    assert (token.status_code, token.json()["error"]) == (404, "unknown-venue")


# ---- validation errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"name": "Mall"}, 422, "invalid-request"),
        ({"name": "Mall", "address": "x", "category": "casino"}, 422, "invalid-request"),
        (
            {"name": "Mall", "address": "x", "category": "office", "extra": 1},
            422,
            "invalid-request",
        ),
        (b"{not json", 400, "bad-json"),
        (b'{"name": "Mall\\ud800", "address": "x", "category": "office"}', 400, "bad-json"),
        (b"\xff\xfe", 400, "bad-json"),
    ],
)
def test_validation_errors_are_error_bodies(admin: Admin, body: object, status: int, error: str):
    if isinstance(body, bytes):
        headers = {"Content-Type": "application/json"}
        response = admin.request("POST", "/venues", content=body, headers=headers)
    else:
        response = admin.request("POST", "/venues", json=body)
    assert response.status_code == status
    assert response.json().keys() == {"error", "detail"}
    assert response.json()["error"] == error


def test_validation_errors_do_not_echo_values(admin: Admin):
    body = {"people": [{"id_number": ID_NUMBER, "colour": "purple"}]}
    response = admin.request("POST", "/people", json=body)
    assert response.status_code == 422
    assert ID_NUMBER not in response.text
    assert "people.0.colour" in response.json()["detail"]


def test_unknown_paths_and_methods_are_error_bodies(admin: Admin):
    assert admin.client.get("/nowhere").json() == {"error": "not-found", "detail": "Not Found"}
    response = admin.request("DELETE", "/venues")
    assert response.status_code == 405
    assert response.json()["error"] == "method-not-allowed"


def test_an_id_number_in_full_width_digits_is_the_same_person(admin: Admin):
    # A Chinese keyboard may type the digits full-width: before NFKC that was a second person.
    first = admin.import_person()
    full_width = ID_NUMBER.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    again = admin.import_person(id_number=" ".join([full_width[:6], full_width[6:]]))
    assert again["person_ref"] == first["person_ref"]
    assert admin.ok("GET", "/stats")["people"] == 1

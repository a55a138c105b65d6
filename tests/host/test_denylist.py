"""The host's deny list: entries kept as digests only, versions, the signed list; reports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from host.core.config import Settings
from shared.denylist import MEDIA_TYPE, DenyList, HashKind, identity_hash, person_hash
from shared.messages import DeviceInfo
from shared.sealed import CardIdentity, DocumentType
from tests.host.conftest import (
    ID_NUMBER,
    OTHER_ID_NUMBER,
    START,
    Admin,
    Clock,
    Device,
    db_rows,
)

REASON = "certificate revoked by the district health office"
ZERO_COUNTS = {kind.value: 0 for kind in HashKind}
START_MS = int(START.timestamp() * 1000)


def add(admin: Admin, *entries: dict, reason: str = REASON) -> dict:
    return admin.ok("POST", "/denylist", json={"reason": reason, "entries": list(entries)})


def fetch(device: Device, clock: Clock, have: int | None = None) -> DenyList:
    response = device.request(
        "GET", "/device/denylist" + ("" if have is None else f"?have={have}"), time_ms=clock.ms()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    return DenyList.open(response.content, device.trust())


# ---- admin --------------------------------------------------------------------------------


def test_people_are_listed_by_reference_or_id_number_as_digests(admin: Admin, clock: Clock):
    first = admin.import_person()
    second = admin.import_person(id_number=OTHER_ID_NUMBER)
    clock.advance(60)
    added = add(admin, {"person_ref": first["person_ref"]}, {"id_number": OTHER_ID_NUMBER})
    assert added["added"] == 3
    assert added["version"] == 1
    assert added["changed_at"] == (START + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert added["counts"] == ZERO_COUNTS | {"person": 2, "identity": 1}
    # An ID number is listed by its card's slow digest too, for devices that are offline.
    card = CardIdentity.of(DocumentType.CN_ID, "CHN", OTHER_ID_NUMBER)
    assert [(entry["kind"], entry["digest"]) for entry in added["entries"]] == [
        ("person", person_hash(first["person_ref"]).hex()),
        ("identity", identity_hash(card).hex()),
        ("person", person_hash(second["person_ref"]).hex()),
    ]
    assert admin.ok("GET", "/denylist") == {
        key: added[key] for key in ("version", "changed_at", "counts")
    }


def test_the_host_keeps_neither_reference_nor_number_beside_an_entry(
    admin: Admin, settings: Settings
):
    person = admin.import_person()
    add(admin, {"id_number": ID_NUMBER}, {"person_ref": person["person_ref"]})
    rows = db_rows(settings, "SELECT * FROM denylist_entries ORDER BY kind")
    card = CardIdentity.of(DocumentType.CN_ID, "CHN", ID_NUMBER)
    assert rows == [
        ("identity", identity_hash(card), REASON, START_MS),
        ("person", person_hash(person["person_ref"]), REASON, START_MS),
    ]
    stored = repr(rows).encode()
    assert person["person_ref"].encode() not in stored
    assert ID_NUMBER.encode() not in stored


def test_listing_again_changes_nothing_and_keeps_the_version(admin: Admin):
    digest = {"kind": "uci", "digest": "ab" * 16}
    assert add(admin, digest)["version"] == 1
    again = add(admin, digest, digest)
    assert (again["added"], again["version"]) == (0, 1)
    assert again["counts"]["uci"] == 1


def test_an_unknown_person_refuses_the_whole_request(admin: Admin):
    person = admin.import_person()
    response = admin.request(
        "POST",
        "/denylist",
        json={
            "reason": REASON,
            "entries": [{"person_ref": person["person_ref"]}, {"person_ref": "p_nobody"}],
        },
    )
    assert (response.status_code, response.json()["error"]) == (404, "unknown-person")
    assert response.json()["detail"].startswith("entries.1:")
    assert admin.ok("GET", "/denylist")["version"] == 0


def test_an_id_number_outside_the_register_is_listed_by_its_card_digest(admin: Admin):
    added = add(admin, {"id_number": OTHER_ID_NUMBER})
    card = CardIdentity.of(DocumentType.CN_ID, "CHN", OTHER_ID_NUMBER)
    assert added["entries"] == [{"kind": "identity", "digest": identity_hash(card).hex()}]
    assert OTHER_ID_NUMBER not in repr(added)


def test_a_reason_that_names_the_person_is_refused(admin: Admin):
    person = admin.import_person()
    spaced = " ".join([ID_NUMBER[:6], ID_NUMBER[6:14], ID_NUMBER[14:]])
    for entry, reason in (
        ({"person_ref": person["person_ref"]}, f"case {person['person_ref']}"),
        ({"id_number": ID_NUMBER}, f"ID {spaced.lower()} caught with a forged code"),
        # Hyphens kept the number in clear before; any number is refused, listed or not.
        ({"id_number": ID_NUMBER}, f"ID {ID_NUMBER[:6]}-{ID_NUMBER[6:14]}-{ID_NUMBER[14:]}"),
        ({"person_ref": person["person_ref"]}, f"brother of {OTHER_ID_NUMBER}"),
    ):
        response = admin.request("POST", "/denylist", json={"reason": reason, "entries": [entry]})
        assert (response.status_code, response.json()["error"]) == (422, "reason-names-person")
    assert admin.ok("GET", "/denylist")["version"] == 0


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"person_ref": "p_1", "id_number": ID_NUMBER},
        {"kind": "uci"},
        {"digest": "ab" * 16},
        {"kind": "uci", "digest": "ab" * 15},
        {"kind": "uci", "digest": "AB" * 16},
        {"kind": "passport", "digest": "ab" * 16},
        {"person_ref": "p_1", "kind": "person", "digest": "ab" * 16},
    ],
)
def test_an_entry_takes_exactly_one_form(admin: Admin, entry: dict):
    response = admin.request("POST", "/denylist", json={"reason": REASON, "entries": [entry]})
    assert response.status_code == 422


def test_removing_an_entry_raises_the_version(admin: Admin, clock: Clock):
    add(admin, {"kind": "signature", "digest": "cd" * 16})
    clock.advance(5)
    removed = admin.ok("DELETE", f"/denylist/signature/{'cd' * 16}")
    assert (removed["version"], removed["counts"]) == (2, ZERO_COUNTS)
    again = admin.request("DELETE", f"/denylist/signature/{'cd' * 16}")
    assert (again.status_code, again.json()["error"]) == (404, "not-listed")
    assert admin.request("DELETE", "/denylist/signature/xyz").status_code == 422
    assert admin.request("DELETE", f"/denylist/passport/{'cd' * 16}").status_code == 422
    assert admin.ok("GET", "/denylist")["version"] == 2


def test_the_deny_list_admin_needs_the_token(admin: Admin):
    for method, path in (("GET", ""), ("POST", ""), ("DELETE", f"/uci/{'ab' * 16}")):
        response = admin.request(method, f"/denylist{path}", headers={"Authorization": "Bearer x"})
        assert response.status_code == 401


# ---- devices ------------------------------------------------------------------------------


def test_a_device_gets_the_signed_list_then_only_newer_versions(
    admin: Admin, device: Device, clock: Clock
):
    empty = fetch(device, clock)
    assert (empty.version, len(empty)) == (0, 0)
    person = admin.import_person()
    clock.advance(30)
    add(admin, {"person_ref": person["person_ref"]}, {"kind": "uci", "digest": "ab" * 16})
    clock.advance(30)
    listed = fetch(device, clock, have=0)
    assert listed.version == 1
    assert listed.issued_at == START + timedelta(seconds=30)  # when the version was made
    assert listed.contains_person(person["person_ref"])
    assert listed.entries[HashKind.UCI] == {bytes.fromhex("ab" * 16)}
    for have in (1, 7):
        unchanged = device.request("GET", f"/device/denylist?have={have}", time_ms=clock.ms())
        assert unchanged.json() == {"version": 1}


def test_each_version_is_signed_once_for_every_device(
    admin: Admin, device: Device, clock: Clock, client
):
    other = Device.enroll(client, admin.token(device.venue_id), name="gate-2")

    def raw(asking: Device) -> bytes:
        return asking.request("GET", "/device/denylist", time_ms=clock.ms()).content

    first = raw(device)
    assert raw(other) == first  # ES256 signatures are randomised: equal bytes are one signing
    add(admin, {"kind": "uci", "digest": "ab" * 16})
    assert raw(device) != first
    assert DenyList.open(raw(other), other.trust()).version == 1


def test_the_list_endpoint_needs_a_signed_request(device: Device, client, clock: Clock):
    assert client.get("/api/v1/device/denylist").status_code == 401
    bad = device.request("GET", "/device/denylist?have=-1", time_ms=clock.ms())
    assert bad.status_code == 422


def report(**fields: object) -> dict:
    return {
        "sent_at": START.isoformat(),
        "clock_trusted": True,
        "pending_checkins": 4,
        "denylist": {
            "version": 3,
            "issued_at": (START - timedelta(hours=2)).isoformat(),
            "refreshed_at": START.isoformat(),
            "entries": 12,
        },
        "components": {"denylist": {"state": "ok", "since": START.isoformat()}},
    } | fields


def test_the_latest_report_shows_in_the_device_list(admin: Admin, device: Device, clock: Clock):
    [before] = admin.ok("GET", "/devices")
    assert (before["report"], before["reported_at"]) == (None, None)
    sent = device.request("POST", "/device/report", json_body=report(), time_ms=clock.ms())
    assert (sent.status_code, sent.content) == (204, b"")
    clock.advance(60)
    failing = {"state": "failing", "since": START.isoformat(), "detail": "host answered 503"}
    latest = report(pending_checkins=0, components={"denylist": failing})
    device.request("POST", "/device/report", json_body=latest, time_ms=clock.ms())
    [info] = admin.ok("GET", "/devices")
    shown = DeviceInfo.model_validate(info)
    assert shown.reported_at == START + timedelta(seconds=60)
    assert shown.report is not None
    assert shown.report.pending_checkins == 0
    assert shown.report.components["denylist"].detail == "host answered 503"
    assert shown.report.denylist is not None
    assert shown.report.sent_at - shown.report.denylist.issued_at == timedelta(hours=2)


@pytest.mark.parametrize(
    "fields",
    [
        {"pending_checkins": -1},
        {"components": {"Bad Name": {"state": "ok", "since": START.isoformat()}}},
        {"components": {"camera": {"state": "broken", "since": START.isoformat()}}},
        {"unknown": 1},
    ],
)
def test_a_malformed_report_is_refused(device: Device, clock: Clock, fields: dict):
    response = device.request(
        "POST", "/device/report", json_body=report(**fields), time_ms=clock.ms()
    )
    assert response.status_code == 422

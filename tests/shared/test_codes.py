"""Health codes and venue codes: issue, read back, and refuse what was tampered with."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import healthcode, venuecode
from shared.envelope import CredentialError, Stage, seal
from shared.healthcode import CodeKind, Colour, NucleicTest, TestResult
from shared.keys import SigningKey, TrustStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ID_NUMBER = "110101199003071233"


def make(kind: CodeKind = CodeKind.DYNAMIC, **overrides: object) -> healthcode.HealthCode:
    arguments: dict = {
        "person_ref": "p_test",
        "kind": kind,
        "colour": Colour.GREEN,
        "test": NucleicTest(NOW - timedelta(hours=10), TestResult.NEGATIVE),
        "now": NOW,
        "id_number": ID_NUMBER if kind is CodeKind.PAPER else None,
    }
    arguments.update(overrides)
    return healthcode.new_code(**arguments)


def test_dynamic_code_round_trip(health_key: SigningKey, trust: TrustStore) -> None:
    code = make()
    read = healthcode.read(healthcode.issue(code, health_key), trust, now=NOW)
    assert read == code
    assert read.expires_at - read.issued_at == healthcode.DYNAMIC_TTL


def test_dynamic_code_expires_within_minutes(health_key: SigningKey, trust: TrustStore) -> None:
    text = healthcode.issue(make(), health_key)
    with pytest.raises(CredentialError) as caught:
        healthcode.read(text, trust, now=NOW + timedelta(minutes=4))
    assert caught.value.stage is Stage.EXPIRY


def test_paper_code_is_tied_to_its_holder(health_key: SigningKey, trust: TrustStore) -> None:
    text = healthcode.issue(make(CodeKind.PAPER), health_key)
    code = healthcode.read(text, trust, now=NOW + timedelta(days=6))
    assert healthcode.matches_id(code, ID_NUMBER)
    assert healthcode.matches_id(code, f" {ID_NUMBER[:14]} {ID_NUMBER[14:]} ")
    assert not healthcode.matches_id(code, "110101199003071235")
    assert ID_NUMBER not in text
    assert ID_NUMBER.encode() not in healthcode.issue(make(CodeKind.PAPER), health_key).encode()


def test_paper_code_needs_an_id_number() -> None:
    with pytest.raises(ValueError, match="ID number"):
        make(CodeKind.PAPER, id_number=None)


def test_dynamic_code_matches_no_id(health_key: SigningKey, trust: TrustStore) -> None:
    code = healthcode.read(healthcode.issue(make(), health_key), trust, now=NOW)
    assert not healthcode.matches_id(code, ID_NUMBER)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"v": 2, "k": "dynamic", "s": "p", "c": "green"}, "schema version"),
        ({"v": 1, "k": "dynamic", "s": "", "c": "green"}, "subject"),
        ({"v": 1, "k": "dynamic", "s": "p", "c": "blue"}, "colour"),
        ({"v": 1, "k": "forever", "s": "p", "c": "green"}, "kind"),
        ({"v": 1, "k": "dynamic", "s": "p", "c": "green", "t": {"at": "x"}}, "sample time"),
        ({"v": 1, "k": "dynamic", "s": "p", "c": "green", "t": {"at": 1, "r": "?"}}, "result"),
        ({"v": 1, "k": "paper", "s": "p", "c": "green"}, "ID binding"),
    ],
)
def test_schema_errors_name_the_field(
    health_key: SigningKey, trust: TrustStore, body: dict, message: str
) -> None:
    claims = {
        1: "x",
        6: int(NOW.timestamp()),
        4: int(NOW.timestamp()) + 60,
        healthcode.CLAIM_KEY: body,
    }
    with pytest.raises(CredentialError, match=message) as caught:
        healthcode.read(seal(healthcode.PREFIX, claims, health_key), trust, now=NOW)
    assert caught.value.stage is Stage.SCHEMA


def test_untrusted_clock_skips_only_the_expiry(health_key: SigningKey, trust: TrustStore) -> None:
    text = healthcode.issue(make(), health_key)
    assert healthcode.read(text, trust, now=None).person_ref == "p_test"


def test_venue_code_round_trip(venue_key: SigningKey, trust: TrustStore) -> None:
    fixed = venuecode.VenueCode("v_library")
    url = venuecode.issue_url(fixed, "https://sentinel.example.org/", venue_key)
    assert url.startswith("https://sentinel.example.org/v/v_library?k=")
    assert venuecode.read_url(url, trust) == fixed


@pytest.mark.parametrize(
    "binding",
    [
        venuecode.Binding(venuecode.BindingKind.PLATE, "京A12345"),
        venuecode.Binding(venuecode.BindingKind.ROOM, "1203"),
    ],
)
def test_bound_venue_codes(
    venue_key: SigningKey, trust: TrustStore, binding: venuecode.Binding
) -> None:
    code = venuecode.VenueCode("v_1", binding)
    url = venuecode.issue_url(code, "https://h.example", venue_key)
    assert venuecode.read_url(url, trust) == code


def test_venue_binding_cannot_be_moved(venue_key: SigningKey, trust: TrustStore) -> None:
    room = venuecode.VenueCode("v_1", venuecode.Binding(venuecode.BindingKind.ROOM, "1203"))
    url = venuecode.issue_url(room, "https://h.example", venue_key)
    with pytest.raises(CredentialError, match="does not verify"):
        venuecode.read_url(url.replace("room:1203", "room:1204"), trust)
    with pytest.raises(CredentialError, match="does not verify"):
        venuecode.read_url(url.replace("/v/v_1?", "/v/v_2?"), trust)


def test_venue_code_needs_a_venue_key(health_key: SigningKey, trust: TrustStore) -> None:
    url = venuecode.issue_url(venuecode.VenueCode("v_1"), "https://h.example", health_key)
    with pytest.raises(CredentialError) as caught:
        venuecode.read_url(url, trust)
    assert caught.value.untrusted_signer


@pytest.mark.parametrize(
    "url",
    [
        "http://h.example/v/v_1?k=AA&s=AA",
        "https://h.example/venue/v_1",
        "https://h.example/v/v_1?s=AA",
        "https://h.example/v/v_1?k=AA&k=BB&s=AA",
        "https://h.example/v/v_1?b=boat:1&k=AA&s=AA",
    ],
)
def test_malformed_venue_urls(trust: TrustStore, url: str) -> None:
    with pytest.raises(CredentialError):
        venuecode.read_url(url, trust)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_url_fails_only_with_a_credential_error(trust: TrustStore, tail: str) -> None:
    with contextlib.suppress(CredentialError):
        venuecode.read_url("https://h.example/v/" + tail, trust)


@pytest.mark.parametrize("text", ["//\n\n[", "https://[::1/v/v_abc?k=a&s=b", "http://]x"])
def test_text_no_url_parser_takes_is_not_a_venue_code(trust: TrustStore, text: str) -> None:
    """Found by fuzzing: urlsplit raises ValueError on an unclosed IPv6 bracket."""
    assert not venuecode.looks_like_venue_url(text)
    with pytest.raises(CredentialError, match="not a venue URL"):
        venuecode.read_url(text, trust)


@given(st.text(max_size=200))
def test_any_text_is_a_venue_url_or_not_without_raising(text: str) -> None:
    assert venuecode.looks_like_venue_url(text) in (True, False)  # and raises nothing

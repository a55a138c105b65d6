"""The EU DCC value sets: the packaged release, loading newer ones, checking an entry's codes."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.dcc.specimen import specimen_payload
from shared.dcc.value_sets import (
    CODED_FIELDS,
    COUNTRIES,
    NEEDED,
    PACKAGED_DIR,
    TEST_DEVICES,
    VALUE_SETS_DIR_ENV,
    ValueSet,
    ValueSets,
    default_value_sets,
    load_value_sets,
    packaged_value_sets,
)
from shared.envelope import CredentialError, Stage
from tests.shared.dcc.conftest import VALUE_SET_DIR


def test_the_package_ships_release_2_12_0_unchanged_with_its_licence() -> None:
    """Each packaged file is the shared reference data's, byte for byte."""
    if not VALUE_SET_DIR.is_dir():
        pytest.skip(f"the value sets are not at {VALUE_SET_DIR}")
    shipped = sorted(path.name for path in PACKAGED_DIR.glob("*.json"))
    assert len(shipped) == len(NEEDED)
    for name in [*shipped, "LICENSE"]:
        assert (PACKAGED_DIR / name).read_bytes() == (VALUE_SET_DIR / name).read_bytes(), name
    assert "release 2.12.0" in (PACKAGED_DIR / "VERSION").read_text()


def test_the_packaged_sets_hold_every_coded_field() -> None:
    packaged = packaged_value_sets()
    assert set(packaged.sets) == NEEDED
    assert {"DE", "CN", "XK"} <= packaged.sets[COUNTRIES].codes
    assert "XX" not in packaged.sets[COUNTRIES].codes  # user-assigned: no issuer's
    assert [value_set.id for value_set in packaged] == sorted(NEEDED)


@pytest.mark.parametrize("kind", ["v", "t", "r"])
def test_the_specimens_codes_are_in_the_value_sets(kind: str) -> None:
    entry = specimen_payload(kind)[kind][0]
    assert {name for name, _ in CODED_FIELDS[kind]} - entry.keys() <= {"ma"}  # a PCR test's
    packaged_value_sets().check(kind, entry)


@pytest.mark.parametrize("code", ["9999", 1232, None, ["1232"]])
def test_a_field_that_is_not_a_code_of_its_set_fails(code: object) -> None:
    entry = {**specimen_payload("t")["t"][0], "ma": code}
    with pytest.raises(CredentialError) as caught:
        packaged_value_sets().check("t", entry)
    assert caught.value.stage is Stage.VALUESET
    assert caught.value.reason == (
        f"$.t[0].ma is not a code of the value set {TEST_DEVICES} (2021-07-01)"
    )


def test_a_field_the_entry_lacks_is_left_to_the_schema() -> None:
    entry = specimen_payload("t")["t"][0]
    del entry["tt"], entry["co"]
    packaged_value_sets().check("t", entry)


def test_a_set_replaces_the_held_one_unless_it_is_older() -> None:
    held = packaged_value_sets().sets[TEST_DEVICES]
    newer = ValueSet(TEST_DEVICES, held.date + timedelta(days=1), frozenset({"1"}))
    older = ValueSet(TEST_DEVICES, held.date - timedelta(days=1), frozenset({"2"}))
    same_day = ValueSet(TEST_DEVICES, held.date, frozenset({"3"}))
    packaged = packaged_value_sets()
    assert packaged.updated([newer]).sets[TEST_DEVICES] == newer
    assert packaged.updated([older]).sets[TEST_DEVICES] == held
    assert packaged.updated([same_day]).sets[TEST_DEVICES] == same_day
    extra = ValueSet("vaccines-covid-19-encoding-instructions", date(2023, 5, 5), frozenset("a"))
    assert packaged.updated([extra]).sets[extra.id] == extra  # kept, though no field uses it
    assert packaged.sets[TEST_DEVICES] == held  # the packaged release itself is untouched


def test_every_needed_set_must_be_held() -> None:
    sets = dict(packaged_value_sets().sets)
    del sets[COUNTRIES]
    with pytest.raises(ValueError, match=f"lack {COUNTRIES}"):
        ValueSets(sets)


def test_a_directory_of_newer_sets_loads_and_bad_files_are_named(tmp_path: Path) -> None:
    newer = {
        "valueSetId": TEST_DEVICES,
        "valueSetDate": "2023-06-30",
        "valueSetValues": {"9999": {"display": "A new device", "active": True}},
    }
    (tmp_path / "test-manf.json").write_text(json.dumps(newer))
    [loaded] = load_value_sets(tmp_path)
    assert loaded == ValueSet(TEST_DEVICES, date(2023, 6, 30), frozenset({"9999"}))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json: not JSON"):
        load_value_sets(tmp_path)
    (tmp_path / "broken.json").write_text("[]")
    with pytest.raises(ValueError, match=r"broken\.json: not a value set"):
        load_value_sets(tmp_path)
    with pytest.raises(ValueError, match="no value set"):
        load_value_sets(tmp_path / "absent")


def test_the_environment_names_newer_sets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(VALUE_SETS_DIR_ENV, raising=False)
    assert default_value_sets() is packaged_value_sets()
    newer = {"valueSetId": TEST_DEVICES, "valueSetDate": "2023-06-30", "valueSetValues": {"1": {}}}
    (tmp_path / "test-manf.json").write_text(json.dumps(newer))
    monkeypatch.setenv(VALUE_SETS_DIR_ENV, str(tmp_path))
    assert default_value_sets().sets[TEST_DEVICES].codes == {"1"}
    monkeypatch.setenv(VALUE_SETS_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="no value set"):
        default_value_sets()


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], "not a value set"),
        ({"valueSetDate": "2021-01-01", "valueSetValues": {"a": {}}}, "no valueSetId"),
        ({"valueSetId": "x", "valueSetDate": "soon", "valueSetValues": {"a": {}}}, "valueSetDate"),
        ({"valueSetId": "x", "valueSetDate": 20210101, "valueSetValues": {"a": {}}}, "a YYYY"),
        ({"valueSetId": "x", "valueSetDate": "2021-01-01", "valueSetValues": {}}, "one or more"),
        ({"valueSetId": "x", "valueSetDate": "2021-01-01", "valueSetValues": ["a"]}, "a map"),
    ],
)
def test_a_document_that_is_no_value_set_is_refused_with_its_reason(
    document: object, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        ValueSet.from_json(document, "given.json")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=15,
)
SET_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "valueSetId": JSON | st.text(max_size=30),
        "valueSetDate": JSON | st.dates().map(date.isoformat),
        "valueSetValues": JSON | st.dictionaries(st.text(max_size=8), JSON, max_size=4),
    },
)


@settings(max_examples=300, deadline=None)
@given(JSON | SET_LIKE)
def test_any_json_is_a_value_set_or_a_value_error(document: object) -> None:
    """What the host is given (or a device is sent) is read, or refused with ValueError."""
    try:
        loaded = ValueSet.from_json(document)
    except ValueError as error:
        assert str(error).startswith("value set: ")
    else:
        assert loaded.id and loaded.codes

"""The schema store: the version `ver` names, its fallback, strict mode, reasons quoting no data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.dcc import schema
from shared.dcc.schema import SchemaCheck, SchemaStore, default_schema_dir
from shared.dcc.specimen import specimen_payload
from shared.envelope import CredentialError, Stage

# A small schema in the eu-dcc-schema shape: the real ones are used where the data is present.
TINY = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["ver", "nam"],
    "properties": {
        "ver": {"type": "string"},
        "nam": {"$ref": "#/$defs/name"},
    },
    "$defs": {"name": {"type": "string", "pattern": "^[A-Z<]*$", "maxLength": 10}},
}


@pytest.fixture
def tiny_store(tmp_path: Path) -> Path:
    for version in ("1.0.0", "1.2.1", "2.0.0"):
        (tmp_path / f"{version}.json").write_text(json.dumps(TINY))
    (tmp_path / "README.json").write_text("{}")  # not a version: ignored
    return tmp_path


def reason(store: SchemaStore, payload: object) -> str:
    with pytest.raises(CredentialError) as caught:
        store.validate(payload)
    assert caught.value.stage is Stage.SCHEMA
    return caught.value.reason


def test_the_schema_is_the_one_ver_names(tiny_store: Path) -> None:
    store = SchemaStore.from_directory(tiny_store)
    assert store.versions == ["1.0.0", "1.2.1", "2.0.0"]
    check = store.validate({"ver": "1.2.1", "nam": "ABC"})
    assert check == SchemaCheck("1.2.1", "1.2.1")
    assert not check.substituted


@pytest.mark.parametrize("declared", ["1.0.4", "1.9.0"])
def test_an_unknown_version_takes_the_newest_of_its_major_and_fails_strictly(
    tiny_store: Path, declared: str
) -> None:
    payload = {"ver": declared, "nam": "ABC"}
    store = SchemaStore.from_directory(tiny_store)
    check = store.validate(payload)
    assert check == SchemaCheck(declared, "1.2.1")
    assert check.substituted
    assert "schema 1.2.1 for " + declared in reason(store, {"ver": declared, "nam": "abc"})
    assert "no schema" in reason(store, {"ver": "3.0.0", "nam": "ABC"})  # no major 3
    strict = SchemaStore.from_directory(tiny_store, strict=True)
    assert f"no schema for version {declared}" in reason(strict, payload)
    assert strict.validate({"ver": "1.2.1", "nam": "ABC"}).version == "1.2.1"


@pytest.mark.parametrize("payload", [[], {"nam": "ABC"}, {"ver": 1, "nam": "ABC"}])
def test_a_payload_without_a_version_fails(tiny_store: Path, payload: object) -> None:
    reason(SchemaStore.from_directory(tiny_store), payload)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"ver": "1.0.0"}, "$ lacks nam"),
        ({"ver": "1.0.0", "nam": "Müller"}, "$.nam fails pattern"),
        ({"ver": "1.0.0", "nam": "ABCDEFGHIJKLMNOP"}, "$.nam fails maxLength 10"),
        ({"ver": "1.0.0", "nam": 12345678}, "$.nam fails type"),
    ],
)
def test_a_failure_names_the_place_and_rule_but_not_the_value(
    tiny_store: Path, payload: dict, says: str
) -> None:
    text = reason(SchemaStore.from_directory(tiny_store), payload)
    assert says in text
    assert str(payload.get("nam", "\0")) not in text


def test_a_directory_without_schemas_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no DCC schema"):
        SchemaStore.from_directory(tmp_path)


def test_the_default_directory_comes_from_the_environment_first(
    monkeypatch: pytest.MonkeyPatch, tiny_store: Path
) -> None:
    monkeypatch.setenv(schema.SCHEMA_DIR_ENV, str(tiny_store))
    assert default_schema_dir() == tiny_store
    assert SchemaStore.default() is not None
    assert SchemaStore.default(strict=True).strict  # type: ignore[union-attr]
    monkeypatch.delenv(schema.SCHEMA_DIR_ENV)
    monkeypatch.setattr(schema, "SHARED_SCHEMA_DIR", tiny_store / "absent")
    assert default_schema_dir() is None
    assert SchemaStore.default() is None


@pytest.mark.parametrize("kind", ["v", "t", "r"])
def test_the_specimens_follow_the_real_schema(schemas: SchemaStore, kind: str) -> None:
    assert schemas.validate(specimen_payload(kind)) == SchemaCheck("1.3.0", "1.3.0")


def test_the_real_schema_refuses_two_types_in_one_certificate(schemas: SchemaStore) -> None:
    both = {**specimen_payload("v"), "t": specimen_payload("t")["t"]}
    assert "schema 1.3.0" in reason(schemas, both)

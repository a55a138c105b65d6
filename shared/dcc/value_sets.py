"""The EU DCC value sets (ehn-dcc-valuesets): the codes each coded field of a DCC may hold."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from shared.envelope import CredentialError, Stage

# The release shipped with the package (see its VERSION and LICENSE).
PACKAGED_DIR = Path(__file__).with_name("valuesets")
# A directory of newer value sets (the live test-device set, say) for the host to publish.
VALUE_SETS_DIR_ENV = "SENTINEL_DCC_VALUE_SETS"

COUNTRIES = "country-2-codes"
DISEASES = "disease-agent-targeted"
VACCINE_TYPES = "sct-vaccines-covid-19"
VACCINE_PRODUCTS = "vaccines-covid-19-names"
VACCINE_HOLDERS = "vaccines-covid-19-auth-holders"
TEST_TYPES = "covid-19-lab-test-type"
TEST_DEVICES = "covid-19-lab-test-manufacturer-and-name"
TEST_RESULTS = "covid-19-lab-result"

# The coded fields of each type of entry and the value set of each (eu-dcc-schema's valuesets).
CODED_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "v": (
        ("tg", DISEASES),
        ("vp", VACCINE_TYPES),
        ("mp", VACCINE_PRODUCTS),
        ("ma", VACCINE_HOLDERS),
        ("co", COUNTRIES),
    ),
    "t": (
        ("tg", DISEASES),
        ("tt", TEST_TYPES),
        ("ma", TEST_DEVICES),
        ("tr", TEST_RESULTS),
        ("co", COUNTRIES),
    ),
    "r": (("tg", DISEASES), ("co", COUNTRIES)),
}
NEEDED = frozenset(name for fields in CODED_FIELDS.values() for _, name in fields)


@dataclass(frozen=True)
class ValueSet:
    """One value set: its id, its date (a newer date replaces an older set) and its codes.

    A deprecated code (`active: false`) is still a code: it may no longer be issued, but the
    certificates issued with it stay valid.
    """

    id: str
    date: date
    codes: frozenset[str]

    @classmethod
    def from_json(cls, document: Any, source: str = "value set") -> ValueSet:
        """A value set in the ehn-dcc-valuesets form; ValueError naming `source` if it is not."""
        if not isinstance(document, Mapping):
            raise ValueError(f"{source}: not a value set (a JSON object)")
        set_id = document.get("valueSetId")
        if not isinstance(set_id, str) or not set_id:
            raise ValueError(f"{source}: no valueSetId")
        try:
            when = date.fromisoformat(document.get("valueSetDate"))
        except (TypeError, ValueError):
            raise ValueError(f"{source}: valueSetDate is not a YYYY-MM-DD date") from None
        values = document.get("valueSetValues")
        if not isinstance(values, Mapping) or not values:
            raise ValueError(f"{source}: valueSetValues is not a map of one or more codes")
        return cls(set_id, when, frozenset(values))


def load_value_sets(directory: Path) -> list[ValueSet]:
    """Every value set (`*.json`) in a directory; ValueError for a file that holds none."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ValueError(f"no value set (*.json) in {directory}")
    sets = []
    for file in files:
        try:
            document = json.loads(file.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{file}: not JSON ({error})") from None
        sets.append(ValueSet.from_json(document, str(file)))
    return sets


@dataclass(frozen=True)
class ValueSets:
    """The value sets a DCC's coded fields are checked against, by id; all of NEEDED held."""

    sets: Mapping[str, ValueSet]

    def __post_init__(self) -> None:
        missing = sorted(NEEDED - self.sets.keys())
        if missing:
            raise ValueError(f"the DCC value sets lack {', '.join(missing)}")

    def __iter__(self) -> Iterator[ValueSet]:
        return iter(sorted(self.sets.values(), key=lambda value_set: value_set.id))

    def updated(self, offered: Iterable[ValueSet]) -> ValueSets:
        """These sets with each offered one that is not older than the set of its id held."""
        sets = dict(self.sets)
        for value_set in offered:
            held = sets.get(value_set.id)
            if held is None or value_set.date >= held.date:
                sets[value_set.id] = value_set
        return ValueSets(sets)

    def check(self, kind: str, entry: Mapping[str, Any]) -> None:
        """Stage valueset: each coded field the entry holds is a code of its value set.

        A field the entry lacks is the schema's business. The reason names the field and the
        value set, not the value (the payload is personal data).
        """
        for name, set_id in CODED_FIELDS[kind]:
            if name not in entry:
                continue
            value_set = self.sets[set_id]
            if not isinstance(entry[name], str) or entry[name] not in value_set.codes:
                raise CredentialError(
                    Stage.VALUESET,
                    f"$.{kind}[0].{name} is not a code of the value set {set_id} "
                    f"({value_set.date.isoformat()})",
                )


@cache
def packaged_value_sets() -> ValueSets:
    """The release shipped with the package (read once)."""
    return ValueSets({value_set.id: value_set for value_set in load_value_sets(PACKAGED_DIR)})


def default_value_sets() -> ValueSets:
    """The packaged release, updated by the sets in $SENTINEL_DCC_VALUE_SETS if it is set.

    Raises ValueError (or OSError) naming the file when that directory holds a bad one.
    """
    configured = os.environ.get(VALUE_SETS_DIR_ENV)
    packaged = packaged_value_sets()
    return packaged.updated(load_value_sets(Path(configured))) if configured else packaged

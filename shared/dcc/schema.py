"""The EU DCC JSON schemas (eu-dcc-schema): a store of them by version, and validation."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from shared.envelope import CredentialError, Stage

SCHEMA_DIR_ENV = "SENTINEL_DCC_SCHEMAS"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_SCHEMA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "dcc" / "eu-dcc-schema"
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
# Schema keywords whose value says what was wrong without quoting the payload's data.
QUOTED_KEYWORDS = frozenset(
    {"type", "pattern", "format", "minLength", "maxLength", "minimum", "maximum"}
)


def default_schema_dir() -> Path | None:
    """$SENTINEL_DCC_SCHEMAS, else the shared reference schemas beside the project, if there."""
    configured = os.environ.get(SCHEMA_DIR_ENV)
    if configured:
        return Path(configured)
    return SHARED_SCHEMA_DIR if SHARED_SCHEMA_DIR.is_dir() else None


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class SchemaCheck:
    """Which schema a payload was validated against, and the version it declared."""

    declared: str  # the payload's `ver`
    version: str  # the schema used: `declared`, or the newest of its major version

    @property
    def substituted(self) -> bool:
        """True when `declared` was never published and a newer schema stood in for it."""
        return self.declared != self.version


@dataclass
class SchemaStore:
    """The DCC schemas by version ("1.3.0"), each compiled on first use (Draft 2020-12).

    A payload is validated against the schema its `ver` names. A version the store lacks is
    validated against the newest schema of the same major version, as deployed verifiers do
    (real DCCs declare versions that were never published as schemas, such as 1.0.4); with
    `strict` it fails instead.
    """

    schemas: dict[str, dict[str, Any]]
    strict: bool = False
    _validators: dict[str, Draft202012Validator] = field(default_factory=dict, repr=False)

    @classmethod
    def from_directory(cls, directory: Path, *, strict: bool = False) -> SchemaStore:
        """Every `MAJOR.MINOR.PATCH.json` in the directory; raises ValueError if there is none."""
        schemas = {}
        for path in sorted(directory.glob("*.json")):
            version = path.name.removesuffix(".json")
            if VERSION.match(version):
                schemas[version] = json.loads(path.read_text("utf-8"))
        if not schemas:
            raise ValueError(f"no DCC schema (MAJOR.MINOR.PATCH.json) in {directory}")
        return cls(schemas, strict)

    @classmethod
    def default(cls, *, strict: bool = False) -> SchemaStore | None:
        """The store at default_schema_dir(), or None when there is none."""
        directory = default_schema_dir()
        return cls.from_directory(directory, strict=strict) if directory is not None else None

    @property
    def versions(self) -> list[str]:
        """The versions held, oldest first."""
        return sorted(self.schemas, key=_semver)

    def version_for(self, declared: Any) -> str:
        """The schema version to validate a payload declaring `declared` against."""
        if not isinstance(declared, str) or not VERSION.match(declared):
            raise CredentialError(Stage.SCHEMA, "ver is not a MAJOR.MINOR.PATCH version")
        if declared in self.schemas:
            return declared
        same_major = [v for v in self.versions if _semver(v)[0] == _semver(declared)[0]]
        if same_major and not self.strict:
            return same_major[-1]
        raise CredentialError(
            Stage.SCHEMA, f"no schema for version {declared} (have {', '.join(self.versions)})"
        )

    def validate(self, payload: Any) -> SchemaCheck:
        """Validate a DCC payload against the schema its `ver` names; say which one was used.

        Raises CredentialError (schema) naming the first place that breaks the schema, never
        quoting the payload's values (they are personal data).
        """
        if not isinstance(payload, dict):
            raise CredentialError(Stage.SCHEMA, "the DCC payload is not a JSON object")
        declared = payload.get("ver")
        version = self.version_for(declared)
        error = best_match(self._validator(version).iter_errors(payload))
        if error is not None:
            standing_in = f" for {declared}" if version != declared else ""
            raise CredentialError(Stage.SCHEMA, f"schema {version}{standing_in}: {describe(error)}")
        return SchemaCheck(declared, version)

    def _validator(self, version: str) -> Draft202012Validator:
        if version not in self._validators:
            schema = self.schemas[version]
            Draft202012Validator.check_schema(schema)
            self._validators[version] = Draft202012Validator(schema)
        return self._validators[version]


def describe(error: ValidationError) -> str:
    """Where a payload breaks its schema and which rule, without the offending value."""
    rule = error.validator
    if rule == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        return f"{error.json_path} lacks {', '.join(missing)}"
    if rule in QUOTED_KEYWORDS:
        return f"{error.json_path} fails {rule} {json.dumps(error.validator_value)[:80]}"
    return f"{error.json_path} fails {rule}"

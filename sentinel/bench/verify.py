"""`sentinel bench verify`: time to verify each kind of credential, and its signature alone."""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared import healthcode, venuecode
from shared.dcc.certificates import CertificateError, load_certificate, trust_list
from shared.dcc.hcert import PREFIX as DCC_PREFIX
from shared.dcc.hcert import verify_dcc
from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.envelope import CredentialError, base45, inflate, parse_cose, unprefix
from shared.keys import (
    ES256,
    PS256,
    KeyPurpose,
    SigningKey,
    TrustedKey,
    TrustStore,
    b64url_decode,
    verify_cose_signature,
)

DGC_TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "dcc" / "dgc-testdata"
WARM_UP = 50


@dataclass
class Credential:
    """One credential to time: its whole verification and its signature check alone."""

    name: str
    source: str
    verify: Callable[[], object]
    signature: Callable[[], None]
    verify_us: list[float] = field(default_factory=list)
    signature_us: list[float] = field(default_factory=list)


def _signature_alone(text: str, prefix: str, key: TrustedKey) -> Callable[[], None]:
    """The bare check of the text's signature under the key, its envelope opened beforehand."""
    cose = parse_cose(inflate(base45(unprefix(text, prefix))))
    message = cose.to_be_signed()
    return lambda: verify_cose_signature(key.public_key, cose.alg, cose.signature, message)


def real_dccs(schemas: SchemaStore | None) -> Iterator[tuple[str, str, TrustStore, datetime]]:
    """dgc-testdata files that verify in full at their clock: (name, text, trust, clock)."""
    for file in sorted(DGC_TESTDATA.rglob("*.json")):
        data = json.loads(file.read_text("utf-8"))
        context = data.get("TESTCTX") or {}
        try:
            certificate = load_certificate(base64.b64decode(context["CERTIFICATE"]))
            clock = datetime.fromisoformat(context["VALIDATIONCLOCK"])
            text = data["PREFIX"]
        except (KeyError, TypeError, ValueError, CertificateError):
            continue
        clock = clock if clock.tzinfo else clock.replace(tzinfo=UTC)
        trust = trust_list([certificate])
        try:
            verify_dcc(text, trust, now=clock, schemas=schemas)
        except CredentialError:
            continue
        yield file.relative_to(DGC_TESTDATA).as_posix(), text, trust, clock


def dcc_credential(alg: int, schemas: SchemaStore | None) -> Credential:
    """A real dgc-testdata DCC signed with this algorithm if there is one, else a specimen."""
    name = {ES256: "EU DCC, ES256", PS256: "EU DCC, PS256 (RSA)"}[alg]
    found = None
    if DGC_TESTDATA.is_dir():
        found = next(
            (
                case
                for case in real_dccs(schemas)
                if parse_cose(inflate(base45(unprefix(case[1], DCC_PREFIX)))).alg == alg
            ),
            None,
        )
    if found is not None:
        source, text, trust, clock = found
        source = f"dgc-testdata {source}"
    else:
        signer = SpecimenSigner.generate(alg)
        text = issue_dcc(specimen_payload("v"), signer)
        trust, clock, source = trust_list([signer.certificate]), EPOCH, "specimen"
    cose = parse_cose(inflate(base45(unprefix(text, DCC_PREFIX))))
    (key,) = trust.candidates(cose.kid, KeyPurpose.DCC)
    return Credential(
        name,
        source,
        lambda: verify_dcc(text, trust, now=clock, schemas=schemas),
        _signature_alone(text, DCC_PREFIX, key),
    )


def health_credential(now: datetime) -> Credential:
    """A dynamic health code of ours, as a kiosk reads it."""
    key = SigningKey.generate()
    trusted = TrustedKey(key.kid, KeyPurpose.HEALTH, key.private_key.public_key())
    trust = TrustStore.of([trusted])
    code = healthcode.new_code(
        person_ref="p-bench",
        kind=healthcode.CodeKind.DYNAMIC,
        colour=healthcode.Colour.GREEN,
        test=healthcode.NucleicTest(now - timedelta(hours=20), healthcode.TestResult.NEGATIVE),
        now=now,
    )
    text = healthcode.issue(code, key)
    return Credential(
        "health code (DS1:)",
        "generated",
        lambda: healthcode.read(text, trust, now=now),
        _signature_alone(text, healthcode.PREFIX, trusted),
    )


def venue_credential() -> Credential:
    """A venue code URL bound to a room."""
    key = SigningKey.generate()
    trusted = TrustedKey(key.kid, KeyPurpose.VENUE, key.private_key.public_key())
    trust = TrustStore.of([trusted])
    code = venuecode.VenueCode("bench-venue", venuecode.Binding(venuecode.BindingKind.ROOM, "12"))
    url = venuecode.issue_url(code, "https://sentinel.example", key)
    signature = b64url_decode(parse_qs(urlsplit(url).query)["s"][0])
    message = venuecode.signed_message(code)
    return Credential(
        "venue code (URL)",
        "generated",
        lambda: venuecode.read_url(url, trust),
        lambda: verify_cose_signature(trusted.public_key, ES256, signature, message),
    )


def credentials(schemas: SchemaStore | None) -> list[Credential]:
    now = datetime.now(UTC)
    return [
        dcc_credential(ES256, schemas),
        dcc_credential(PS256, schemas),
        health_credential(now),
        venue_credential(),
    ]


def measure(credentials: list[Credential], iterations: int) -> None:
    """Time each credential's verification and its signature check, alternately, in µs."""
    for credential in credentials:
        for _ in range(WARM_UP):
            credential.verify()
            credential.signature()
        for _ in range(iterations):
            started = time.perf_counter()
            credential.verify()
            verified = time.perf_counter()
            credential.signature()
            checked = time.perf_counter()
            credential.verify_us.append((verified - started) * 1e6)
            credential.signature_us.append((checked - verified) * 1e6)


def _stats(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=20)  # 5 % steps: [9] is p50, [18] is p95
    return {
        "mean": round(statistics.fmean(values), 1),
        "p50": round(cuts[9], 1),
        "p95": round(cuts[18], 1),
    }


def as_json(credentials: list[Credential]) -> list[dict[str, Any]]:
    return [
        {
            "credential": credential.name,
            "source": credential.source,
            "verify_us": _stats(credential.verify_us),
            "signature_us": _stats(credential.signature_us),
        }
        for credential in credentials
    ]


def table(credentials: list[Credential]) -> list[str]:
    """A Markdown table: whole verification and signature alone, mean / p50 / p95 in µs."""
    lines = [
        "| credential | source | verify mean µs | p50 | p95 | signature alone mean µs | p50 "
        "| p95 | verify ÷ signature |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for credential in credentials:
        whole, alone = _stats(credential.verify_us), _stats(credential.signature_us)
        lines.append(
            f"| {credential.name} | {credential.source} | {whole['mean']:.0f} | "
            f"{whole['p50']:.0f} | {whole['p95']:.0f} | {alone['mean']:.0f} | "
            f"{alone['p50']:.0f} | {alone['p95']:.0f} | {whole['mean'] / alone['mean']:.2f}x |"
        )
    return lines

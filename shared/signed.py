"""Host-signed documents (venue rule sets, deny lists): CBOR in a COSE_Sign1, checked offline."""

from __future__ import annotations

from typing import Any

import cbor2

from shared.envelope import CredentialError, Stage, parse_cose, sign_cose, verify
from shared.keys import KeyPurpose, SigningKey, TrustStore

DOCUMENT_TYPE = "type"
DOCUMENT_BODY = "body"


def sign_document(document_type: str, body: Any, key: SigningKey) -> bytes:
    """Sign `body` (anything CBOR can carry) as a document of `document_type` with a policy key."""
    return sign_cose({DOCUMENT_TYPE: document_type, DOCUMENT_BODY: body}, key)


def open_document(data: bytes, document_type: str, trust: TrustStore) -> Any:
    """Check the signature under a trusted policy key and the type; return the body."""
    cose = parse_cose(data)
    verify(cose, trust, KeyPurpose.POLICY)
    try:
        document = cbor2.loads(cose.payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
        raise CredentialError(Stage.CWT, f"payload is not CBOR ({error})") from None
    if not isinstance(document, dict) or document.get(DOCUMENT_TYPE) != document_type:
        raise CredentialError(Stage.SCHEMA, f"not a signed {document_type} document")
    return document.get(DOCUMENT_BODY)

"""Field types several API requests share: the purpose a reader of personal data states."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from shared.idnumber import holds_id_number


def no_id_number(text: str) -> str:
    """`text` if it holds nothing written like an ID number: it is kept in the audit log."""
    if holds_id_number(text):
        raise ValueError("must not hold an ID number: it is kept; name the case by its number")
    return text


Purpose = Annotated[
    str,
    Field(
        min_length=3,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",  # one line; PostgreSQL text cannot hold a NUL
        description="why personal data is read, e.g. a case or order number; kept in the audit log",
    ),
    AfterValidator(no_id_number),
]

"""ID-card holders as the host knows them: a sealed identity opened, keyed and found, or named."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from host.api.deps import HostContext
from host.core.security import id_number_hmac
from host.storage.base import PersonRecord
from shared.messages import CheckIn
from shared.sealed import CardIdentity, SealError

log = logging.getLogger(__name__)
PSEUDONYM_PREFIX = "u_"  # a card holder who is not in the register
PSEUDONYM_BYTES = 12


@dataclass(frozen=True)
class Holder:
    """Whom a card names: the register's person, or a stable pseudonym for someone unknown."""

    person_ref: str
    person: PersonRecord | None


def pseudonym(id_hmac: bytes) -> str:
    """The reference a card holder not in the register is checked in under, by their keyed hash."""
    return PSEUDONYM_PREFIX + id_hmac[:PSEUDONYM_BYTES].hex()


def holder_of(context: HostContext, identity: CardIdentity) -> Holder:
    """Find the card's holder by the keyed hash of their number; the number itself is not kept."""
    id_hmac = id_number_hmac(context.keys.id_hmac_key, identity.lookup_key)
    person = context.storage.find_person_by_id_hmac(id_hmac)
    if person is not None:
        return Holder(person.person_ref, person)
    return Holder(pseudonym(id_hmac), None)


def resolve_holders(context: HostContext, checkins: list[CheckIn]) -> list[CheckIn]:
    """Replace each sealed identity by its holder's reference: the host keeps only that.

    A seal that does not open (for a rotated key, or damaged) costs the reference, never the
    check-in: the rest of it is still what happened at the entrance.
    """
    resolved = []
    for checkin in checkins:
        if checkin.sealed_identity is None:
            resolved.append(checkin)
            continue
        person_ref = checkin.person_ref
        if person_ref is None:
            try:
                identity = context.keys.sealing.open(checkin.sealed_identity)
                person_ref = holder_of(context, identity).person_ref
            except SealError as error:
                log.warning("check-in %s: sealed identity not opened: %s", checkin.id, error)
        resolved.append(
            checkin.model_copy(update={"person_ref": person_ref, "sealed_identity": None})
        )
    return resolved

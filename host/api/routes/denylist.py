"""The deny list: admins list and unlist digests; devices fetch the signed list when it changed."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from host.api.deps import (
    Context,
    DeviceRequest,
    HostContext,
    SignedCall,
    in_device_thread,
    requires,
)
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute
from host.identities import holder_of
from host.storage.base import DenyListEntry
from host.storage.users import Role
from shared.denylist import MEDIA_TYPE, HashKind, identity_hash, person_hash
from shared.idnumber import holds_id_number, normalise_id_number
from shared.messages import (
    DenyDigest,
    DenyIdNumber,
    DenyListAdd,
    DenyListAdded,
    DenyListEntryIn,
    DenyListEntryOut,
    DenyListSummary,
    DenyListUnchanged,
    DenyPersonRef,
    DigestHex,
)
from shared.sealed import CardIdentity, DocumentType

admin_router = APIRouter(
    prefix="/admin/denylist",
    tags=["admin"],
    dependencies=[requires(Role.ADMIN)],
    route_class=StrictJsonRoute,
)
device_router = APIRouter(tags=["devices"], route_class=StrictJsonRoute)


def _listed_as(
    context: HostContext, entry: DenyListEntryIn, index: int
) -> list[tuple[HashKind, bytes]]:
    """The digests an entry is listed under.

    A person found by reference is listed by it. An ID number is listed by its slow identity
    digest, so a device offline refuses the card, and by the person it names when registered:
    someone not in the register can be listed by ID number too.
    """
    if isinstance(entry, DenyDigest):
        return [(entry.kind, bytes.fromhex(entry.digest))]
    if isinstance(entry, DenyIdNumber):
        identity = CardIdentity.of(DocumentType.CN_ID, "CHN", entry.id_number)
        holder = holder_of(context, identity)
        listed = [(HashKind.IDENTITY, identity_hash(identity))]
        if holder.person is not None:
            listed.append((HashKind.PERSON, person_hash(holder.person_ref)))
        return listed
    person = context.storage.get_person(entry.person_ref)
    if person is None:
        raise ApiError(404, "unknown-person", f"entries.{index}: no person {entry.person_ref}")
    return [(HashKind.PERSON, person_hash(person.person_ref))]


def _names_a_person(reason: str, entries: list[DenyListEntryIn]) -> bool:
    """Whether the reason, which is stored beside the digests, spells out whom they stand for.

    Any ID number, however written (hyphens, spaces, full-width digits), or a listed person's
    reference.
    """
    if holds_id_number(reason):
        return True
    flat = normalise_id_number(reason)
    named = [entry.person_ref for entry in entries if isinstance(entry, DenyPersonRef)] + [
        entry.id_number for entry in entries if isinstance(entry, DenyIdNumber)
    ]
    return any(normalise_id_number(name) in flat for name in named)


@admin_router.post("")
def add_entries(body: DenyListAdd, context: Context) -> DenyListAdded:
    """List people and certificates, all or none; devices get the new version on their next ask."""
    listed = [
        digest
        for index, entry in enumerate(body.entries)
        for digest in _listed_as(context, entry, index)
    ]
    if _names_a_person(body.reason, body.entries):
        raise ApiError(
            422, "reason-names-person", "the reason is kept with the entries: leave out whom it is"
        )
    added = context.storage.add_denylist_entries(
        [DenyListEntry(kind, digest, body.reason) for kind, digest in listed],
        context.settings.now_ms(),
    )
    state = context.storage.denylist_state().message()
    return DenyListAdded(
        **state.model_dump(),
        added=added,
        entries=[DenyListEntryOut(kind=kind, digest=digest.hex()) for kind, digest in listed],
    )


@admin_router.delete("/{kind}/{digest}")
def remove_entry(
    kind: HashKind, digest: Annotated[DigestHex, Path()], context: Context
) -> DenyListSummary:
    if not context.storage.remove_denylist_entry(
        kind, bytes.fromhex(digest), context.settings.now_ms()
    ):
        raise ApiError(404, "not-listed", f"no {kind.value} entry {digest}")
    return context.storage.denylist_state().message()


@admin_router.get("")
def summary(context: Context) -> DenyListSummary:
    return context.storage.denylist_state().message()


@device_router.get(
    "/device/denylist",
    response_model=None,
    responses={200: {"content": {MEDIA_TYPE: {}}, "model": DenyListUnchanged}},
)
async def device_denylist(
    call: SignedCall,
    context: Context,
    have: Annotated[int | None, Query(ge=0, description="the version the device holds")] = None,
) -> Response | DenyListUnchanged:
    """The signed list (application/cose) unless the device already holds the current version."""
    return await in_device_thread(context, call, partial(_denylist_for, context, have))


def _denylist_for(
    context: HostContext, have: int | None, signed: DeviceRequest
) -> Response | DenyListUnchanged:
    version = context.storage.denylist_version()
    if have is not None and have >= version:
        return DenyListUnchanged(version=version)
    return Response(context.denylist.document(signed.now_ms), media_type=MEDIA_TYPE)

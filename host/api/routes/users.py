"""Users and their roles, the audit log of personal-data reads, and the audited person lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from host.api.deps import AdminPrincipal, Context, Principal, requires
from host.api.errors import ApiError
from host.api.fields import Purpose
from host.api.parsing import StrictJsonRoute
from host.core.times import from_ms, to_ms
from host.storage.users import AuditRecord, Role, UserRecord
from host.users import UserCreate, UserRefused, create_user
from shared.messages import PersonOut

router = APIRouter(tags=["users"], route_class=StrictJsonRoute)
MAX_AUDIT_PAGE = 1000


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserOut(Model):
    id: str
    name: str
    role: Role
    venues: list[str]
    org: str | None
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        return cls(
            id=user.id,
            name=user.name,
            role=user.role,
            venues=list(user.venues),
            org=user.org,
            created_at=from_ms(user.created_at_ms),
            revoked_at=None if user.revoked_at_ms is None else from_ms(user.revoked_at_ms),
        )


class UserCreated(UserOut):
    token: str = Field(description="shown once: the host keeps only its hash")


class AuditOut(Model):
    seq: int
    at: AwareDatetime
    user_id: str
    user_name: str
    role: Role
    action: str
    subject: dict[str, str]
    purpose: str
    records: int
    hash: str

    @classmethod
    def of(cls, record: AuditRecord) -> AuditOut:
        return cls(
            seq=record.seq,
            at=from_ms(record.at_ms),
            user_id=record.user_id,
            user_name=record.user_name,
            role=record.role,
            action=record.action,
            subject=record.subject,
            purpose=record.purpose,
            records=record.records,
            hash=record.hash.hex(),
        )


@router.post("/admin/users", status_code=201)
def add_user(body: UserCreate, context: Context, _admin: AdminPrincipal) -> UserCreated:
    try:
        user, token = create_user(context.storage, body, context.settings.now_ms())
    except UserRefused as refusal:
        raise ApiError(refusal.status, refusal.code, str(refusal)) from None
    return UserCreated(**UserOut.of(user).model_dump(), token=token)


@router.get("/admin/users")
def list_users(context: Context, _admin: AdminPrincipal) -> list[UserOut]:
    return [UserOut.of(user) for user in context.storage.list_users()]


@router.post("/admin/users/{name}/revoke")
def revoke_user(name: str, context: Context, _admin: AdminPrincipal) -> UserOut:
    user = context.storage.revoke_user(name, context.settings.now_ms())
    if user is None:
        raise ApiError(404, "unknown-user", f"no user {name}")
    return UserOut.of(user)


@router.get("/admin/audit")
def audit_log(  # noqa: PLR0917 - one parameter per filter of the query string
    context: Context,
    _admin: AdminPrincipal,
    user: str | None = None,
    action: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    before: Annotated[int | None, Query(ge=1, description="records before this seq")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
) -> list[AuditOut]:
    """Who read which personal data, when and why; newest first. Nothing changes or deletes it."""
    records = context.storage.list_audit(
        user_name=user,
        action=action,
        since_ms=None if since is None else to_ms(since),
        until_ms=None if until is None else to_ms(until),
        before_seq=before,
        limit=limit,
    )
    return [AuditOut.of(record) for record in records]


@router.get("/people/{person_ref}")
def lookup_person(
    person_ref: str,
    purpose: Annotated[Purpose, Query()],
    context: Context,
    principal: Annotated[Principal, requires(Role.ADMIN, Role.EPIDEMIOLOGIST)],
) -> PersonOut:
    """A person's current status, for follow-up; the look is recorded in the audit log."""
    draft = principal.audit("person-lookup", purpose, person=person_ref)
    person = context.storage.lookup_person(person_ref, draft, context.settings.now_ms())
    if person is None:
        raise ApiError(404, "unknown-person", f"no person {person_ref}")
    return person.message()

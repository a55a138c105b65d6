"""Making host users: a role with the scope it needs, and a token shown once, kept as a hash."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from host.core.security import new_token, random_id, token_hash
from host.storage.sql import SqlStorage
from host.storage.users import Role, UserExists, UserRecord


class UserRefused(Exception):
    """A user cannot be made as asked; `status` and `code` as the API answers it."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f]+$")
    role: Role
    venues: list[str] = Field(default_factory=list, max_length=1000)
    org: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _scope_fits_role(self) -> UserCreate:
        """A venue manager needs venues, a screener an organisation; no other role has either."""
        if (self.role is Role.VENUE_MANAGER) != bool(self.venues):
            raise ValueError("venues are given for a venue-manager, and only for one")
        if (self.role is Role.SCREENER) != (self.org is not None):
            raise ValueError("an organisation is given for a screener, and only for one")
        return self


def create_user(storage: SqlStorage, asked: UserCreate, now_ms: int) -> tuple[UserRecord, str]:
    """Store a new user and make their token: returned once, kept only as its hash."""
    unknown = [venue for venue in asked.venues if storage.get_venue(venue) is None]
    if unknown:
        raise UserRefused(422, "unknown-venue", f"no venue {unknown[0]}")
    token = new_token("user")
    user = UserRecord(
        id=random_id("usr_", 16),
        name=asked.name,
        role=asked.role,
        venues=tuple(dict.fromkeys(asked.venues)),
        org=asked.org,
        created_at_ms=now_ms,
    )
    try:
        storage.add_user(user, token_hash(token))
    except UserExists as error:
        raise UserRefused(409, "user-exists", str(error)) from None
    return user, token

"""Public endpoints: the health check and the host's public keys."""

from __future__ import annotations

from fastapi import APIRouter

from host.api.deps import Context
from shared.messages import API_PREFIX, PublishedKey

router = APIRouter(tags=["public"])


@router.get(f"{API_PREFIX}/health")
async def health(context: Context) -> dict[str, object]:
    return {"ok": True, "server_time": context.settings.now()}


@router.get(f"{API_PREFIX}/keys")
async def keys(context: Context) -> dict[str, list[PublishedKey]]:
    """The host's public keys, for anyone verifying its codes (`sentinel verify --trust`)."""
    return {"keys": context.keys.published}

"""Dashboard pages: screening (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from host.web.dashboard.common import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
